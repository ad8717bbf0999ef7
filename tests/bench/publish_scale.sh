#!/usr/bin/env bash
# Publish a generated organisation (10,000 users, 500 groups nested 4 deep,
# 1,000 assets): wall time and peak memory of the first publish and of a
# second one with nothing changed. Target: under 30 s and 1 GiB (see below
# for the share of the admin identity's scrypt).
set -euo pipefail
build=${1:-build}
users=${SCALE_USERS:-10000}
t=$(mktemp -d /tmp/ovc-scale.XXXXXX)
trap 'rm -rf "$t"' EXIT
echo 'Sc4le-Bench!passphrase' > "$t/pw"
"$build/overcrypt-admin" init "$t/store" --passphrase-file "$t/pw" --admin root --org scale >/dev/null 2>&1
/usr/bin/python3 "$(dirname "$0")/gen_org.py" --users "$users" >> "$t/store/org.conf"
measure() {
	/usr/bin/time -f "%e s, %M KiB peak" -o "$t/time" "$@" > "$t/out" 2>&1 || { cat "$t/out"; exit 1; }
	echo "$(tail -n1 "$t/out") — $(cat "$t/time")"
}
echo "== publish, $users users (first: compiles, creates keys, seals and signs every policy)"
measure "$build/overcrypt-admin" --store "$t/store" --passphrase-file "$t/pw" publish --out "$t/pub"
echo "== publish again (nothing changed)"
measure "$build/overcrypt-admin" --store "$t/store" --passphrase-file "$t/pw" publish --out "$t/pub"
# The admin identity's scrypt (2^20, DESIGN.md) needs 128 * r * N = 1 GiB by
# itself. To show what publishing costs beside it, the same identity is
# re-encrypted at 2^14 (16 MiB) for one more run.
"$build/tools/agetool" decrypt -p "$t/pw" < "$t/store/admin-identity.age" |
	"$build/tools/agetool" encrypt -p "$t/pw" -n 14 > "$t/id14.age"
echo "== publish again, identity at scrypt 2^14 (the publishing work without the 1 GiB unlock)"
measure "$build/overcrypt-admin" --store "$t/store" --passphrase-file "$t/pw" --identity "$t/id14.age" publish --out "$t/pub"
echo "== check"
measure "$build/overcrypt-admin" --store "$t/store" check
