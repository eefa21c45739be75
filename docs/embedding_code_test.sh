#!/usr/bin/env bash
# docs/embedding.md's program (built by //docs:embedding_demo) mounted and
# read: each of its files exercises one reply style.
set -uo pipefail
source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/consumer/mount_lib.sh"

mnt=$TEST_TMPDIR/kmfuse-demo
serve "$TEST_SRCDIR/$TEST_WORKSPACE/docs/embedding_demo" "$mnt"
expect() {
  local got
  got=$(timeout -s KILL 10 cat "$mnt/$1") || fail "reading $mnt/$1"
  [[ $got == "$2" ]] || fail "$mnt/$1: got '$got', want '$2'"
  echo "ok: $1"
}
expect greeting "hello from kmfuse"
expect slow "answered from a worker thread"
expect motd "read straight from a file descriptor"
got=$(timeout -s KILL 10 ls "$mnt" | tr '\n' ' ')
[[ $got == "greeting motd slow " ]] || fail "ls $mnt: got '$got'"
timeout -s KILL 10 cat "$mnt/missing" 2>/dev/null && fail "$mnt/missing exists"
stop_server
echo PASS
