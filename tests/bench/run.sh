#!/usr/bin/env bash
# Benchmarks with their anchors, measured in the same run; prints ratios.
# Timings never decide pass or fail: this only reports.
set -euo pipefail
build=${1:-build}
mib=${BENCH_MIB:-1024}
cpu=0

echo "== block layer, one core (cpu $cpu), ${mib} MiB in 4 KiB blocks"
out=$(taskset -c $cpu "$build/bench/bench_block" "$mib")
echo "$out"
echo "== anchor: openssl speed -evp aes-256-gcm -bytes 4096 (same core)"
ossl_k=$(taskset -c $cpu openssl speed -evp aes-256-gcm -bytes 4096 -seconds 3 2>/dev/null |
	awk '/^AES-256-GCM/ { sub(/k$/, "", $2); print $2 }')
ossl=$(awk -v k="$ossl_k" 'BEGIN { printf "%.1f", k / 1000 }')
echo "openssl        $ossl MB/s"
echo "== ratios to openssl (target: seal and open at least 0.80)"
echo "$out" | awk -v o="$ossl" '{ printf "%-14s %.2f\n", $1, $2 / o }'

if [ -x "$build/bench/bench_rules" ]; then
	echo "== rule matching: 10,000 rules (target: median under 2000 ns)"
	taskset -c $cpu "$build/bench/bench_rules"
fi
echo "== publishing at scale (target: under 30 s and 1 GiB)"
bash "$(dirname "$0")/publish_scale.sh" "$build"

# Filesystems: ext4, bindfs, gocryptfs, securefs and overcrypt (real mounts, as root; about
# 15 minutes, FSBENCH_QUICK=1 for a short run, FSBENCH=0 to skip). Report: $build/bench-fs.txt.
if [ "${FSBENCH:-1}" != 0 ]; then
	echo "== filesystems (tests/bench/fsbench.py; report also in $build/bench-fs.txt)"
	/usr/bin/python3 "$(dirname "$0")/fsbench.py" "$build"
fi
