#!/usr/bin/env bash
# Stop what `make demo` left running: its agent (SIGTERM: it unmounts its
# overlays), then any mount still under the demo folder (the bind mount,
# an overlay of an agent that was killed).
dir=${1:-${DEMO_DIR:-/tmp/overcrypt-demo}}
pidfile=/tmp/overcrypt-demo.pid
if [ -f "$pidfile" ]; then
	pid=$(cat "$pidfile")
	if kill "$pid" 2>/dev/null; then
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		echo "agent stopped"
	fi
	rm -f "$pidfile"
else
	echo "no demo agent runs"
fi
awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/mounts | sort -r |
	while read -r m; do umount -l "$m" && echo "unmounted $m"; done
exit 0
