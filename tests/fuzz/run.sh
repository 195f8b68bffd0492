#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The bounded fuzzing run (ctest: fuzz_run, LABELS fuzz): builds the fuzz targets with
# sanitizers and a fuzzing engine in their own build dir, then fuzzes each for SECONDS.
#   tests/fuzz/run.sh [SECONDS]        (default 8; env GW_FUZZ_SECONDS)
# env: GW_FUZZ_BUILD  build dir (default <repo>/build-fuzz)
#      GW_FUZZ_CXX    compiler (default: the first clang++ that compiles std::expected, for
#                     -fsanitize=fuzzer; else g++ with libclang-rt's libFuzzer engine)
# New inputs go to a scratch corpus, never into the committed one. A crash fails the run and
# leaves crash-* in $GW_FUZZ_BUILD/artifacts/: copy it to tests/fuzz/regressions/<target>/.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
build=${GW_FUZZ_BUILD:-$repo/build-fuzz}
# Three targets in 24 s (CI's 30 minutes; run longer by hand: run.sh 300).
seconds=${1:-${GW_FUZZ_SECONDS:-8}}
targets=(http api state)

pick_cxx() {
  local probe='#include <expected>
int main() { std::expected<int, int> e{1}; return *e - 1; }'
  for cxx in clang++-19 clang++-18 clang++-17 clang++-16 clang++; do
    if command -v "$cxx" >/dev/null &&
       echo "$probe" | "$cxx" -std=c++2b -x c++ -fsyntax-only - 2>/dev/null; then
      echo "$cxx"; return
    fi
  done
  echo g++
}
cxx=${GW_FUZZ_CXX:-$(pick_cxx)}
cxx=$(command -v "$cxx")
# A build dir is tied to one compiler: start it over when the choice changed.
if [ -f "$build/CMakeCache.txt" ] &&
   ! grep -qx "CMAKE_CXX_COMPILER:[A-Z]*=$cxx" "$build/CMakeCache.txt"; then
  rm -rf "$build/CMakeCache.txt" "$build/CMakeFiles"
fi
echo "fuzz: building in $build with $cxx"
cmake -S "$repo" -B "$build" -DCMAKE_CXX_COMPILER="$cxx" -DGW_FUZZ=ON -DGW_TEST_ROOMS=fuzz \
  -DGW_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.configure.log" 2>&1 ||
  { cat "$build.configure.log"; exit 1; }
cmake --build "$build" --target "${targets[@]/#/gw_fuzz_}" -j2 >"$build.build.log" 2>&1 ||
  { tail -50 "$build.build.log"; exit 1; }
engine=$(cat "$build/tests/fuzz/engine.txt")
echo "fuzz: engine $engine, ${seconds}s per target"

# g++'s UBSan is a runtime apart from ASan's: abort, so the engine's SIGABRT handler saves the input.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-abort_on_error=1:halt_on_error=1:print_stacktrace=1}
artifacts=$build/artifacts
mkdir -p "$artifacts"
status=0
for name in "${targets[@]}"; do
  scratch=$build/corpus-$name # grows across runs; the committed corpus stays as it is
  mkdir -p "$scratch"
  flags=(-max_total_time="$seconds" -dict="$here/$name.dict" -artifact_prefix="$artifacts/$name-"
         -max_len=4096 -timeout=5 -rss_limit_mb=1024 -print_final_stats=1)
  [ "$engine" = libfuzzer-gcc ] && flags+=(-use_value_profile=1)
  # fuzz_state runs a lot of code per input: libFuzzer's entropic scheduling then spends most of
  # the time updating feature frequencies (measured: 97 exec/s with it, 640 without).
  [ "$name" = state ] && flags+=(-entropic=0)
  [ "$engine" = replay ] && flags+=(-seed="${GW_FUZZ_SEED:-1}")
  echo "fuzz: $name"
  if ! "$build/tests/fuzz/gw_fuzz_$name" "${flags[@]}" "$scratch" "$here/corpus/$name" \
       "$here/regressions/$name" >"$build/fuzz-$name.log" 2>&1; then
    status=1
    tail -40 "$build/fuzz-$name.log"
    echo "fuzz: $name FAILED; inputs in $artifacts:"; ls "$artifacts" | grep "^$name-" || true
  else
    grep -E '^(stat::number_of_executed_units|stat::new_units_added|replay:|Done)' \
      "$build/fuzz-$name.log" || tail -3 "$build/fuzz-$name.log"
  fi
done
exit $status
