#!/usr/bin/env bash
# check.sh [build-folder]: the GPU checks, on the machine with the GPU. It
# builds nothing: the folder (build-gpu/ by default) is made here by
# tools/build_gpu.sh and carried there; it needs nnlua and libnn_cuda.so in
# it. Each check is an nnlua script of tests/gpu/ that prints "ok ..." or
# "FAIL ...", then a count; this prints the machine, each script's output
# and a summary, and exits 0 only when every check passed. Under a minute
# today (phase A: availability, memory, copies, printing); the op-by-op
# comparison with the CPU and the benchmarks join here.
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
"$nnlua" -e 'print("nnlua: cuda available: " .. tostring(nn.cuda.is_available()) ..
  (nn.cuda.is_available() and (", " .. nn.cuda.get_device_name()) or (": " .. nn.cuda.why_unavailable())))'

passed=() failed=()
start=$SECONDS
for check in tests/gpu/devices.lua tests/gpu/memory.lua; do
  echo "== $check"
  if timeout 180 "$nnlua" "$check"; then
    passed+=("$check")
  else
    failed+=("$check (status $?)")
  fi
done

echo "== summary ($((SECONDS - start)) s)"
for c in "${passed[@]}"; do echo "passed: $c"; done
for c in "${failed[@]}"; do echo "FAILED: $c"; done
if [[ ${#failed[@]} -eq 0 ]]; then
  echo "gpu checks: PASSED (${#passed[@]} scripts)"
  exit 0
fi
echo "gpu checks: FAILED (${#failed[@]} of $((${#passed[@]} + ${#failed[@]})) scripts)"
exit 1
