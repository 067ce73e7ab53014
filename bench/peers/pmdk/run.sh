#!/usr/bin/env bash
# Builds the PMDK peer (installing libpmemobj-dev when it is missing) and
# farmem, then runs the same KV-update workload on both, side by side, on
# tmpfs-backed pool files: PMDK with PMEM_IS_PMEM_FORCE=1, farmem with
# `pmem bench --mode force-pmem` (CLWB+SFENCE). Each configuration runs
# REPS times, alternating the two systems, and the median is reported, so
# that a noisy neighbour hurts both alike.
#
# Environment: COMMITTERS (default 1,2,4,8), VALUE_BYTES (256), DURATION_MS
# (1000), REPS (3), KEYS (1024), MAX_WAIT (farmem group wait, 0s), VERBOSE
# (non-empty: each repetition's figures on stderr), LATENCY_EVERY (1: time
# every transaction on both sides; N: one in N at random),
# SHM (/dev/shm), OUT (build directory, default a temp dir).
# It also prints the cache-line round trip between CPU 0 and CPU 1 (xcore.c)
# measured before each repetition.
# The last line is `farmem/pmdk tx throughput ratio: X` for 4 committers,
# farmem with commit coalescing on.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
COMMITTERS=${COMMITTERS:-1,2,4,8}
VALUE_BYTES=${VALUE_BYTES:-256}
DURATION_MS=${DURATION_MS:-1000}
REPS=${REPS:-3}
KEYS=${KEYS:-1024}
MAX_WAIT=${MAX_WAIT:-0s}
LATENCY_EVERY=${LATENCY_EVERY:-1}
SHM=${SHM:-/dev/shm}
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"

if [ ! -f /usr/include/libpmemobj.h ]; then
	echo "installing libpmemobj-dev" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y libpmemobj-dev >&2 || { apt-get update >&2 && apt-get install -y libpmemobj-dev >&2; }
fi
cc -O2 -Wall -o "$OUT/kvbench" "$here/kvbench.c" -lpmemobj -lpthread
cc -O2 -Wall -o "$OUT/xcore" "$here/xcore.c" -lpthread
# Build the whole command; if another package of the tree is mid-flight and
# does not compile, build the binary from the files the pmem command needs.
(cd "$root" && go build -o "$OUT/farmem" ./cmd/farmem 2>/dev/null) ||
	(cd "$root" && go build -o "$OUT/farmem" cmd/farmem/main.go cmd/farmem/pmem.go)

median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
jfield() { sed -n "s/.*\"$1\": \([0-9.e+]*\).*/\1/p" | head -1; }

pool_pmdk="$SHM/farmem-pmdk-peer-$$"
pool_farmem="$SHM/farmem-pmem-peer-$$"
trap 'rm -f "$pool_pmdk" "$pool_farmem"' EXIT

# Each run's CPU time (user + sys of the process, bash's `time`) gives
# transactions per CPU-second, which depends much less on what else runs on
# the machine than throughput does. It includes each tool's setup (pool
# creation, sorting the latencies).
TIMEFORMAT='%3U %3S'
cpu_file="$OUT/cpu"
per_cpu() { read -r u s <"$cpu_file"; awk -v t="$1" -v u="$u" -v s="$s" 'BEGIN { printf "%.0f", (u + s > 0) ? t / (u + s) : 0 }'; }

load0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)
printf '%-10s %-6s %14s %14s %14s %12s %12s %16s %16s\n' committers value pmdk_tx_s farmem_off_tx_s farmem_on_tx_s on_fences/tx pmdk_p50_us pmdk_tx/cpu_s farmem_on_tx/cpu_s
ratio4=""
# The cache-line round trip between the two CPUs, measured before every
# repetition (xcore.c): on a guest it follows where the host places the
# vCPUs, and farmem's commit path pays it where PMDK's does not.
xc=()
xcore() { "$OUT/xcore" 100000 2>/dev/null || echo 0; }
for c in ${COMMITTERS//,/ }; do
	p=() ; off=() ; on=() ; fpt=() ; p50=() ; pc=() ; fc=()
	for ((r = 0; r < REPS; r++)); do
		xc+=("$(xcore)")
		line=$( { time PMEM_IS_PMEM_FORCE=1 "$OUT/kvbench" "$pool_pmdk" "$c" "$VALUE_BYTES" "$DURATION_MS" "$KEYS" "$LATENCY_EVERY"; } 2>"$cpu_file")
		p+=("$(echo "$line" | field tx_per_sec)")
		p50+=("$(echo "$line" | field p50_us)")
		pc+=("$(per_cpu "$(echo "$line" | field txs)")")
		for co in off on; do
			j=$( { time "$OUT/farmem" pmem bench --json - --pool "$pool_farmem" --mode force-pmem --committers "$c" \
				--value-bytes "$VALUE_BYTES" --coalescing "$co" --duration "${DURATION_MS}ms" --keys "$KEYS" --max-wait "$MAX_WAIT" --latency-every "$LATENCY_EVERY" 2>/dev/null; } 2>"$cpu_file")
			t=$(echo "$j" | jfield tx_per_sec)
			if [ "$co" = off ]; then
				off+=("$t")
			else
				on+=("$t")
				fpt+=("$(echo "$j" | jfield fences_per_tx)")
				fc+=("$(per_cpu "$(echo "$j" | jfield txs)")")
			fi
		done
		if [ -n "${VERBOSE:-}" ]; then
			printf '  rep %d, %d committers: round trip %s ns, pmdk %.0f, farmem off %.0f, on %.0f tx/s\n' \
				"$r" "$c" "${xc[-1]}" "${p[-1]}" "${off[-1]}" "${on[-1]}" >&2
		fi
	done
	mp=$(printf '%s\n' "${p[@]}" | median)
	moff=$(printf '%s\n' "${off[@]}" | median)
	mon=$(printf '%s\n' "${on[@]}" | median)
	mf=$(printf '%s\n' "${fpt[@]}" | median)
	m50=$(printf '%s\n' "${p50[@]}" | median)
	mpc=$(printf '%s\n' "${pc[@]}" | median)
	mfc=$(printf '%s\n' "${fc[@]}" | median)
	printf '%-10s %-6s %14.0f %14.0f %14.0f %12.3f %12s %16.0f %16.0f\n' "$c" "$VALUE_BYTES" "$mp" "$moff" "$mon" "$mf" "$m50" "$mpc" "$mfc"
	if [ "$c" = 4 ]; then
		cpuratio4=$(awk -v a="$mfc" -v b="$mpc" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
		ratio4=$(awk -v a="$mon" -v b="$mp" 'BEGIN { printf "%.2f", a / b }')
		ratio4off=$(awk -v a="$moff" -v b="$mp" 'BEGIN { printf "%.2f", a / b }')
	fi
done
if [ -z "$ratio4" ]; then
	echo "no 4-committer run (COMMITTERS=$COMMITTERS)" >&2
	exit 1
fi
# The machine may be shared: both systems' throughput moves with its load,
# PMDK's more (docs/PMEM.md), so say what the load was.
echo "load average at start: $load0, at end: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo unknown)"
echo "cross-CPU cache-line round trip (ns), before each repetition: ${xc[*]}"
if [ "$LATENCY_EVERY" != 1 ]; then
	echo "latency timed on one transaction in $LATENCY_EVERY (both sides)"
fi
echo "4 committers, transactions per CPU-second, coalescing on: farmem/pmdk = $cpuratio4"
echo "4 committers, coalescing off: farmem/pmdk = $ratio4off"
echo "farmem/pmdk tx throughput ratio: $ratio4"
