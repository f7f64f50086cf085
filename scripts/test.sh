#!/usr/bin/env bash
# Sets up (apt packages, build) and runs every test: format check, the full ctest suite
# (engine, plugin via the lilv test host, tools, service), and the engine unit tests again
# under AddressSanitizer + UndefinedBehaviorSanitizer. Ends with "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
export STEMSPHERE_WERROR=ON
bash scripts/setup.sh || { echo "setup/build failed"; echo "0 passed, 1 failed"; exit 1; }

passed=0; failed=0
count() { # $1 = ctest log; a run that reports no totals (crash, no tests) counts as a failure
  local total fails
  total=$(grep -Eo 'out of [0-9]+' "$1" | tail -1 | grep -Eo '[0-9]+')
  fails=$(grep -Eo '[0-9]+ tests failed' "$1" | tail -1 | grep -Eo '^[0-9]+')
  if [ -z "$total" ] || [ "$total" -eq 0 ]; then failed=$((failed + 1)); return; fi
  fails=${fails:-0}
  passed=$((passed + total - fails)); failed=$((failed + fails))
}

echo "== clang-format"
mapfile -t srcs < <(git ls-files '*.cpp' '*.h' '*.hpp' '*.cc' 2>/dev/null)
if [ ${#srcs[@]} -gt 0 ] && ! clang-format --dry-run --Werror "${srcs[@]}" 2>/tmp/stemsphere-format.log; then
  head -20 /tmp/stemsphere-format.log; echo "clang-format: FAILED"; failed=$((failed + 1))
else
  echo "clang-format: ok (${#srcs[@]} files)"; passed=$((passed + 1))
fi

echo "== ctest (build/)"
(cd build && ctest --output-on-failure -j2 --timeout 900) 2>&1 | tee /tmp/stemsphere-ctest.log
count /tmp/stemsphere-ctest.log

echo "== engine tests under ASan + UBSan (build-asan/)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSTEMSPHERE_SANITIZE=ON \
      -DSTEMSPHERE_ENGINE_ONLY=ON -DSTEMSPHERE_WERROR=ON >/dev/null &&
  cmake --build build-asan -j"$(nproc)" >/tmp/stemsphere-asan-build.log 2>&1 ||
  { tail -30 /tmp/stemsphere-asan-build.log; failed=$((failed + 1)); }
(cd build-asan && ctest --output-on-failure -j2 -L engine) 2>&1 | tee /tmp/stemsphere-asan.log
count /tmp/stemsphere-asan.log

echo
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
