#!/usr/bin/env bash
# Consumer route 1: another Bazel workspace takes kmfuse through
# local_repository and builds the hello example against @kmfuse//:kmfuse;
# the binary is mounted and read.
set -uo pipefail
source "$TEST_SRCDIR/$TEST_WORKSPACE/tests/consumer/mount_lib.sh"

repo=$(repo_root)
ws=$TEST_TMPDIR/consumer
mkdir -p "$ws"
cat >"$ws/WORKSPACE" <<WS
workspace(name = "consumer")
local_repository(name = "kmfuse", path = "$repo")
# kmfuse's offline stand-ins for Bazel's implicit dependencies.
local_repository(name = "rules_cc", path = "$repo/tools/bazel/rules_cc")
local_repository(name = "rules_java", path = "$repo/tools/bazel/rules_java")
local_repository(name = "remote_coverage_tools", path = "$repo/tools/bazel/remote_coverage_tools")
WS
cat >"$ws/.bazelrc" <<'RC'
build --cxxopt=-std=c++17 --host_cxxopt=-std=c++17 --copt=-Wall --copt=-Wextra
build --spawn_strategy=local
RC
cat >"$ws/BUILD" <<'B'
cc_binary(
    name = "hello",
    srcs = ["hello.cc"],
    deps = ["@kmfuse//:kmfuse"],
)
B
cp "$TEST_SRCDIR/$TEST_WORKSPACE/fs/examples/hello.cc" "$ws/hello.cc"

(cd "$ws" && nested_bazel build //:hello) || fail "nested bazel build //:hello failed"
[[ -x $ws/bazel-bin/hello ]] || fail "no $ws/bazel-bin/hello"

mnt=$TEST_TMPDIR/kmfuse-consumer
serve "$ws/bazel-bin/hello" "$mnt" -f
check_hello "$mnt"
stop_server
echo PASS
