#!/usr/bin/env bash
# run.sh: the main job. Installs what is missing, builds, installs nnlua
# (under /usr/local by default) and runs the XOR experiment with it.
set -euo pipefail
cd "$(dirname "$0")"

./tools/setup.sh

cmake -S . -B build
cmake --build build -j2

as_root=()
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 \
   && [[ ! -w "$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' build/CMakeCache.txt)" ]]; then
  as_root=(sudo)
fi
"${as_root[@]}" cmake --install build
# so that C programs linked with -lnn find the new libnn.so (a cache only root may refresh)
"${as_root[@]}" ldconfig 2>/dev/null || true

hash -r
nnlua scripts/xor.lua
