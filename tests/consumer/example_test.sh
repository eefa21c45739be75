#!/usr/bin/env bash
# Consumer route 3: the in-repo example (//fs/examples:hello) mounted and read.
set -uo pipefail
source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/consumer/mount_lib.sh"

mnt=$TEST_TMPDIR/kmfuse-hello
serve "$TEST_SRCDIR/$TEST_WORKSPACE/fs/examples/hello" "$mnt"
check_hello "$mnt"
stop_server
echo PASS
