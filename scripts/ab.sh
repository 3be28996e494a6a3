#!/usr/bin/env bash
# Two gokai builds side by side under the same load, in alternating rounds: the A/B of one speed step.
#
# Starts one node of each build (bench.sh's `gokai start` flags: N=3 R=2 W=2 on local vnodes, goleveldb, every
# listener on a loopback port the OS picks, a temp data dir), then runs
#   gokai bench -conns 50 -value-size 100 -keys 10000 -duration $DURATION [flags...]
# against one node and then the other, ROUNDS times (odd rounds A first, even rounds B first), with A's gokai
# binary as the load generator for both. Around each run it reads the node's CPU time (utime + stime from
# /proc/PID/stat, the run's prefill included) and prints per run: ops/s, p99, p99.9 and the node's CPU per
# operation; then per build the medians over the rounds.
#
# Usage: scripts/ab.sh OLD_GOKAI NEW_GOKAI [gokai bench flags...]
#        e.g. scripts/ab.sh /tmp/gokai-before /tmp/gokai-after -get-ratio 0.9
#             ARGS_B="-gc-percent -1 -memory-limit 4GiB" scripts/ab.sh bin/gokai bin/gokai -rate 10000
# Knobs: ROUNDS=6, DURATION=5s, ARGS_A / ARGS_B (extra `gokai start` flags for node A / B), OUT=DIR (keeps the
# runs' printouts and node logs; default a new temp dir, removed on exit unless set).
# Run it under the machine's benchmark lock when others benchmark on the same cores. Linux only (/proc).
set -euo pipefail

die() {
	echo "ab.sh: $*" >&2
	exit 1
}

(($# >= 2)) || die "usage: scripts/ab.sh OLD_GOKAI NEW_GOKAI [gokai bench flags...]"
bin_a=$1 bin_b=$2
shift 2
[[ -x $bin_a && -x $bin_b ]] || die "both builds must be executable files"
ROUNDS=${ROUNDS:-6}
DURATION=${DURATION:-5s}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
read -r -a args_a <<<"${ARGS_A:-}"
read -r -a args_b <<<"${ARGS_B:-}"

keep=1
if [[ -z ${OUT:-} ]]; then
	OUT=$(mktemp -d "${TMPDIR:-/tmp}/gokai-ab.XXXXXX")
	keep=0
fi
mkdir -p "$OUT"
work=$(mktemp -d "${TMPDIR:-/tmp}/gokai-ab-work.XXXXXX")
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
	((keep)) || rm -rf "$OUT"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start NAME BIN [flags...] starts a node and sets pid_NAME and mc_NAME (its memcache address).
start() {
	local name=$1 bin=$2 log="$OUT/$1.log" line="" deadline
	shift 2
	mkdir -p "$work/$name"
	"$bin" start -name "$name@127.0.0.1" -data-dir "$work/$name" -n 3 -r 2 -w 2 -backend leveldb \
		-memcache-listen 127.0.0.1:0 -rpc-listen 127.0.0.1:0 -gossip-listen 127.0.0.1:0 \
		-transport-listen 127.0.0.1:0 -http-listen 127.0.0.1:0 -log-level info "$@" >"$log" 2>&1 &
	pids+=($!)
	printf -v "pid_$name" '%s' $!
	deadline=$((SECONDS + 60))
	until line=$(grep -m1 'msg="gokai ready"' "$log"); do
		kill -0 "${pids[-1]}" 2>/dev/null || { tail -n 20 "$log" >&2; die "node $name exited before it was ready"; }
		((SECONDS < deadline)) || die "node $name not ready after 60s"
		sleep 0.1 # poll interval
	done
	[[ $line =~ memcache=([^ ]+) ]] || die "node $name: no memcache address in: $line"
	printf -v "mc_$name" '%s' "${BASH_REMATCH[1]}"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

start a "$bin_a" ${args_a[@]+"${args_a[@]}"}
start b "$bin_b" ${args_b[@]+"${args_b[@]}"}
hz=$(getconf CLK_TCK)
results="$OUT/results.txt"
: >"$results"
echo "A: $bin_a ${ARGS_A:-}"
echo "B: $bin_b ${ARGS_B:-}"
echo "load: gokai bench -conns 50 -value-size 100 -keys 10000 -duration $DURATION $*"
for ((r = 1; r <= ROUNDS; r++)); do
	order="a b"
	((r % 2)) || order="b a"
	for t in $order; do
		pid_var="pid_$t" mc_var="mc_$t"
		c0=$(cpu_ticks "${!pid_var}")
		timeout --kill-after=10s 300 "$bin_a" bench -addr "${!mc_var}" -conns 50 -value-size 100 -keys 10000 \
			-duration "$DURATION" "$@" >"$OUT/$r-$t.txt" 2>&1 || { cat "$OUT/$r-$t.txt" >&2; die "gokai bench failed"; }
		c1=$(cpu_ticks "${!pid_var}")
		# NB: the summary line: "all COUNT OPS/S MEAN P50 P90 P99 P99.9 MAX"
		read -r _ count ops _ _ _ p99 p999 _ < <(grep -E '^[[:space:]]+all[[:space:]]' "$OUT/$r-$t.txt")
		us=$(awk -v c=$((c1 - c0)) -v hz="$hz" -v n="$count" 'BEGIN { printf "%.2f", c * 1e6 / hz / n }')
		echo "$t $r $ops $p99 $p999 $us" >>"$results"
		echo "round $r $t: $ops ops/s, p99 $p99, p99.9 $p999, node CPU $us µs per op"
	done
done
# medians per build (ops/s and CPU per op)
for t in a b; do
	ops=$(awk -v t=$t '$1 == t { print $3 }' "$results" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
	us=$(awk -v t=$t '$1 == t { print $6 }' "$results" | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
	echo "median $t: $ops ops/s, node CPU $us µs per op"
done
((keep)) && echo "runs and node logs: $OUT"
exit 0
