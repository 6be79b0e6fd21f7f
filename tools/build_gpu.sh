#!/usr/bin/env bash
# build_gpu.sh: builds, on this machine, the folder the GPU machine runs
# (build-gpu/ by default): nnlua and libnn_cuda.so for sm_90 (H100, H200).
#
# The GPU machine has the NVIDIA driver, CUDA 13 and cuBLAS, but no Lua, no
# OpenBLAS and no readline, so nnlua is linked with the static Lua, OpenBLAS
# (and the gfortran runtime it needs) and zlib that Debian ships; what it
# then needs at run time is glibc (libc, libm, libdl, libpthread) and the
# C++/gcc runtime, which every such machine has. The script checks that
# with ldd and refuses a build that needs more. libnn_cuda.so needs the
# driver and cuBLAS only (the CUDA runtime is linked in).
#
#   tools/build_gpu.sh [build-folder]
#
# Then carry the folder: tests/gpu/check.sh build-gpu runs the GPU checks.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build-gpu}

multiarch=/usr/lib/x86_64-linux-gnu
lua_a=$multiarch/liblua5.4.a
openblas_a=$multiarch/openblas-pthread/libopenblas.a
zlib_a=$multiarch/libz.a
gcc_dir=$(dirname "$(gcc -print-libgcc-file-name)")
gfortran_a=$gcc_dir/libgfortran.a
quadmath_a=$gcc_dir/libquadmath.a
for f in "$lua_a" "$openblas_a" "$zlib_a" "$gfortran_a" "$quadmath_a"; do
  [[ -f $f ]] || { echo "build_gpu: $f is missing (liblua5.4-dev, libopenblas-dev, zlib1g-dev, gfortran)" >&2; exit 1; }
done

cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=Release -DNN_WERROR=ON \
  -DNN_CUDA=ON -DNN_CUDA_ARCHITECTURES=90 -DNN_TESTS=OFF -DNN_READLINE=OFF \
  -DLUA54_LIBRARY="$lua_a" \
  -DOPENBLAS_LIBRARY="$openblas_a;$gfortran_a;$quadmath_a" \
  -DZLIB_LIBRARY="$zlib_a"
cmake --build "$dir" -j"$(nproc)" --target nnlua nn_cuda

# The first 6,400 training images of Fashion-MNIST (5 MB), for the MLP's
# trajectory check (tests/gpu/trajectories.lua): the GPU machine has no
# dataset. Plain IDX files, their counts rewritten.
fmnist=/usr/share/datasets/fashion-mnist
if [[ -f $fmnist/train-images-idx3-ubyte.gz ]]; then
  mkdir -p "$dir/fashion-mnist-subset"
  python3 - "$fmnist" "$dir/fashion-mnist-subset" <<'PY'
import gzip, struct, sys
src, dst, n = sys.argv[1], sys.argv[2], 6400
for name, header, item in (("train-images-idx3-ubyte", 16, 784), ("train-labels-idx1-ubyte", 8, 1)):
    with gzip.open(f"{src}/{name}.gz") as f:
        data = f.read(header + n * item)
    with open(f"{dst}/{name}", "wb") as f:
        f.write(data[:4] + struct.pack(">I", n) + data[8:])
PY
fi

# What the GPU machine must provide: nothing beyond glibc and gcc's runtime
# for nnlua; the driver (which the CUDA runtime opens itself) and cuBLAS for
# the backend.
allowed='^(linux-vdso|libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+|ld-linux-x86-64)\.'
bad=$(ldd "$dir/nnlua" | awk '{print $1}' | grep -Ev "$allowed|^/" || true)
if [[ -n $bad ]]; then
  echo "build_gpu: $dir/nnlua needs libraries the GPU machine may lack:" >&2
  echo "$bad" >&2
  exit 1
fi
bad=$(readelf -d "$dir/libnn_cuda.so" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' |
      grep -Ev "$allowed|^libcublas\.so\." || true)
if [[ -n $bad ]]; then
  echo "build_gpu: $dir/libnn_cuda.so needs more than cuBLAS:" >&2
  echo "$bad" >&2
  exit 1
fi
echo "build_gpu: $dir is ready ($(du -sh "$dir" | cut -f1)); nnlua needs:"
ldd "$dir/nnlua" | sed 's/^/  /'
echo "libnn_cuda.so needs: $(readelf -d "$dir/libnn_cuda.so" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
