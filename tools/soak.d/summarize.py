#!/usr/bin/env python3
"""tools/soak's verdict: reads OUT/samples.csv, stress.tsv, fio.tsv and the
native comparison, prints the figures and one line per check, writes them to
OUT/summary.txt, and ends with "soak: N passed, N failed" (exit 1 if any
failed). The rules are stated in tools/soak's header."""
import collections
import csv
import os
import sys

RSS_SLACK_KIB = 32 * 1024
FD_SLACK = 64

out, native_path, seconds, load_end, died, stop_result, storm_rc = sys.argv[1:8]
seconds, load_end = int(seconds), int(load_end)

rows, rest = [], None
with open(os.path.join(out, "samples.csv")) as f:
    for r in csv.DictReader(f):
        if r["elapsed_s"] == "rest":
            rest = r
        else:
            rows.append({k: float(v) for k, v in r.items()})


def tsv(name):
    try:
        with open(os.path.join(out, name)) as f:
            return [l.rstrip("\n").split("\t") for l in f if l.strip()]
    except OSError:
        return []


stress = tsv("stress.tsv")   # t round stressor rc ops status note
fio = tsv("fio.tsv")         # t round rc job_error verify_errors mib
native = dict((l[0], l[1]) for l in tsv(native_path) if len(l) >= 2) if os.path.isabs(native_path) \
    else {}
lines, passed, failed = [], 0, 0


def say(s):
    lines.append(s)
    print(s)


def check(name, ok, detail):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
    say(f"{'pass' if ok else 'FAIL'} {name}: {detail}")


# --- figures -------------------------------------------------------------------
warm = max(30, seconds // 10)
live = [r for r in rows if r["rss_kib"] > 0]
window = [r for r in live if warm <= r["elapsed_s"] <= seconds / 2] or live[:1]
tail = [r for r in live if r["elapsed_s"] >= seconds * 0.9] or live[-1:]
start = live[0] if live else None
wr = max(r["rss_kib"] for r in window) if window else 0
wf = max(r["fds"] for r in window) if window else 0
er = max(r["rss_kib"] for r in tail) if tail else 0
ef = max(r["fds"] for r in tail) if tail else 0
peak_r = max((r["rss_kib"] for r in live), default=0)
peak_f = max((r["fds"] for r in live), default=0)
last = rows[-1] if rows else {}
ops_by = collections.Counter()
fails_by = collections.defaultdict(list)
status_by = collections.defaultdict(collections.Counter)
for l in stress:
    _, _, s, rc, ops, st = l[:6]
    ops_by[s] += int(ops or 0)
    status_by[s][st] += 1
    if st == "fail":
        fails_by[s].append(f"exit {rc}" + (f": {l[6]}" if len(l) > 6 and l[6] else ""))
rounds = max((int(l[1]) for l in stress), default=0)
fio_mib = sum(float(l[5]) for l in fio)
fio_verify = sum(int(l[4]) for l in fio)
fio_bad = [l for l in fio if l[2] != "0" or l[3] != "0"]
storm_ops, storm_err = (int(last.get("storm_ops", 0)), int(last.get("storm_errors", 0)))
if rest:
    storm_ops, storm_err = int(rest["storm_ops"]), int(rest["storm_errors"])

say(f"run: {seconds} s of load (ended at {load_end} s), {len(rows)} samples")
if start:
    say(f"rss_kib: start {start['rss_kib']:.0f}, warm {wr:.0f} (max over {warm}-{seconds // 2} s), "
        f"end {er:.0f} (max over the last 10%), peak {peak_r:.0f}"
        + (f", rest {rest['rss_kib']}" if rest else ""))
    say(f"fds: start {start['fds']:.0f}, warm {wf:.0f}, end {ef:.0f}, peak {peak_f:.0f}"
        + (f", rest {rest['fds']}" if rest else ""))
    say(f"threads: start {start['threads']:.0f}, end {live[-1]['threads']:.0f}")
say(f"stress-ng: {len(stress)} stressor runs in {rounds} rounds, {sum(ops_by.values())} bogo ops, "
    f"{sum(1 for l in stress if l[5] == 'fail')} failed runs, "
    f"{sum(1 for l in stress if l[5] == 'skip')} skipped runs")
say(f"fio: {len(fio)} rounds, {fio_mib:.0f} MiB read+written, {fio_verify} verify errors, "
    f"{len(fio_bad)} failed rounds")
say(f"storm: {storm_ops} ops, {storm_err} errors")
skipped_always = sorted(s for s, c in status_by.items() if c["skip"] and not c["ok"] and not c["fail"])
if skipped_always:
    say(f"stress-ng: skipped on the mount every time: {', '.join(skipped_always)}")

# --- checks --------------------------------------------------------------------
check("daemon-alive", not died, died or "the daemon lived through the load")
check("daemon-stop", stop_result == "pass",
      "SIGTERM: exit 0, mount gone" if stop_result == "pass" else stop_result)
check("fio", fio and not fio_bad and fio_verify == 0,
      f"{len(fio)} rounds, {fio_verify} verify errors"
      + (f"; failed rounds: {', '.join(l[1] + ' (exit ' + l[2] + ', job error ' + l[3] + ')' for l in fio_bad)}"
         if fio_bad else ""))
check("storm", storm_rc == "0" and storm_err == 0 and storm_ops > 0,
      f"{storm_ops} ops, {storm_err} errors, exit {storm_rc}")
for s in sorted(status_by):
    if not fails_by[s]:
        check(f"stress-ng {s}", True, f"{sum(status_by[s].values())} runs, {ops_by[s]} bogo ops"
              + (f", skipped {status_by[s]['skip']}" if status_by[s]["skip"] else ""))
    elif native.get(s) == "fail":
        check(f"stress-ng {s}", True, f"{len(fails_by[s])} of {sum(status_by[s].values())} runs failed, "
              f"and it fails natively too: {fails_by[s][0]}")
    else:
        check(f"stress-ng {s}", False, f"{len(fails_by[s])} of {sum(status_by[s].values())} runs failed "
              f"on the mount, not natively: {fails_by[s][0]}")
check("rss-growth", bool(live) and er <= wr + RSS_SLACK_KIB,
      f"end {er:.0f} KiB vs warm {wr:.0f} KiB (limit +{RSS_SLACK_KIB})")
check("fd-growth", bool(live) and ef <= wf + FD_SLACK, f"end {ef:.0f} vs warm {wf:.0f} (limit +{FD_SLACK})")
if rest and not died:
    check("fd-rest", int(rest["fds"]) <= (start["fds"] if start else 0) + FD_SLACK,
          f"{rest['fds']} fds 10 s after the load vs {start['fds']:.0f} before it (limit +{FD_SLACK})")
say(f"soak: {passed} passed, {failed} failed")
with open(os.path.join(out, "summary.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
sys.exit(1 if failed else 0)
