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
count_pytest() { # $1 = pytest log, $2 = its exit status; exit 5 (no tests collected) or any
  local p f e  # other failure without a count in the summary counts as one failure
  p=$(grep -Eo '[0-9]+ passed' "$1" | tail -1 | grep -Eo '^[0-9]+')
  f=$(grep -Eo '[0-9]+ failed' "$1" | tail -1 | grep -Eo '^[0-9]+')
  e=$(grep -Eo '[0-9]+ errors?' "$1" | tail -1 | grep -Eo '^[0-9]+')
  p=${p:-0}; f=${f:-0}; e=${e:-0}
  passed=$((passed + p)); failed=$((failed + f + e))
  if [ "$2" -ne 0 ] && [ $((f + e)) -eq 0 ]; then failed=$((failed + 1)); fi
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

echo "== pytest (tests/eval/python: the real-music evaluation pipeline; tests/models/python: training data)"
PYTHONDONTWRITEBYTECODE=1 /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/eval/python \
  tests/models/python \
  2>&1 | tee /tmp/stemsphere-pytest.log
count_pytest /tmp/stemsphere-pytest.log "${PIPESTATUS[0]}"

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
