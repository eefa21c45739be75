#!/usr/bin/env bash
# Consumer route 2: tools/install into a prefix, then a plain g++ build of
# the hello example through pkg-config (shared library), and one against
# libkmfuse.a (static); both are mounted and read.
set -uo pipefail
source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/consumer/mount_lib.sh"

repo=$(repo_root)
prefix=$TEST_TMPDIR/prefix
# tools/install runs Bazel in the source tree: a nested Bazel needs its own
# output root and must not touch the outer one's bazel-* symlinks (install
# passes --symlink_prefix=/).
KMFUSE_BAZEL_STARTUP="--batch --output_user_root=${KMFUSE_NESTED_BAZEL_ROOT:-/tmp/kmfuse-nested-bazel-$(id -u)}" \
  HOME=$TEST_TMPDIR/home timeout -k 10 480 "$repo/tools/install" "$prefix" \
  || fail "tools/install $prefix failed"

for h in filesystem reply fuse_abi server memfs passthrough blocking_calls sync; do
  [[ -f $prefix/include/kmfuse/$h.h ]] || fail "missing $prefix/include/kmfuse/$h.h"
done
nm -C --defined-only "$prefix/lib/libkmfuse.a" 2>/dev/null | grep "kmfuse::Server::Start" >/dev/null \
  || fail "libkmfuse.a lacks kmfuse::Server::Start"
for sym in 'kmfuse::Server::Run' 'kmfuse::MemFs::Create' 'kmfuse::PassthroughFs::Create'; do
  nm -DC --defined-only "$prefix/lib/libkmfuse.so" | grep -F "$sym" >/dev/null \
    || fail "libkmfuse.so does not export $sym"
done

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
cflags=$(pkg-config --cflags kmfuse) || fail "pkg-config --cflags kmfuse"
libs=$(pkg-config --libs kmfuse) || fail "pkg-config --libs kmfuse"
# Every installed header compiles on its own with only the installed set
# (an installed header including one that is not installed fails here).
for h in "$prefix"/include/kmfuse/*.h; do
  echo "#include \"kmfuse/$(basename "$h")\"" >"$TEST_TMPDIR/one_header.cc"
  g++ -std=c++17 -fsyntax-only -Wall -Wextra -Werror "$TEST_TMPDIR/one_header.cc" $cflags \
    || fail "installed header kmfuse/$(basename "$h") does not compile on its own"
done
src=$TEST_SRCDIR/$TEST_WORKSPACE/fs/examples/hello.cc
# shellcheck disable=SC2086
g++ -Wall -Wextra -Werror -o "$TEST_TMPDIR/hello_shared" "$src" $cflags $libs \
  || fail "g++ hello.cc \$(pkg-config --cflags --libs kmfuse) failed"
# shellcheck disable=SC2086
g++ -Wall -Wextra -Werror -o "$TEST_TMPDIR/hello_static" "$src" $cflags \
  "$prefix/lib/libkmfuse.a" ${libs/-lkmfuse/} || fail "static link against libkmfuse.a failed"
ldd "$TEST_TMPDIR/hello_shared" | grep "$prefix/lib/libkmfuse.so" >/dev/null \
  || fail "hello_shared does not load $prefix/lib/libkmfuse.so"
ldd "$TEST_TMPDIR/hello_static" | grep libkmfuse >/dev/null && fail "hello_static loads libkmfuse.so"

for variant in shared static; do
  mnt=$TEST_TMPDIR/kmfuse-$variant
  serve "$TEST_TMPDIR/hello_$variant" "$mnt" -f
  check_hello "$mnt"
  stop_server
done
echo PASS
