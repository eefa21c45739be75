# Sourced by the consumer tests: run a kmfuse server binary in a child
# process, wait for its mount, and tear everything down on any exit.
#
# serve BIN MNT [ARGS...]  starts BIN MNT ARGS in the background, waits up to
#                          10 s for the mount; sets SERVER_PID and CONN_ID
# stop_server              SIGTERM, waits up to 10 s, checks the mount left
# The EXIT trap aborts the connection (fusectl), detaches the mount and
# kills the server, whatever state the test is in. The test itself only ever
# touches the mount through `timeout -s KILL`, so a stuck server cannot block
# it: a task waiting on a FUSE request dies on SIGKILL.

SERVER_PID=""
CONN_ID=""
MOUNTS=()

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# The fusectl connection number of the mount at $1 from mountinfo (no access
# to the mount itself, which could block).
conn_of() {
  awk -v m="$1" '$5 == m {split($3, d, ":"); print d[2]}' /proc/self/mountinfo | tail -1
}

cleanup_mounts() {
  local m c
  for m in "${MOUNTS[@]}"; do
    c=$(conn_of "$m")
    if [[ -n $c && -w /sys/fs/fuse/connections/$c/abort ]]; then
      echo 1 >"/sys/fs/fuse/connections/$c/abort" 2>/dev/null || true
    fi
    if [[ -n $c ]]; then umount -l "$m" 2>/dev/null || true; fi
  done
  if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
trap cleanup_mounts EXIT

serve() {
  local bin=$1 mnt=$2
  shift 2
  mkdir -p "$mnt"
  MOUNTS+=("$mnt")
  "$bin" "$mnt" "$@" &
  SERVER_PID=$!
  local i
  for i in $(seq 100); do
    CONN_ID=$(conn_of "$mnt")
    [[ -n $CONN_ID ]] && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || fail "$bin exited before mounting $mnt"
    sleep 0.1
  done
  fail "$bin did not mount $mnt within 10 s"
}

stop_server() {
  kill -TERM "$SERVER_PID"
  local i rc
  for i in $(seq 100); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$SERVER_PID" 2>/dev/null && fail "server did not exit 10 s after SIGTERM"
  wait "$SERVER_PID"
  rc=$?
  SERVER_PID=""
  [[ $rc -eq 0 ]] || fail "server exited $rc after SIGTERM"
  local m
  for m in "${MOUNTS[@]}"; do
    [[ -z $(conn_of "$m") ]] || fail "$m is still mounted after the server exited"
  done
}

# check_hello MNT: the hello example's file reads back.
check_hello() {
  local got
  got=$(timeout -s KILL 10 cat "$1/hello") || fail "reading $1/hello failed"
  [[ $got == "Hello, world!" ]] || fail "$1/hello: got '$got'"
  timeout -s KILL 10 ls "$1" | grep -x hello >/dev/null || fail "ls $1 does not list hello"
  if timeout -s KILL 10 sh -c "echo x >'$1/hello'" 2>/dev/null; then
    fail "writing $1/hello succeeded on a read-only mount"
  fi
  echo "ok: $1/hello reads 'Hello, world!'"
}

# Runs the nested Bazel: batch mode (no server left behind), its own output
# root (the outer Bazel holds the default one), HOME set, bounded in time.
nested_bazel() {
  local root=${KMFUSE_NESTED_BAZEL_ROOT:-/tmp/kmfuse-nested-bazel-$(id -u)}
  mkdir -p "$root" "$TEST_TMPDIR/home"
  HOME=$TEST_TMPDIR/home timeout -k 10 480 bazel --batch --output_user_root="$root" "$@"
}

# The source tree this test's runfiles point into.
repo_root() {
  dirname "$(dirname "$(readlink -f "$TEST_SRCDIR/$TEST_WORKSPACE/tools/install")")"
}
