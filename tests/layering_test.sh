#!/usr/bin/env bash
# The folders are the layers (tools/layering_check):
#   1. the source tree the runfiles point into keeps every rule (exit 0);
#   2. a clean fixture tree passes, and each rule broken once in a copy of it
#      (one #include or one BUILD dep) makes the checker exit 1 naming the
#      offending file, so the check can fail.
# Tagged external in tests/BUILD: it reads the whole tree, which Bazel does
# not see as inputs, so it never answers from the cache.
set -uo pipefail
runfiles=$TEST_SRCDIR/$TEST_WORKSPACE
check=$runfiles/tools/layering_check
repo=$(dirname "$(dirname "$(readlink -f "$check")")")
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

for d in uring fs daemon; do
  [[ -d $repo/$d ]] || { echo "FAIL: no $d/ beside $(readlink -f "$check")"; exit 1; }
done

# 1. The real tree.
if out=$(python3 "$check" "$repo" 2>&1); then
  echo "tree: clean"
else
  echo "$out"
  fail "the source tree breaks the folder layers (above)"
fi

# 2. Fixtures: a tiny tree with one file per layer, all legal.
work=${TEST_TMPDIR:-$(mktemp -d)}/layering
make_clean() {
  local t=$1
  rm -rf "$t"
  mkdir -p "$t"/{uring/base,fs/abi,daemon/proto}
  cat > "$t/fs/abi/BUILD" <<'EOF'
cc_library(
    name = "abi",
    hdrs = ["fuse_abi.h"],
    include_prefix = "kmfuse",
    strip_include_prefix = "/fs/abi",
)
EOF
  cat > "$t/uring/base/BUILD" <<'EOF'
cc_library(
    name = "sync",
    hdrs = ["sync.h"],
    include_prefix = "kmfuse",
    strip_include_prefix = "/uring/base",
    deps = ["//tools/deps:absl"],
)
EOF
  cat > "$t/uring/BUILD" <<'EOF'
cc_library(
    name = "ring",
    hdrs = ["ring.h"],
    deps = ["//uring/base:sync", "//tools/deps:uring"],
)
EOF
  cat > "$t/fs/BUILD" <<'EOF'
cc_library(
    name = "reply",
    hdrs = ["reply.h"],
    deps = ["//fs/abi", "//uring/base:sync"],
)
EOF
  cat > "$t/daemon/proto/BUILD" <<'EOF'
cc_library(
    name = "proto",
    hdrs = ["request.h"],
    deps = ["//fs:reply", "//fs/abi"],
)
EOF
  cat > "$t/daemon/BUILD" <<'EOF'
cc_library(
    name = "queue",
    hdrs = ["queue.h"],
    deps = ["//daemon/proto", "//uring:ring"],
)

# Tests may use anything.
cc_test(
    name = "queue_test",
    srcs = ["queue_test.cc"],
    deps = [":queue", "//tests/testing"],
)
EOF
  echo '#include <cstdint>' > "$t/fs/abi/fuse_abi.h"
  echo '#include <mutex>' > "$t/uring/base/sync.h"
  printf '#include <liburing.h>\n#include "kmfuse/sync.h"\n' > "$t/uring/ring.h"
  printf '#include "kmfuse/fuse_abi.h"\n#include "kmfuse/sync.h"\n' > "$t/fs/reply.h"
  printf '#include "kmfuse/fuse_abi.h"\n#include "fs/reply.h"\n' > "$t/daemon/proto/request.h"
  printf '#include "daemon/proto/request.h"\n#include "uring/ring.h"\n' > "$t/daemon/queue.h"
  printf '#include "daemon/queue.h"\n#include "tests/testing/daemon_process.h"\n' \
    > "$t/daemon/queue_test.cc"
}

make_clean "$work/clean"
if out=$(python3 "$check" "$work/clean" 2>&1); then
  echo "fixture clean: passes"
else
  echo "$out"
  fail "the clean fixture was refused"
fi

# expect_violation NAME FILE LINE-TO-APPEND: FILE (relative) gets the line;
# the checker must exit 1 and name FILE.
expect_violation() {
  local name=$1 file=$2 line=$3 t=$work/$1 out rc
  make_clean "$t"
  echo "$line" >> "$t/$file"
  out=$(python3 "$check" "$t" 2>&1)
  rc=$?
  if [[ $rc -ne 1 ]]; then
    echo "$out"
    fail "$name: exit $rc, want 1"
  elif ! grep -q "^$file:" <<<"$out"; then
    echo "$out"
    fail "$name: the report does not name $file"
  else
    echo "fixture $name: refused: $(grep "^$file:" <<<"$out" | head -1)"
  fi
}

expect_violation uring-includes-fs uring/ring.h '#include "fs/reply.h"'
expect_violation uring-includes-fuse-abi uring/ring.h '#include "kmfuse/fuse_abi.h"'
expect_violation uring-includes-linux-fuse uring/ring.h '#include <linux/fuse.h>'
expect_violation uring-includes-daemon uring/ring.h '#include "daemon/queue.h"'
expect_violation base-includes-ring uring/base/sync.h '#include <liburing.h>'
expect_violation fs-includes-daemon fs/reply.h '#include "daemon/proto/request.h"'
expect_violation fs-includes-uring fs/reply.h '#include "uring/ring.h"'
expect_violation abi-includes-fs fs/abi/fuse_abi.h '#include "fs/reply.h"'
expect_violation proto-includes-uring daemon/proto/request.h '#include "uring/ring.h"'
expect_violation proto-includes-liburing daemon/proto/request.h '#include <liburing.h>'
expect_violation daemon-includes-tests daemon/queue.h '#include "tests/testing/daemon_process.h"'
expect_violation fs-build-dep-daemon fs/BUILD 'cc_library(
    name = "bad",
    deps = ["//daemon:queue"],
)'
expect_violation proto-build-dep-uring daemon/proto/BUILD 'cc_library(
    name = "bad",
    deps = ["//uring:ring"],
)'
expect_violation uring-build-dep-abi uring/BUILD 'cc_library(
    name = "bad",
    deps = ["//fs/abi"],
)'

if [[ $fails -ne 0 ]]; then
  echo "$fails failure(s)"
  exit 1
fi
echo "PASS"
