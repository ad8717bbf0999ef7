#!/usr/bin/env bash
# Publish a generated organisation (10,000 users, 500 groups nested 4 deep,
# 1,000 assets): wall time and peak memory of the first publish and of a
# second one with nothing changed. Target: under 30 s and 1 GiB.
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
echo "== check"
measure "$build/overcrypt-admin" --store "$t/store" check
