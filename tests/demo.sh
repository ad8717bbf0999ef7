#!/usr/bin/env bash
# The demo (make demo): what this release does, end to end: a sample
# document encrypted by hand, then a demo organisation (groups, this user,
# a shared and a private asset over two folders, a public sub-folder)
# whose signed policy the agent fetches, verifies and unlocks; the agent
# mounts the protected folders in place, a document written there is
# encrypted on disk, and `overcrypt lock` makes it unreadable. The agent
# keeps running (make demo-stop stops it and unmounts everything).
set -euo pipefail
build=${1:-build}
oc="$build/overcrypt"
dir=${DEMO_DIR:-/tmp/overcrypt-demo}
pidfile=/tmp/overcrypt-demo.pid
# what an earlier demo left: its agent (SIGTERM unmounts its overlays),
# then any mount still under the demo folder
bash "$(dirname "$0")/demo-stop.sh" "$dir" >/dev/null
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
data="$dir/data"
mkdir -p "$data/treasury/public" "$data/private-$me"

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

[group staff]
members = $me

[asset treasury]
type = shared
path = $data/treasury/
groups = finance

[asset treasury-public]
type = public
path = $data/treasury/public/
groups = finance

[asset personal]
type = private
path = $data/private-%USERNAME%/
groups = staff
CONF
tail -n 25 "$dir/store/org.conf"
"$adm" --store "$dir/store" publish --out "$dir/pub" --passphrase-file "$pw"
ls -l "$dir/pub"

step "A window on the disk: $dir/disk shows $data as stored (a bind mount made before the overlay)"
mkdir -p "$dir/disk"
mount --bind "$data" "$dir/disk" && mount --make-private "$dir/disk"

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
for _ in $(seq 50); do grep -q " $data/treasury fuse" /proc/mounts && break; sleep 0.2; done
grep " $data" /proc/mounts | grep fuse | cut -d' ' -f1-3

step "Unlock: the keystore is opened here, the identity goes to the agent"
"$oc" --config "$dir/client.conf" unlock --passphrase-file "$pw"

step "A document written in the shared folder, as any program would"
printf 'Treasury forecast Q3: cash position 4.2M, covenant headroom 18%%.\n' > "$data/treasury/forecast.txt"
cat "$data/treasury/forecast.txt"
ls -l "$data/treasury/forecast.txt"

step "The same document on disk: ciphertext (seen through $dir/disk)"
od -A d -t x1z "$dir/disk/treasury/forecast.txt" | head -n 6
if grep -rq "covenant" "$dir/disk"; then echo "plaintext found on disk!"; exit 1; fi
echo "(no plaintext on disk: grep -r covenant $dir/disk finds nothing)"

step "A note in the private folder (this user's own key) and one in the public sub-folder"
echo "my own notes" > "$data/private-$me/notes.txt"
echo "published figures" > "$data/treasury/public/readme.txt"
head -c 8 "$dir/disk/private-$me/notes.txt"; echo "   <- $dir/disk/private-$me/notes.txt"
cat "$dir/disk/treasury/public/readme.txt"

step "Which rule governs a path, and why (overcrypt which)"
"$oc" --config "$dir/client.conf" which "$data/treasury/forecast.txt"
"$oc" --config "$dir/client.conf" which "$data/private-$me/notes.txt"
"$oc" --config "$dir/client.conf" which "$data/treasury/public/readme.txt"

step "Status (overcrypt status)"
"$oc" --config "$dir/client.conf" status

step "Lock (overcrypt lock): the keys are wiped; the document is unreadable"
"$oc" --config "$dir/client.conf" lock
if cat "$data/treasury/forecast.txt" 2>"$dir/cat.err"; then echo "readable after lock!"; exit 1; fi
echo "cat $data/treasury/forecast.txt: $(cat "$dir/cat.err")"
"$oc" --config "$dir/client.conf" unlock --passphrase-file "$pw" >/dev/null
echo "(unlocked again: $(cat "$data/treasury/forecast.txt" | head -c 30)...)"

step "Done. Files are in $dir; the agent's log is $dir/agent.log; the agent keeps the folders mounted: make demo-stop stops it and unmounts"
