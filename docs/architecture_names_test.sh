#!/usr/bin/env bash
# Every function docs/architecture.md cites as `Name()` or `Class::Name()`
# exists in the sources it describes (the data files of this test), so the
# walk-throughs cannot name a function that was renamed or removed.
set -uo pipefail
root="$TEST_SRCDIR/$TEST_WORKSPACE"
doc="$root/docs/architecture.md"
[[ -f $doc ]] || { echo "FAIL: $doc missing"; exit 1; }
mapfile -t sources < <(find -L "$root" -type f \( -name '*.h' -o -name '*.cc' \))
(( ${#sources[@]} > 10 )) || { echo "FAIL: only ${#sources[@]} source files in runfiles"; exit 1; }
mapfile -t names < <(grep -oE '`[A-Za-z_][A-Za-z0-9_:]*\(\)`' "$doc" | tr -d '`()' | sort -u)
(( ${#names[@]} >= 20 )) || { echo "FAIL: only ${#names[@]} cited names"; exit 1; }
missing=0
for qualified in "${names[@]}"; do
  name=${qualified##*::}
  if [[ $qualified == *::* ]]; then
    cls=${qualified%::*}
    cls=${cls##*::}
    # Defined out of line (Class::Name( in a .cc), or declared inside the
    # body of `class Class` / `struct Class` (up to its closing `};`).
    if grep -qE "\b${cls}::${name}\(" "${sources[@]}"; then continue; fi
    if awk -v cls="$cls" -v name="$name" '
        $0 ~ "^[ \t]*(class|struct) " cls "([ \t:{]|final|$)" && $0 !~ ";[ \t]*$" { body = 1 }
        body && $0 ~ "(^|[^A-Za-z0-9_])" name "\\(" { found = 1 }
        body && $0 ~ "^};" { body = 0 }
        END { exit !found }' "${sources[@]}"; then
      continue
    fi
  elif grep -qE "\b${name}\(" "${sources[@]}"; then
    continue
  fi
  echo "FAIL: docs/architecture.md cites ${qualified}() but no source defines it"
  missing=$((missing + 1))
done
echo "${#names[@]} names checked, $missing missing"
(( missing == 0 )) && echo PASS
exit $(( missing > 0 ))
