#!/usr/bin/env bash
# Builds the request decoder + dispatcher fuzzer with clang++-14
# (-fsanitize=fuzzer,address,undefined), outside Bazel's gcc toolchain, and
# fuzzes it for a bounded time over the committed corpus and regressions.
#
# Knobs (environment): KMFUSE_FUZZ_SECONDS (default 30), KMFUSE_FUZZ_CXX
# (default clang++-14). A crash input is kept in the test's undeclared
# outputs (bazel-testlogs/tests/fuzz/fuzz_decoder_test/test.outputs/):
# minimise it, add it to tests/fuzz/regressions/ and fix the bug.
set -euo pipefail

seconds="${KMFUSE_FUZZ_SECONDS:-30}"
cxx="${KMFUSE_FUZZ_CXX:-clang++-14}"
root="${TEST_SRCDIR:?}/${TEST_WORKSPACE:-kmfuse}"
work="${TEST_TMPDIR:?}/fuzz"
out="${TEST_UNDECLARED_OUTPUTS_DIR:-$work/out}"
mkdir -p "$work" "$out"

skip() {
  echo "SKIPPED: $*"
  # A result file of our own so the test counts as skipped, not passed.
  if [[ -n "${XML_OUTPUT_FILE:-}" ]]; then
    cat >"$XML_OUTPUT_FILE" <<XML
<?xml version="1.0" encoding="UTF-8"?>
<testsuites><testsuite name="fuzz_decoder_test" tests="1" skipped="1">
<testcase name="fuzz_decoder_test" classname="tests.fuzz"><skipped message="$*"/></testcase>
</testsuite></testsuites>
XML
  fi
  exit 0
}

command -v "$cxx" >/dev/null 2>&1 || skip "$cxx not installed (tools/setup installs clang-14)"
resdir="$("$cxx" -print-resource-dir 2>/dev/null || true)"
[[ -n "$resdir" && -f "$resdir/lib/linux/libclang_rt.fuzzer-x86_64.a" ]] ||
  skip "libFuzzer runtime missing (libclang-rt-14-dev)"

# "kmfuse/X.h" as Bazel's include_prefix maps it.
inc="$work/include/kmfuse"
mkdir -p "$inc"
ln -sf "$root/fs/abi/fuse_abi.h" "$inc/fuse_abi.h"
for h in filesystem.h reply.h memfs.h; do ln -sf "$root/fs/$h" "$inc/$h"; done
ln -sf "$root/uring/base/sync.h" "$inc/sync.h"

srcs=(
  tests/fuzz/fuzz_main.cc tests/fuzz/harness.cc
  daemon/proto/request.cc daemon/proto/dispatch.cc
  fs/filesystem.cc fs/reply.cc fs/memfs.cc
)
absl=(
  -labsl_synchronization -labsl_graphcycles_internal -labsl_raw_hash_set -labsl_hash
  -labsl_city -labsl_low_level_hash -labsl_status -labsl_statusor -labsl_cord
  -labsl_cordz_info -labsl_cord_internal -labsl_cordz_functions -labsl_cordz_handle
  -labsl_hashtablez_sampler -labsl_exponential_biased -labsl_strerror -labsl_stacktrace
  -labsl_symbolize -labsl_debugging_internal -labsl_demangle_internal -labsl_malloc_internal
  -labsl_time -labsl_civil_time -labsl_time_zone -labsl_str_format_internal -labsl_strings
  -labsl_strings_internal -labsl_int128 -labsl_throw_delegate -labsl_base
  -labsl_spinlock_wait -labsl_raw_logging_internal -labsl_log_severity
  -labsl_bad_optional_access -labsl_bad_variant_access -lpthread
)
bin="$work/kmfuse_request_fuzzer"
start=$(date +%s)
(
  cd "$root"
  # -O1 and frame pointers as the asan config; UBSan findings abort like ASan's.
  objs=()
  for s in "${srcs[@]}"; do
    o="$work/$(basename "${s%.cc}").o"
    "$cxx" -std=c++17 -O1 -g -fno-omit-frame-pointer \
      -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
      -I"$root" -I"$work/include" -c "$s" -o "$o" &
    objs+=("$o")
  done
  wait
  for o in "${objs[@]}"; do [[ -f "$o" ]] || { echo "compile failed: $o"; exit 1; }; done
  "$cxx" -fsanitize=fuzzer,address,undefined "${objs[@]}" "${absl[@]}" -o "$bin"
)
echo "built $bin in $(( $(date +%s) - start ))s"

# libFuzzer writes new inputs into the first directory: a writable copy.
corpus="$work/corpus"
mkdir -p "$corpus"
cp "$root"/tests/fuzz/corpus/* "$corpus"/
regressions=()
for f in "$root"/tests/fuzz/regressions/*; do
  [[ -f "$f" && "$(basename "$f")" != README.md ]] && regressions+=("$f")
done

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:allocator_may_return_null=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"

if (( ${#regressions[@]} )); then
  echo "replaying ${#regressions[@]} regression input(s)"
  "$bin" -runs=1 "${regressions[@]}"
fi

echo "fuzzing for ${seconds}s"
set +e
"$bin" "$corpus" \
  -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
  -print_final_stats=1 -artifact_prefix="$out/" >"$work/fuzz.log" 2>&1
status=$?
set -e
cp "$work/fuzz.log" "$out/fuzz.log"
# Progress pulses and the final stats (or the report); the whole log, with
# libFuzzer's recommended dictionary, is in the outputs.
grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE)|^"|dictionary' "$work/fuzz.log" | tail -n 80
if (( status != 0 )); then
  echo "FAIL: the fuzzer found a problem (exit $status); inputs kept in $out"
  ls -l "$out" || true
  exit 1
fi
echo "PASS: no invariant broken in ${seconds}s"
