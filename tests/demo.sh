#!/usr/bin/env bash
# The demo (make demo): what this release does, end to end, on a sample
# document. Later releases grow it into a mounted, policy-driven folder.
set -euo pipefail
build=${1:-build}
oc="$build/overcrypt"
dir=${DEMO_DIR:-/tmp/overcrypt-demo}
rm -rf "$dir"
mkdir -p "$dir"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "A new asset key (overcrypt keygen)"
"$oc" keygen -o "$dir/marketing.key"

step "A document"
printf 'Q3 plan: launch the new product line in March.\nBudget: 1.2M.\n' > "$dir/plan.txt"
cat "$dir/plan.txt"

step "Encrypted in place (overcrypt encrypt)"
"$oc" encrypt --key "$dir/marketing.key" "$dir/plan.txt"
echo "what the disk now holds:"
od -A d -t x1z "$dir/plan.txt" | head -n 8
if grep -q "launch" "$dir/plan.txt"; then echo "plaintext found on disk!"; exit 1; fi

step "Its header (overcrypt inspect --verify)"
"$oc" inspect --verify --key "$dir/marketing.key" "$dir/plan.txt"

step "Decrypted to another file (overcrypt decrypt -o)"
"$oc" decrypt --key "$dir/marketing.key" -o "$dir/plan.out.txt" "$dir/plan.txt"
cat "$dir/plan.out.txt"

step "One flipped bit is caught and named"
cp "$dir/plan.txt" "$dir/tampered.txt"
printf '\x00' | dd of="$dir/tampered.txt" bs=1 seek=150 conv=notrunc status=none
if "$oc" decrypt --key "$dir/marketing.key" -o "$dir/tampered.out" "$dir/tampered.txt"; then
	echo "tampering went unnoticed!"; exit 1
fi
[ ! -e "$dir/tampered.out" ] && echo "(no output file was left behind)"

step "Done. Files are in $dir"
