#!/usr/bin/env bash
# tests/stress_threads.sh [ITERATIONS [BUILD_DIR]]: run by hand, not by ctest.
#
# The tests that start threads and fork (the specs serialize, sweep, data,
# system and threads; the C tests host_close, test_prefetch and
# test_parallel) ITERATIONS times (default 50) under `ctest -j2` in
# BUILD_DIR (default build-asan, which must be built), then the whole
# suite once. Reports the failed runs (their logs are kept in
# BUILD_DIR/stress/) and the /tmp/lua_* entries the tests left behind
# (os.tmpname's files and folders); exits 1 when a run failed or anything
# was left.
#
# Run as root with unshare(1), the tests see a /tmp of their own (a tmpfs in
# a private mount namespace), so the count is theirs alone; otherwise it is
# the growth of the shared /tmp, which other users' programs may change too.
# Low priority is advised: nice tests/stress_threads.sh
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

iterations=${1:-50}
build=${2:-build-asan}
if ! [[ $iterations =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 [ITERATIONS [BUILD_DIR]]" >&2
  exit 2
fi
if [[ ! -f $build/CTestTestfile.cmake ]]; then
  echo "$0: $build is not a configured build (cmake -S . -B $build -DNN_SANITIZE=ON && cmake --build $build)" >&2
  exit 2
fi

if [[ -z ${NN_STRESS_PRIVATE_TMP:-} && $(id -u) -eq 0 ]] && command -v unshare >/dev/null; then
  # shellcheck disable=SC2016 # $0 and $@ belong to the inner shell
  exec unshare -m --propagation private env NN_STRESS_PRIVATE_TMP=1 \
    bash -c 'mount -t tmpfs stress-tmp /tmp && exec "$0" "$@"' "$0" "$@"
fi
where="the shared /tmp"
[[ -n ${NN_STRESS_PRIVATE_TMP:-} ]] && where="a private /tmp"

logs=$build/stress
mkdir -p "$logs" || exit 1
rm -f "$logs"/*.log

leftovers() { find /tmp -maxdepth 1 -name 'lua_*' | wc -l; }

pattern='^(lua\.(serialize|sweep|data|system|threads)_spec|c\.(host_close|test_prefetch|test_parallel))$'
failed_runs=0
left=0
start=$(leftovers)
for ((i = 1; i <= iterations; i++)); do
  log=$logs/run_$i.log
  if ctest --test-dir "$build" -j2 -R "$pattern" --output-on-failure >"$log" 2>&1; then
    rm -f "$log"
  else
    failed_runs=$((failed_runs + 1))
    which=$(sed -n 's/^[[:space:]]*[0-9]* - \([^ ]*\).*/\1/p' "$log" | tr '\n' ' ')
    echo "run $i: FAILED: ${which:-?} (log: $log)"
  fi
  now=$(leftovers)
  if ((now != start)); then
    echo "run $i: /tmp/lua_* went from $start to $now"
    left=$((left + now - start))
    start=$now
  fi
done
echo "thread and fork tests: $failed_runs of $iterations runs failed; $left /tmp/lua_* entries left ($where)"

log=$logs/full_suite.log
before=$(leftovers)
full="passed"
if ! ctest --test-dir "$build" -j2 --output-on-failure >"$log" 2>&1; then
  full="FAILED (log: $log)"
else
  rm -f "$log"
fi
after=$(leftovers)
echo "whole suite: $full; /tmp/lua_* entries before $before, after $after ($where)"
if ((after > before)); then
  find /tmp -maxdepth 1 -name 'lua_*' -printf '  left: %p\n' | head -40
fi

if ((failed_runs > 0 || left > 0)) || [[ $full != passed ]] || ((after > before)); then
  echo "stress: FAILED"
  exit 1
fi
echo "stress: PASSED"
