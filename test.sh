#!/usr/bin/env bash
# test.sh: every test, twice: an optimised build (build/) and one under
# AddressSanitizer + UBSan (build-asan/), both with warnings as errors.
# build/ has the CUDA backend wherever nvcc is found (it runs its whole suite
# without a GPU: CUDA is then unavailable, and the test device of
# tests/c/fake_cuda.c stands in); build-asan/ is the CPU-only build.
set -uo pipefail
cd "$(dirname "$0")" || exit 1

./tools/setup.sh || { echo "test.sh: FAILED (setup)"; exit 1; }

failed=()
passed=()

# run_build DIR CMAKE-OPTIONS...: configure, build, ctest; records the outcome.
run_build() {
  local dir=$1
  shift
  echo "==== $dir: configure ($*)"
  if ! cmake -S . -B "$dir" -DNN_WERROR=ON "$@"; then
    failed+=("$dir (configure)")
    return
  fi
  echo "==== $dir: build"
  if ! cmake --build "$dir" -j2; then
    failed+=("$dir (build)")
    return
  fi
  echo "==== $dir: test"
  if ! ctest --test-dir "$dir" --output-on-failure -j2; then
    failed+=("$dir (tests)")
    return
  fi
  passed+=("$dir")
}

run_build build -DNN_SANITIZE=OFF -DNN_CUDA=AUTO
run_build build-asan -DNN_SANITIZE=ON -DNN_CUDA=OFF

join() { local out="" s; for s in "$@"; do out+="${out:+, }$s"; done; echo "$out"; }
if [[ ${#failed[@]} -eq 0 ]]; then
  echo "test.sh: PASSED ($(join "${passed[@]}"))"
  exit 0
fi
echo "test.sh: FAILED: $(join "${failed[@]}")${passed[*]:+; passed: $(join "${passed[@]}")}"
exit 1
