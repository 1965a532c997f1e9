#!/usr/bin/env bash
# Installs what is missing, checks the format, builds, and runs every test: the normal build
# (unit, integration, delivery), the AddressSanitizer+UBSan and ThreadSanitizer builds, bounded
# fuzzing, the chaos soak, and the container image.
# Usage: scripts/test.sh [--quick]   (--quick: normal build only, no sanitizers, no image)
# Env: JOBS (default: cores), BUILD_DIR (default build), CTEST_ARGS (extra ctest arguments).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
quick=0
[[ "${1:-}" == "--quick" ]] && quick=1
jobs="${JOBS:-$(nproc)}"
build_dir="${BUILD_DIR:-build}"
# ccache keys on paths: these make a fresh clone or build folder hit the cache.
export CCACHE_BASEDIR="$repo" CCACHE_NOHASHDIR=1

step() { printf '\n=== %s ===\n' "$*"; }
status=0

step "dependencies"
scripts/install-deps.sh all
scripts/fetch-tools.sh

configure_and_build() { # dir, cmake args...
  local dir="$1"
  shift
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  ninja -C "$dir" -j "$jobs"
}

step "format (clang-format --dry-run -Werror)"
# Every tracked C++ file as .clang-format says; a diff fails the run before anything builds.
if ! git ls-files -z '*.cpp' '*.hpp' | xargs -0 clang-format --dry-run -Werror; then
  echo "format: run clang-format -i on the files above" >&2
  status=1
fi

step "build ($build_dir)"
configure_and_build "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo

step "tests ($build_dir)"
ctest_excludes="image"
((quick)) || true
if ! ctest --test-dir "$build_dir" -j "$jobs" --output-on-failure -LE "$ctest_excludes" ${CTEST_ARGS:-}; then
  status=1
fi

if ((quick)); then exit "$status"; fi

step "AddressSanitizer + UBSan build (build-asan)"
configure_and_build build-asan -DCMAKE_BUILD_TYPE=Debug -DWSGATE_SANITIZE=ON
step "tests under ASan+UBSan (unit + integration)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
if ! ctest --test-dir build-asan -j "$jobs" --output-on-failure -L "unit|integration|fuzz" -LE "slow" ${CTEST_ARGS:-}; then
  status=1
fi
unset ASAN_OPTIONS UBSAN_OPTIONS

step "ThreadSanitizer build (build-tsan), unit tests"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DWSGATE_TSAN=ON >/dev/null
ninja -C build-tsan -j "$jobs" $(ninja -C build-tsan -t targets all | grep -o '^wsgate_[a-z]*_tests' | sort -u)
if ! TSAN_OPTIONS="halt_on_error=1:suppressions=$repo/tests/tsan.supp" ctest --test-dir build-tsan -j "$jobs" --output-on-failure -L unit ${CTEST_ARGS:-}; then
  status=1
fi

step "fuzzing: each libFuzzer target for a bounded time (clang, build-fuzz)"
# A crash fails the step and leaves its input in tests/fuzz/regressions/ (replayed by ctest).
if ! tests/fuzz/run_fuzzers.sh "${FUZZ_SECONDS:-30}"; then
  status=1
fi

step "chaos soak (${SOAK_SECONDS:-60} s, 1000 tunnels)"
if ! WSGATE_BIN_DIR="$build_dir/bin" WSGATE_SOURCE_DIR="$repo" \
  /usr/bin/python3 tests/chaos/soak.py --seconds "${SOAK_SECONDS:-60}"; then
  status=1
fi

step "container image (podman)"
if ! ctest --test-dir "$build_dir" --output-on-failure -L image ${CTEST_ARGS:-}; then
  status=1
fi

step "result"
if ((status == 0)); then echo "all test steps passed"; else echo "some test steps FAILED"; fi
exit "$status"
