#!/usr/bin/env bash
# check.sh [build-folder]: the GPU checks, on the machine with the GPU. It
# builds nothing: the folder (build-gpu/ by default) is made here by
# tools/build_gpu.sh and carried there; it needs nnlua and libnn_cuda.so in
# it. Each check is an nnlua script of tests/gpu/ that prints "ok ..." or
# "FAIL ...", then a count; this prints the machine, each script's output
# and a summary, and exits 0 only when every check passed: availability,
# memory, copies and printing (devices.lua, memory.lua), every op of ops.lua
# against the CPU (op_check.lua), XOR and the Fashion-MNIST MLP following
# the CPU (trajectories.lua), the collectives over NCCL (collectives.lua), a
# captured step (nn.capture, CUDA graphs) as eager ones (capture.lua); then
# the benchmarks, nnlua (bench.lua) beside
# PyTorch (bench_torch.py) on the same card, with their ratios. Within 8
# minutes (each script has its own limit).
#
#   tests/gpu/check.sh build-gpu
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
dir=${1:-build-gpu}
nnlua=$dir/nnlua
if [[ ! -x $nnlua || ! -f $dir/libnn_cuda.so ]]; then
  echo "check.sh: $dir has no nnlua and libnn_cuda.so: run tools/build_gpu.sh $dir and carry it" >&2
  exit 2
fi

echo "== machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -4
# libnn_cuda.so looks for cuBLAS where the build machine had it; elsewhere,
# point the loader at this machine's copy (the toolkit's, or PyTorch's wheel's)
if ldd "$dir/libnn_cuda.so" | grep -q "libcublas.so.[0-9]* => not found"; then
  want=$(ldd "$dir/libnn_cuda.so" | sed -n 's/^[[:space:]]*\(libcublas\.so\.[0-9]*\) => not found.*/\1/p')
  found=$(find /usr/local/cuda* /usr/lib /opt /usr/local/lib -name "$want" 2>/dev/null | head -1)
  if [[ -z $found ]]; then
    found=$(python3 -c "import nvidia, os, glob; print((glob.glob(os.path.join(list(nvidia.__path__)[0], '*', 'lib', '$want')) + [''])[0])" 2>/dev/null)
  fi
  if [[ -n $found ]]; then
    export LD_LIBRARY_PATH=$(dirname "$found")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    echo "cuBLAS: $found"
  else
    echo "cuBLAS: $want not found on this machine"
  fi
fi
# NCCL (loaded by libnn_cuda.so at the first collective): the toolkit's, or
# PyTorch's nvidia-nccl wheel's, unless the loader finds one itself
if [[ -z ${NN_NCCL_LIBRARY:-} ]] && ! ldconfig -p 2>/dev/null | grep -q 'libnccl.so.2 '; then
  nccl=$(find /usr/local/cuda* /usr/lib /opt /usr/local/lib -name libnccl.so.2 2>/dev/null | head -1)
  if [[ -z $nccl ]]; then
    nccl=$(python3 -c "import nvidia, os, glob; print((glob.glob(os.path.join(list(nvidia.__path__)[0], 'nccl', 'lib', 'libnccl.so.2')) + [''])[0])" 2>/dev/null)
  fi
  if [[ -n $nccl ]]; then
    export NN_NCCL_LIBRARY=$nccl
    echo "NCCL: $nccl"
  else
    echo "NCCL: libnccl.so.2 not found on this machine"
  fi
fi
"$nnlua" -e 'print("nnlua: cuda available: " .. tostring(nn.cuda.is_available()) ..
  (nn.cuda.is_available() and (", " .. nn.cuda.get_device_name()) or (": " .. nn.cuda.why_unavailable())))'

passed=() failed=()
start=$SECONDS
# the first Fashion-MNIST images, written by tools/build_gpu.sh
export NN_GPU_DATA=$dir/fashion-mnist-subset
for check in tests/gpu/devices.lua tests/gpu/memory.lua tests/gpu/op_check.lua tests/gpu/trajectories.lua \
             tests/gpu/collectives.lua tests/gpu/capture.lua; do
  echo "== $check"
  if timeout 150 "$nnlua" "$check"; then
    passed+=("$check")
  else
    failed+=("$check (status $?)")
  fi
done

echo "== benchmarks (milliseconds per iteration; ratio = nnlua / PyTorch, below 1 is faster)"
bench_dir=$(mktemp -d)
# on the test device (NN_FAKE_CUDA=1, no GPU: trying this script here) at tiny sizes
quick=$([[ ${NN_FAKE_CUDA:-} == 1 ]] && echo --quick || true)
timeout 120 "$nnlua" tests/gpu/bench.lua $quick > "$bench_dir/nnlua" 2>&1 || echo "bench.lua: status $? ($(tail -1 "$bench_dir/nnlua"))"
timeout 120 python3 tests/gpu/bench_torch.py > "$bench_dir/torch" 2>&1 || echo "bench_torch.py: status $? ($(tail -1 "$bench_dir/torch"))"
python3 -c "import torch; print('PyTorch', torch.__version__, 'on', torch.cuda.get_device_name())" 2>/dev/null
awk 'FNR == NR { if ($1 == "bench") t[$2] = $3; next }
     $1 == "bench" { n[$2] = $3; order[++k] = $2 }
     END {
       printf "%-28s %12s %12s %8s\n", "benchmark", "nnlua ms", "PyTorch ms", "ratio"
       for (i = 1; i <= k; i++) {
         name = order[i]
         if (name in t && t[name] > 0) printf "%-28s %12.4f %12.4f %8.3f\n", name, n[name], t[name], n[name] / t[name]
         else printf "%-28s %12.4f %12s %8s\n", name, n[name], "-", "-"
       }
       if (n["mlp_4x4096_b4096"] > 0)
         printf "large MLP: its 11 products take %.1f%% of its step (the goal: 90%% or more)\n", 100 * n["mlp_4x4096_gemms"] / n["mlp_4x4096_b4096"]
     }' "$bench_dir/torch" "$bench_dir/nnlua"
rm -rf "$bench_dir"

echo "== summary ($((SECONDS - start)) s)"
for c in "${passed[@]}"; do echo "passed: $c"; done
for c in "${failed[@]}"; do echo "FAILED: $c"; done
if [[ ${#failed[@]} -eq 0 ]]; then
  echo "gpu checks: PASSED (${#passed[@]} scripts)"
  exit 0
fi
echo "gpu checks: FAILED (${#failed[@]} of $((${#passed[@]} + ${#failed[@]})) scripts)"
exit 1
