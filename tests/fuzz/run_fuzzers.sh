#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz and runs each for a bounded time.
# A crash is copied into tests/fuzz/regressions/<target>/, where ctest replays it from then on
# (fuzz.regressions.<target>, in every build); fix the bug, then commit the input.
#
#   tests/fuzz/run_fuzzers.sh [seconds per target, default 60] [target ...]
#   targets: handshake route_yaml frame_tracker (default: all)
# Environment: BUILD_DIR (default build-fuzz), JOBS (default 2).
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(handshake route_yaml frame_tracker)
build=${BUILD_DIR:-$root/build-fuzz}
jobs=${JOBS:-2}

export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=1
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DWSGATE_FUZZ=ON >/dev/null
ninja -C "$build" -j "$jobs" "${targets[@]/#/wsgate_fuzz_}"

status=0
for target in "${targets[@]}"; do
  corpus=$build/corpus/$target  # the working corpus grows here, the seeds stay untouched
  artifacts=$build/artifacts/$target
  rm -rf "$artifacts"  # only this run's findings are reported
  mkdir -p "$corpus" "$artifacts"
  echo "== $target: ${seconds}s"
  if ! "$build/bin/wsgate_fuzz_$target" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" \
      "$corpus" "$root/tests/fuzz/corpus/$target" "$root/tests/fuzz/regressions/$target" \
      2>"$build/$target.log"; then
    status=1
    tail -40 "$build/$target.log"
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added)|^Done' "$build/$target.log" || true
  for crash in "$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/timeout-* "$artifacts"/oom-*; do
    [ -e "$crash" ] || continue
    cp "$crash" "$root/tests/fuzz/regressions/$target/"
    echo "!! $target: $(basename "$crash") saved to tests/fuzz/regressions/$target/"
    status=1
  done
done
exit $status
