#!/usr/bin/env bash
# setup.sh: installs the Debian packages nnlua needs, only those missing.
# Quick when everything is present (asks dpkg, never the network).
set -euo pipefail

# gnuplot-nox draws nn.plot's pictures; openmpi-bin runs sweeps across
# machines (mpirun; libmpi is loaded only under it); zlib1g-dev reads gzip'd
# IDX files; dataset-fashion-mnist is the data set of scripts/fashion_mnist.lua;
# tmux drives the interactive prompt in its tests; lua-cjson reads and writes
# nn.sweep's JSON; lua-argparse parses the options of the scripts in scripts/;
# libopenmpi-dev's mpicc builds scripts/bench/allreduce_mpi.c, MPI's own
# all_reduce that scripts/bench/distributed.lua measures nn.distributed against;
# fortunes holds the English texts the character-level lessons learn from.
packages=(build-essential cmake pkg-config lua5.4 liblua5.4-dev libopenblas-dev
          lua-busted libreadline-dev gnuplot-nox openmpi-bin libopenmpi-dev zlib1g-dev
          dataset-fashion-mnist tmux lua-cjson lua-argparse fortunes)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  if [[ "$status" != "install ok installed" ]]; then
    missing+=("$p")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "setup: installing ${missing[*]}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    sudo=(sudo)
  else
    echo "setup: need root (or sudo) to install: ${missing[*]}" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
