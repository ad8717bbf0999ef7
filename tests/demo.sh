#!/usr/bin/env bash
# The demo (make demo): what this release does, end to end: a sample
# document encrypted by hand, then a demo organisation whose signed policy
# the agent fetches, verifies, caches and unlocks. The agent keeps running
# (make demo-stop stops it). The overlay (next release) mounts the
# protected folder itself.
set -euo pipefail
build=${1:-build}
oc="$build/overcrypt"
dir=${DEMO_DIR:-/tmp/overcrypt-demo}
pidfile=/tmp/overcrypt-demo.pid
if [ -f "$pidfile" ]; then   # the agent of an earlier demo
	kill "$(cat "$pidfile")" 2>/dev/null || true
	rm -f "$pidfile"; sleep 0.5
fi
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

# ---- the organisation and the agent ------------------------------------
adm="$build/overcrypt-admin"; agent="$build/overcryptd"
pw="$dir/passphrase"; me=$(id -un)
echo 'Demo-Passphrase-2026!' > "$pw"; chmod 600 "$pw"

step "A demo organisation (overcrypt-admin init; slow on purpose: scrypt 2^20)"
"$adm" init "$dir/store" --passphrase-file "$pw"

step "$me enrolls: an identity in a keystore (overcrypt enroll)"
recipient=$("$oc" enroll --keystore "$dir/keystore.age" --passphrase-file "$pw" | grep -o 'age1[0-9a-z]*' | head -n1)
echo "recipient: $recipient"

step "The admin describes the organisation in org.conf and publishes"
cat >> "$dir/store/org.conf" <<CONF

[user $me]
recipient = $recipient

[group finance]
members = $me

[asset treasury]
type = shared
path = $dir/data/treasury/
groups = finance
CONF
tail -n 12 "$dir/store/org.conf"
"$adm" --store "$dir/store" publish --out "$dir/pub" --passphrase-file "$pw"
ls -l "$dir/pub"

step "The client config (overcrypt.conf) and the agent (overcryptd)"
mkdir -p "$dir/run"; chmod 700 "$dir/run"
cat > "$dir/client.conf" <<CONF
[server]
policy_url = file://$dir/pub/
org_public_key = $dir/store/org.pub
[client]
user = $me
keystore = $dir/keystore.age
cache_dir = $dir/cache
runtime_dir = $dir/run/overcrypt
CONF
cat "$dir/client.conf"
"$agent" --config "$dir/client.conf" 2>"$dir/agent.log"
head -n1 "$dir/run/overcrypt/overcryptd.lock" > "$pidfile"
for _ in $(seq 50); do "$oc" --config "$dir/client.conf" status --json 2>/dev/null | grep -q '"serial"' && break; sleep 0.2; done

step "Unlock: the keystore is opened here, the identity goes to the agent"
"$oc" --config "$dir/client.conf" unlock --passphrase-file "$pw"

step "Status (overcrypt status)"
"$oc" --config "$dir/client.conf" status

step "Which rule governs a path, and why (overcrypt which)"
"$oc" --config "$dir/client.conf" which "$dir/data/treasury/q3/plan.xlsx"
"$oc" --config "$dir/client.conf" which "$dir/data/elsewhere.txt"

step "Done. Files are in $dir; the agent's log is $dir/agent.log; make demo-stop stops it"
