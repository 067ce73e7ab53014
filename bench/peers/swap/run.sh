#!/usr/bin/env bash
# Linux swap as a peer of farmem's transparent mode (issue 5).
#
# Runs one farmem workload (bench/peers/swap/swapwork: the workload package
# on plain anonymous memory) under kernel swap: a swap area on a RAM-backed
# loop device, and a cgroup v1 memory limit equal to the local budget. Then
# runs the same workload through farmem bench --mode transparent (a pager
# with the same budget, a memnode on loopback) and prints both throughputs
# and their ratio.
#
# Safety (shared/notes/machine.md): the loop device's image lives on a
# PRIVATE tmpfs mounted with -o noswap. On a plain tmpfs or /dev/shm the
# kernel can swap the image's own pages out onto the device, and the machine
# deadlocks beyond any kill. Without noswap support this script stops; it
# never falls back. It never touches zram0 or DAMON. Everything it creates
# (cgroup, swap, loop device, mount, files) is removed on exit, also on
# failure or interrupt.
#
#   SIZE=256MiB LOCAL=64MiB WORKLOAD=zipf DURATION=10s bench/peers/swap/run.sh
#
# Needs root, losetup, mkswap, swapon/swapoff and a Go toolchain.
set -euo pipefail
cd "$(dirname "$0")/../../.."

SIZE=${SIZE:-256MiB}
LOCAL=${LOCAL:-64MiB}
WORKLOAD=${WORKLOAD:-zipf}
DURATION=${DURATION:-10s}
SEED=${SEED:-1}

[ "$(id -u)" = 0 ] || { echo "swap peer: needs root" >&2; exit 1; }

bytes() { # a size like 256MiB -> bytes (binary units only)
	local v=$1 n u
	n=${v%%[!0-9]*}; u=${v#"$n"}
	case "$u" in
	"" | B) echo "$n" ;;
	K | KiB) echo $((n << 10)) ;;
	M | MiB) echo $((n << 20)) ;;
	G | GiB) echo $((n << 30)) ;;
	*) echo "swap peer: size $v: use B, KiB, MiB or GiB" >&2; exit 1 ;;
	esac
}
size_b=$(bytes "$SIZE")
local_b=$(bytes "$LOCAL")
swap_b=$((size_b + size_b / 4 + (64 << 20))) # the region, slack, the runtime

work=$(mktemp -d /tmp/farmem-swap-peer.XXXXXX)
mnt="$work/tmpfs"
loop=""
cg=""
mounted=0
cleanup() {
	set +e
	if [ -n "$cg" ] && [ -d "$cg" ]; then
		# Any process left in the cgroup is ours (swapwork): end it.
		for p in $(cat "$cg/cgroup.procs" 2>/dev/null); do kill -9 "$p"; done
		for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$cg" 2>/dev/null && break; sleep 0.2; done
	fi
	if [ -n "$loop" ]; then
		if grep -q "^$loop " /proc/swaps; then swapoff "$loop"; fi
		losetup -d "$loop"
	fi
	if [ "$mounted" = 1 ]; then umount "$mnt"; fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== building"
go build -o "$work/farmem" ./cmd/farmem
go build -o "$work/swapwork" ./bench/peers/swap/swapwork

echo "== swap: $((swap_b >> 20)) MiB on a loop device over a private noswap tmpfs"
mkdir -p "$mnt"
if ! mount -t tmpfs -o "size=$((swap_b + (16 << 20))),noswap,mode=0700" farmem-swap-peer "$mnt"; then
	echo "swap peer: this kernel refuses tmpfs -o noswap; refusing to put a swap image on a swappable tmpfs" >&2
	exit 1
fi
mounted=1
grep -q " $mnt tmpfs .*noswap" /proc/mounts || { echo "swap peer: $mnt is not mounted noswap" >&2; exit 1; }
fallocate -l "$swap_b" "$mnt/swap.img"
loop=$(losetup --find --show "$mnt/swap.img")
mkswap -q "$loop"
swapon -p 32767 "$loop"

echo "== cgroup v1: memory limit $LOCAL"
rel=$(awk -F: '$2 == "memory" { print $3 }' /proc/self/cgroup)
base="/sys/fs/cgroup/memory${rel}"
[ -d "$base" ] || { echo "swap peer: no cgroup v1 memory hierarchy at $base" >&2; exit 1; }
cg="$base/farmem-swap-peer-$$"
mkdir "$cg"
echo "$local_b" >"$cg/memory.limit_in_bytes"
# Reclaim of this cgroup must swap anonymous pages, not kill the process.
echo 60 >"$cg/memory.swappiness"

echo "== kernel swap: $WORKLOAD $SIZE, $LOCAL in RAM"
sh -c "echo \$\$ >'$cg/cgroup.procs' && exec '$work/swapwork' --workload '$WORKLOAD' --size '$SIZE' --duration '$DURATION' --seed '$SEED'" \
	>"$work/swap.json"
cat "$work/swap.json"
echo "   (cgroup: peak usage $(($(cat "$cg/memory.max_usage_in_bytes") >> 20)) MiB, limit hit $(cat "$cg/memory.failcnt") times)"

echo "== farmem transparent: $WORKLOAD $SIZE, pager budget $LOCAL, memnode on loopback"
"$work/farmem" bench --mode transparent --workload "$WORKLOAD" --size "$SIZE" --local "$LOCAL" \
	--duration "$DURATION" --seed "$SEED" --no-progress --json "$work/farmem.json" >/dev/null

ops() { sed -n 's/.*"ops_per_sec": *\([0-9.e+]*\).*/\1/p' "$1" | head -1 | awk '{ printf "%.0f", $1 }'; }
swap_ops=$(ops "$work/swap.json")
farmem_ops=$(ops "$work/farmem.json")
echo "kernel swap          ${swap_ops} ops/s"
echo "farmem transparent   ${farmem_ops} ops/s"
awk -v a="$farmem_ops" -v b="$swap_ops" 'BEGIN { printf "farmem / swap        %.2f\n", a / b }'
