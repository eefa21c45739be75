#!/usr/bin/env bash
# docs/kmfused.8 against `kmfused --help` (printed from the one option table
# in daemon/options.cc), and the parser against both:
#   - the OPTIONS and MOUNT OPTIONS entries of the man page name exactly the
#     flags and -o options --help lists; every ignored fstab option is named;
#   - every option --help lists is accepted by the parser (with each of the
#     values its row shows), an unknown one is refused with status 2;
#   - every option key the parsers compare against (daemon/options.cc,
#     fs/passthrough.cc) that the command line accepts is in --help;
#   - the version in the man page header is the one kmfused prints;
#   - man(1) renders the page without warnings.
set -uo pipefail
runfiles=$TEST_SRCDIR/$TEST_WORKSPACE
kmfused=$runfiles/daemon/kmfused
page=$runfiles/docs/kmfused.8
repo=$(dirname "$(dirname "$(readlink -f "$page")")")
for f in daemon/options.cc fs/passthrough.cc; do
  [[ -f $repo/$f ]] || { echo "FAIL: no $f beside $(readlink -f "$page")"; exit 1; }
done

python3 - "$kmfused" "$page" "$repo/daemon/options.cc" "$repo/fs/passthrough.cc" <<'PY'
import re, subprocess, sys

kmfused, page, *sources = sys.argv[1:]
failures = []

def fail(msg):
    failures.append(msg)
    print("FAIL:", msg)

def run(*args):
    return subprocess.run([kmfused, *args], capture_output=True, text=True, timeout=20)

def names_of(tag):
    """'-h, --help' -> [-h, --help]; 'cache=none|auto|always' -> [cache]."""
    return [re.split(r"[=\[ ]", alt.strip(), maxsplit=1)[0] for alt in tag.split(", ")]

# --help: rows under "Flags:" and "Mount options", the ignored list after.
helptext = run("--help")
if helptext.returncode != 0:
    sys.exit(f"FAIL: kmfused --help exited {helptext.returncode}")
rows = {}      # name -> tag
ignored = []
section = None
for line in helptext.stdout.splitlines():
    if line.startswith("Flags:"):
        section = "flags"
    elif line.startswith("Mount options"):
        section = "mount"
    elif line.startswith("Accepted and ignored"):
        section = "ignored"
    elif not line.strip():
        section = None if section == "ignored" else section
    elif section in ("flags", "mount") and line.startswith("  ") and line[2] != " ":
        tag = re.split(r"\s{2,}", line.strip())[0]
        for n in names_of(tag):
            rows[n] = (section, tag)
    elif section == "ignored":
        ignored += line.split()
print(f"--help: {len(rows)} options, {len(ignored)} ignored fstab options")
if len(rows) < 20 or len(ignored) < 5:
    fail("--help lists fewer options than expected; is the table printed?")

# The man page: .TP tags in OPTIONS and MOUNT OPTIONS, rendered as groff does
# for .B/.BR/.BI (alternating-font macros join their arguments).
def clean(text):
    text = re.sub(r"\\f[BIRP]", "", text).replace("\\-", "-")
    return text

def render(line):
    m = re.match(r"\.(B|I|BR|BI|IB|RB|IR|RI)\s+(.*)", line)
    if not m:
        return clean(line)
    args = [a[1:-1] if a.startswith('"') else a for a in re.findall(r'"[^"]*"|\S+', m.group(2))]
    return clean((" " if m.group(1) in ("B", "I") else "").join(args))

lines = open(page).read().splitlines()
sec, man_rows, sec_text = None, {}, {}
for i, line in enumerate(lines):
    if line.startswith(".SH"):
        sec = line[3:].strip().strip('"')
        continue
    if sec in ("OPTIONS", "MOUNT OPTIONS"):
        sec_text[sec] = sec_text.get(sec, "") + render(line) + "\n"
        if line == ".TP" and i + 1 < len(lines):
            for n in names_of(render(lines[i + 1])):
                man_rows[n] = sec
for want, got, what in ((rows, man_rows, "in --help but not in docs/kmfused.8"),
                        (man_rows, rows, "in docs/kmfused.8 but not in --help")):
    for n in sorted(set(want) - set(got)):
        fail(f"option {n} is {what}")
for n, sec in man_rows.items():
    if n in rows:
        expect = "OPTIONS" if rows[n][0] == "flags" else "MOUNT OPTIONS"
        if sec != expect:
            fail(f"option {n} is under {sec} in the man page, under {expect} in --help")
for n in ignored:
    if n not in sec_text.get("MOUNT OPTIONS", ""):
        fail(f"ignored option {n} is not named under MOUNT OPTIONS in docs/kmfused.8")

# Every row parses, with each value it shows.
examples = {"T": ["auto", "read"], "N": ["8"], "BYTES": ["64K", "4096"], "NAME": ["kmfused-test"],
            "BOOL": ["true", "off"]}
checked = 0
for n, (section, tag) in rows.items():
    if section == "flags":
        if n == "-o":
            continue
        argsets = [[n, "--help"]]
    else:
        alt = next(a.strip() for a in tag.split(", ") if names_of(a)[0] == n)
        m = re.match(r"([a-z_]+)(\[?=)?([^\]]*)\]?$", alt)
        key, eq, val = m.group(1), m.group(2), m.group(3)
        if not eq:
            values = [None]
        elif "|" in val:
            values = val.split("|")
        else:
            values = examples.get(val)
            if values is None:
                fail(f"--help row '{tag}': no example value for {val}")
                continue
        if eq == "[=":
            values = [None] + values
        argsets = [["-o", key if v is None else f"{key}={v}", "--help"] for v in values]
    for args in argsets:
        r = run(*args)
        checked += 1
        if r.returncode != 0:
            fail(f"kmfused {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
for opt in ignored:
    r = run("-o", opt.replace("*", "x") if opt.endswith("=*") else opt.replace("*", "systemd.x"),
            "--help")
    checked += 1
    if r.returncode != 0:
        fail(f"ignored option {opt} is refused: {r.stderr.strip()}")
r = run("-o", "no_such_option", "--help")
if r.returncode != 2 or "unknown option" not in r.stderr:
    fail(f"an unknown option exited {r.returncode} ({r.stderr.strip()}), expected 2")
print(f"parser: {checked} documented spellings accepted, an unknown one refused")

# The parsers' own keys: whatever the command line accepts must be documented.
keys = set()
for src in sources:
    keys |= set(re.findall(r'key == "([a-z_-]+)"', open(src).read()))
for key in sorted(keys):
    accepted = any(run("-o", key if v is None else f"{key}={v}", "--help").returncode == 0
                   for v in (None, "1", "auto", "8", "x"))
    if accepted and key not in rows and key not in ignored:
        fail(f"the parser accepts -o {key}, which --help and the man page do not document")
print(f"parsers compare {len(keys)} keys; every accepted one is documented")

# One version.
version = run("--version").stdout.split()
th = next((l for l in lines if l.startswith(".TH")), "")
if len(version) < 2 or f'"kmfuse {version[1]}"' not in th:
    fail(f"man page header '{th}' does not carry kmfused --version's version {version[1:2]}")

sys.exit(1 if failures else 0)
PY
rc=$?
[[ $rc -eq 0 ]] || { echo "FAIL: option table and man page disagree (above)"; exit 1; }

if command -v man >/dev/null; then
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
  [[ -z $warnings ]] || { echo "FAIL: man --warnings docs/kmfused.8:"; echo "$warnings"; exit 1; }
  echo "ok: man renders docs/kmfused.8 without warnings"
else
  echo "man(1) not installed: rendering not checked"
fi
echo PASS
