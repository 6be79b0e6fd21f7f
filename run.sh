#!/usr/bin/env bash
# run.sh: the main job. Installs what is missing, builds, installs nnlua
# (under /usr/local by default) and runs the XOR experiment with it.
set -euo pipefail
cd "$(dirname "$0")"

./tools/setup.sh

cmake -S . -B build
cmake --build build -j2

if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1 \
   && [[ ! -w "$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' build/CMakeCache.txt)" ]]; then
  sudo cmake --install build
else
  cmake --install build
fi

hash -r
nnlua scripts/xor.lua
