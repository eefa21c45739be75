#!/usr/bin/env bash
# Smoke test of tools/bench: a --quick run against the given kmfused binary
# must succeed and produce results for native and at least one kmfused
# transport, the machine's floor, and floors per op and daemon CPU per op
# for the kmfused results.  Usage: bench_quick_test.sh PATH/TO/kmfused
set -uo pipefail

kmfused=${1:?usage: bench_quick_test.sh PATH/TO/kmfused}
[[ $kmfused == /* ]] || kmfused=$PWD/$kmfused
out=${TEST_TMPDIR:-$(mktemp -d -t kmfuse-bench-test.XXXXXX)}/bench

here=$(dirname "$0")
bench=$here/../bench
[[ -x $bench ]] || bench=$(dirname "$(readlink -f "$0")")/../bench
if [[ ! -x $bench ]]; then
  echo "bench_quick_test: cannot find tools/bench next to $0" >&2
  exit 1
fi

"$bench" --quick --no-build --kmfused "$kmfused" --out "$out"
rc=$?
if ((rc != 0)); then
  echo "bench_quick_test: tools/bench --quick exited $rc" >&2
  exit 1
fi

python3 - "$out/results.json" <<'PY'
import json, sys
path = sys.argv[1]
try:
    doc = json.load(open(path))
except (OSError, ValueError) as e:
    print(f"bench_quick_test: cannot read {path}: {e}", file=sys.stderr)
    sys.exit(1)
res = doc.get("results", {})
def has(name):
    return any(runs for runs in res.get(name, {}).values())
kmf = sorted(n for n in res if n.startswith("kmfused-") and has(n))
problems = []
if not has("native"):
    problems.append("no results for native")
if not kmf:
    problems.append("no results for any kmfused transport")
floor = doc.get("floor") or {}
if not (floor.get("pipe_rtt_same_cpu") or {}).get("median"):
    problems.append("no floor measured: " + str(doc.get("floor_error")))
else:
    # Every QD1 result of a FUSE configuration carries floors per op and
    # daemon CPU per op.
    for name in kmf:
        for job, runs in res[name].items():
            for r in runs:
                wrong_kind = r.get("floor") != "cross-cpu" and bool(floor.get("pipe_rtt_cross_cpu"))
                if job == "randread-4k-qd1-direct" and (r.get("floors_per_op") is None or wrong_kind):
                    problems.append(f"{name} {job}: no cross-CPU floors per op")
                if r.get("daemon_cpu_s") is not None and r.get("daemon_cpu_us_per_op") is None:
                    problems.append(f"{name} {job}: no daemon CPU per op")
if doc.get("errors"):
    problems.append("errors: " + "; ".join(doc["errors"]))
if problems:
    print("bench_quick_test: FAIL: " + "; ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"bench_quick_test: OK: native and {', '.join(kmf)}")
PY
