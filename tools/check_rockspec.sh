#!/usr/bin/env bash
# check_rockspec.sh: builds nnlua-scm-1.rockspec with `luarocks make` into a
# temporary rocks tree, as a Lua user installs nnlua, and checks that a
# stock lua5.4 then finds nn there. By hand (a full build: about a minute on
# two cores, so not a ctest test); needs Debian's luarocks (apt-get install
# luarocks), nothing from the network: lua-cjson and lua-argparse come from
# Debian, hence --deps-mode none.
#   tools/check_rockspec.sh
set -euo pipefail
cd "$(dirname "$0")/.."

command -v luarocks >/dev/null || { echo "check_rockspec: luarocks is missing: apt-get install luarocks" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# A copy of the checkout's files, so that luarocks' build.luarocks/ stays out of it.
git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$work"
(cd "$work" && luarocks --lua-version 5.4 make --tree "$work/tree" --deps-mode none nnlua-scm-1.rockspec >"$work/log" 2>&1) \
  || { tail -30 "$work/log"; echo "check_rockspec: FAILED (luarocks make)"; exit 1; }

out=$(lua5.4 -e "package.cpath = '$work/tree/lib/lua/5.4/?.so;' .. package.cpath" \
             -e 'local nn = require "nn"; io.write(nn._VERSION, " ", tostring(nn.ones(2, 3):sum():item()))')
[[ "$out" == "nnlua 0.1.0 6.0" ]] || { echo "check_rockspec: FAILED: lua5.4 said '$out'"; exit 1; }
"$work/tree/bin/nnlua" -e 'assert(nn.ones(1):item() == 1)'
echo "check_rockspec: PASSED (luarocks make, then require 'nn' from the tree under lua5.4)"
