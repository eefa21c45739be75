#!/usr/bin/env bash
# Consumer route 3: the in-repo example (//fs/examples:hello) mounted and read,
# with the flags every FUSE example takes: -f (foreground), -d (a line per
# request), -o (options), and without -f (returns once the mount is live,
# serves in the background, ends with umount).
set -uo pipefail
source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/consumer/mount_lib.sh"
hello=$TEST_SRCDIR/$TEST_WORKSPACE/fs/examples/hello

mnt=$TEST_TMPDIR/kmfuse-hello
serve "$hello" "$mnt" -f -o fsname=hello-f,transport=read
check_hello "$mnt"
awk -v m="$mnt" '$5 == m' /proc/self/mountinfo | grep -q " fuse.hello hello-f " \
  || fail "-o fsname=hello-f: mountinfo shows $(awk -v m="$mnt" '$5 == m' /proc/self/mountinfo)"
stop_server

# -d: foreground, one line per request on stderr.
serve "$hello" "$mnt" -d 2>"$TEST_TMPDIR/debug.log"
check_hello "$mnt"
stop_server
grep -q . "$TEST_TMPDIR/debug.log" || fail "-d logged nothing"
echo "ok: -d logged $(wc -l <"$TEST_TMPDIR/debug.log") lines"

# Usage errors: status 2, nothing mounted.
"$hello" "$mnt" -o no_such_option 2>/dev/null
[[ $? -eq 2 ]] || fail "hello -o no_such_option did not exit 2"
"$hello" 2>/dev/null
[[ $? -eq 2 ]] || fail "hello without a mountpoint did not exit 2"

# No -f: returns 0 once the mount is live; umount ends the daemon.
MOUNTS+=("$mnt")
timeout -s KILL 20 "$hello" "$mnt" -o fsname=hello-bg || fail "hello $mnt (background) failed"
[[ -n $(conn_of "$mnt") ]] || fail "hello returned before $mnt was mounted"
pid=""
for p in /proc/[0-9]*; do
  if [[ $(tr '\0' ' ' <"$p/cmdline" 2>/dev/null) == "$hello $mnt -o fsname=hello-bg " ]]; then
    pid=${p#/proc/}
  fi
done
[[ -n $pid ]] || fail "no background hello process serves $mnt"
check_hello "$mnt"
umount "$mnt" || fail "umount $mnt"
for _ in $(seq 100); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "background hello (pid $pid) still runs 10 s after umount"
[[ -z $(conn_of "$mnt") ]] || fail "$mnt still mounted"
echo "ok: background hello returned with the mount live and exited after umount"
echo PASS
