#!/usr/bin/env bash
# gokai beside memcached, in one run, on this machine.
#
# Builds gokai, starts memcached (-t 2 -U 0) and one gokai node (N=3 R=2 W=2 on local vnodes, goleveldb), then a
# 3-node gokai cluster, all on loopback ports, and runs the identical `gokai bench` load against gokai and
# memcached in alternating rounds (odd rounds gokai first, even rounds memcached first). Scenarios:
#   1 node, closed loop            the load below, saturating
#   1 node, closed loop, binary protocol / meta commands
#                                  the same load over the memcache binary protocol, then meta commands (mg, ms):
#                                  with the text protocol above, one node's three memcache faces in one run
#   1 node, open loop at RATE/s    the same load offered at RATE ops/s (latency from the intended send time)
#   1 node, closed loop, 100% set / 50% set
#                                  the same load, write-only (-get-ratio 0), then half gets and half sets (last
#                                  on this node: the compactions they leave behind would weigh on the others)
#   3 nodes via n1, closed loop    the load against n1 of a 3-node cluster (all nodes on this machine)
#   3 nodes, 51 conns over all     the load with 51 connections spread over n1, n2 and n3 (17 each; memcached
#                                  gets the same 51 connections)
#   ... , mTLS between nodes       the same on certificates: node-to-node traffic over mutual TLS
#   ownership handoff              a node holding HANDOFF_KEYS keys (loaded by `gokai bench`, 100-byte values)
#                                  is joined by a second, empty one; from the commit until every transfer is
#                                  done: items and bytes sent (the first node's gokai_handoff_*_sent_total
#                                  metrics), MB/s and keys/s; beside it the same node's load of those keys by
#                                  memcache sets (its own baseline), ROUNDS times with fresh nodes
# Then prints one markdown table (`gokai bench table`): per scenario and target the median ops/s, p50, p99 and
# p99.9 over the rounds and the gokai/memcached ratios of ops/s and p99.9, with the exact bench commands.
#
# Load: gokai bench -conns 50 -get-ratio 0.9 -value-size 100 -keys 10000 -duration $DURATION $BENCH_ARGS
#
# Knobs (environment variables):
#   DURATION=10s      measured length of each run (Go duration in whole units: 10s, 500ms, 1m30s)
#   ROUNDS=3          runs per scenario and target
#   RATE=10000        offered ops/s of the open-loop scenario
#   SKIP_SINGLE=1     skip every 1-node scenario (closed and open loop, protocols, writes): with SKIP_CLUSTER=1,
#                     only the ownership handoff runs
#   SKIP_OPEN_LOOP=1  skip the open-loop scenario
#   SKIP_PROTOCOLS=1  skip the binary-protocol and meta-command scenarios
#   SKIP_CLUSTER=1    skip the 3-node cluster scenarios
#   SKIP_CLUSTER_TLS=1  skip the 3-node cluster with mutual TLS between the nodes (certificates, -certs-dir)
#   SKIP_WRITES=1     skip the write-only and 50/50 scenarios
#   SKIP_HANDOFF=1    skip the ownership-handoff scenario
#   HANDOFF_KEYS=100000  keys on the first node of the handoff scenario
#   OUT=DIR           keep the JSON reports (NN-scenario-target.json), each run's printout (.txt), node logs and
#                     table.md here; default: a new temp dir, printed and kept
#   BENCH_ARGS="..."  extra gokai bench flags for every run, after the defaults (e.g. "-pipeline 4" or
#                     "-keys 1000 -conns 10"); each run is bounded by DURATION + 100 s (prefill included)
#   GOKAI_ARGS="..."  extra `gokai start` flags for every gokai node (e.g. "-aae off")
#
# Needs Go and memcached (the Debian package `memcached` is installed with apt-get when missing). Loopback
# only. Every wait has a deadline; on exit, failure or Ctrl-C every process it started is stopped and its work
# dir (binary, data dirs) removed.
#
# Usage: scripts/bench.sh                       (about 12 min with the defaults)
#        scripts/bench.sh --short               (a quick look, about 2 min: DURATION=3s ROUNDS=1
#                                               HANDOFF_KEYS=20000, no protocol and TLS scenarios, unless set)
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
	echo "bench.sh: $*" >&2
	exit 1
}

# duration_secs prints a Go duration (whole units: h, m, s, ms) in seconds, rounded up.
duration_secs() {
	local d=$1 ms=0 n u
	[[ -n $d ]] || return 1
	while [[ -n $d ]]; do
		[[ $d =~ ^([0-9]+)(ms|s|m|h)(.*)$ ]] || return 1
		n=$((10#${BASH_REMATCH[1]})) u=${BASH_REMATCH[2]} d=${BASH_REMATCH[3]}
		case $u in
		ms) ms=$((ms + n)) ;;
		s) ms=$((ms + n * 1000)) ;;
		m) ms=$((ms + n * 60000)) ;;
		h) ms=$((ms + n * 3600000)) ;;
		esac
	done
	echo $(((ms + 999) / 1000))
}

case ${1:-} in
"") ;;
--short)
	DURATION=${DURATION:-3s} ROUNDS=${ROUNDS:-1} HANDOFF_KEYS=${HANDOFF_KEYS:-20000}
	SKIP_PROTOCOLS=${SKIP_PROTOCOLS-1} SKIP_CLUSTER_TLS=${SKIP_CLUSTER_TLS-1}
	;;
*) die "usage: scripts/bench.sh [--short] (knobs are environment variables, see the head of this script)" ;;
esac

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
RATE=${RATE:-10000}
SKIP_SINGLE=${SKIP_SINGLE:-}
SKIP_OPEN_LOOP=${SKIP_OPEN_LOOP:-}
SKIP_PROTOCOLS=${SKIP_PROTOCOLS:-}
SKIP_CLUSTER_TLS=${SKIP_CLUSTER_TLS:-}
SKIP_CLUSTER=${SKIP_CLUSTER:-}
SKIP_WRITES=${SKIP_WRITES:-}
SKIP_HANDOFF=${SKIP_HANDOFF:-}
HANDOFF_KEYS=${HANDOFF_KEYS:-100000}
BENCH_ARGS=${BENCH_ARGS:-}
GOKAI_ARGS=${GOKAI_ARGS:-}
OUT=${OUT:-}

duration_s=$(duration_secs "$DURATION") || die "DURATION=$DURATION: want a Go duration in whole units (10s, 500ms, 1m30s)"
[[ $ROUNDS =~ ^[1-9][0-9]*$ && $ROUNDS -le 100 ]] || die "ROUNDS=$ROUNDS: want 1..100"
[[ $RATE =~ ^[1-9][0-9]*$ ]] || die "RATE=$RATE: want a positive integer (ops/s)"
[[ $HANDOFF_KEYS =~ ^[1-9][0-9]*$ && $HANDOFF_KEYS -le 10000000 ]] || die "HANDOFF_KEYS=$HANDOFF_KEYS: want 1..10000000"
read -r -a extra_args <<<"$BENCH_ARGS"
read -r -a gokai_args <<<"$GOKAI_ARGS"
bench_bound=$((duration_s + 100)) # hard cap duration+5s, prefill timeout 60s, dial and startup slack

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || die "Go is not installed (https://go.dev/doc/install)"
if ! command -v memcached >/dev/null 2>&1; then
	echo "== installing the Debian package memcached"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq memcached >/dev/null
fi

# --- processes, cleanup -----------------------------------------------------------------------------------

pids=() # processes this script started and has not stopped yet
work=$(mktemp -d "${TMPDIR:-/tmp}/gokai-bench.XXXXXX")
if [[ -z $OUT ]]; then
	OUT=$(mktemp -d "${TMPDIR:-/tmp}/gokai-bench-out.XXXXXX")
fi
mkdir -p "$OUT/logs"

alive() { kill -0 "$1" 2>/dev/null; }

# stop_pids sends SIGTERM to the given processes, waits up to 15 s for them, then SIGKILLs the rest.
stop_pids() {
	local p deadline=$((SECONDS + 15)) keep=()
	for p in "$@"; do
		if alive "$p"; then kill -TERM "$p" 2>/dev/null || true; fi
	done
	for p in "$@"; do
		while alive "$p" && ((SECONDS < deadline)); do sleep 0.1; done
		if alive "$p"; then
			echo "bench.sh: process $p did not stop within 15s: killing it" >&2
			kill -KILL "$p" 2>/dev/null || true
		fi
		wait "$p" 2>/dev/null || true
	done
	for p in ${pids[@]+"${pids[@]}"}; do
		[[ " $* " == *" $p "* ]] || keep+=("$p")
	done
	pids=(${keep[@]+"${keep[@]}"})
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stop_pids ${pids[@]+"${pids[@]}"}
	rm -rf "$work"
	if ((rc != 0)); then echo "bench.sh: failed (exit $rc); reports and logs in $OUT" >&2; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# port_open succeeds when something accepts connections on 127.0.0.1:$1.
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

# mc_pid_at prints the pid the memcached at 127.0.0.1:$1 reports in its stats ("" when none answers).
mc_pid_at() {
	{ timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "stats\r\nquit\r\n" >&3 && cat <&3' _ "$1" 2>/dev/null || true; } |
		tr -d '\r' | sed -n 's/^STAT pid \([0-9][0-9]*\)$/\1/p'
}

# start_memcached starts memcached on a free loopback port and sets mc_addr once it is this memcached that
# answers there (its stats name its pid). memcached takes no port 0, so a taken port means another try.
start_memcached() {
	local try port pid deadline user=()
	[ "$(id -u)" != 0 ] || user=(-u nobody)
	for try in $(seq 10); do
		port=$((20000 + RANDOM % 12000))
		if port_open "$port"; then continue; fi
		memcached ${user[@]+"${user[@]}"} -l 127.0.0.1 -p "$port" -t 2 -U 0 >>"$OUT/logs/memcached.log" 2>&1 &
		pid=$!
		pids+=("$pid")
		deadline=$((SECONDS + 10))
		while alive "$pid" && ((SECONDS < deadline)); do
			if [[ $(mc_pid_at "$port") == "$pid" ]]; then
				mc_addr=127.0.0.1:$port
				echo "== memcached $(memcached -V | cut -d' ' -f2) -t 2 -U 0 on $mc_addr (pid $pid)"
				return 0
			fi
			sleep 0.1 # poll interval
		done
		stop_pids "$pid"
	done
	die "memcached did not start on a free loopback port in 10 tries (see $OUT/logs/memcached.log)"
}

# start_gokai NAME [flags...] starts a gokai node with every listener on a loopback port chosen by the OS,
# waits for its "gokai ready" log line and sets gk_pid, gk_mc, gk_rpc, gk_transport and gk_http.
start_gokai() {
	local name=$1 log="$OUT/logs/$1.log" line="" deadline
	shift
	mkdir -p "$work/$name"
	: >"$log"
	"$gk" start -name "$name@127.0.0.1" -data-dir "$work/$name" -n 3 -r 2 -w 2 -backend leveldb \
		-memcache-listen 127.0.0.1:0 -rpc-listen 127.0.0.1:0 -gossip-listen 127.0.0.1:0 \
		-transport-listen 127.0.0.1:0 -http-listen 127.0.0.1:0 -log-level info -shutdown-timeout 10s "${gokai_args[@]}" "$@" >"$log" 2>&1 &
	gk_pid=$!
	pids+=("$gk_pid")
	deadline=$((SECONDS + 60))
	while [[ -z $line ]]; do
		line=$(grep -m1 'msg="gokai ready"' "$log" || true)
		[[ -n $line ]] && break
		alive "$gk_pid" || { tail -n 30 "$log" >&2; die "gokai $name exited before it was ready"; }
		((SECONDS < deadline)) || { tail -n 30 "$log" >&2; die "gokai $name not ready after 60s"; }
		sleep 0.1 # poll interval
	done
	[[ $line =~ memcache=([^ ]+)\ rpc=([^ ]+)\ transport=([^ ]+)\ http=([^ ]+) ]] || die "gokai $name: no addresses in its ready line: $line"
	gk_mc=${BASH_REMATCH[1]} gk_rpc=${BASH_REMATCH[2]} gk_transport=${BASH_REMATCH[3]} gk_http=${BASH_REMATCH[4]}
	echo "== gokai $name: memcache $gk_mc, msgpack-RPC $gk_rpc (pid $gk_pid)"
}

# gkcli ADDR ARGS... runs a gokai client command against the node whose msgpack-RPC address is ADDR.
gkcli() {
	local addr=$1
	shift
	GOKAI_ADDR=$addr timeout --kill-after=5s 60 "$gk" "$@"
}

# --- runs ---------------------------------------------------------------------------------------------------

load=(-conns 50 -get-ratio 0.9 -value-size 100 -keys 10000 -duration "$DURATION")
reports=()
runs=0

# bench_one SCENARIO SLUG TARGET ADDR [flags...] runs gokai bench once and keeps its JSON report.
bench_one() {
	local scenario=$1 slug=$2 target=$3 addr=$4 file
	shift 4
	runs=$((runs + 1))
	file=$(printf '%s/%02d-%s-%s' "$OUT" "$runs" "$slug" "$target")
	echo "   run $runs: $target at $addr"
	if ! timeout --foreground --kill-after=10s "$bench_bound" "$gk" bench -scenario "$scenario" -target "$target" \
		-addr "$addr" "${load[@]}" "$@" ${extra_args[@]+"${extra_args[@]}"} -json "$file.json" >"$file.txt" 2>&1; then
		cat "$file.txt" >&2
		die "gokai bench against $target failed"
	fi
	# NB: gokai bench ends cleanly on Ctrl-C (its report says stop "canceled"), and bash then runs no INT trap.
	if grep -q '"stop": *"canceled"' "$file.json"; then
		echo "bench.sh: interrupted" >&2
		exit 130
	fi
	reports+=("$file.json")
}

# rounds SCENARIO SLUG GOKAI_ADDR [flags...] runs ROUNDS rounds against gokai and memcached, alternating.
rounds() {
	local scenario=$1 slug=$2 gaddr=$3 r
	shift 3
	echo "== $scenario: $ROUNDS round(s) of $DURATION"
	for ((r = 1; r <= ROUNDS; r++)); do
		if ((r % 2 == 1)); then
			bench_one "$scenario" "$slug" gokai "$gaddr" "$@"
			bench_one "$scenario" "$slug" memcached "$mc_addr" "$@"
		else
			bench_one "$scenario" "$slug" memcached "$mc_addr" "$@"
			bench_one "$scenario" "$slug" gokai "$gaddr" "$@"
		fi
	done
}

# cluster_settled COUNT ADDR... succeeds when each node at the given RPC addresses sees the same ring version,
# COUNT valid and alive members, nothing staged and no transfer pending, and no transfer (ownership or hinted)
# runs.
cluster_settled() {
	local count=$1 addr st versions=()
	shift
	for addr in "$@"; do
		st=$(gkcli "$addr" cluster status --json 2>/dev/null) || return 1
		[[ $(grep -o '"status":"valid"' <<<"$st" | wc -l) -eq $count ]] || return 1
		[[ $(grep -o '"alive":true' <<<"$st" | wc -l) -eq $count ]] || return 1
		! grep -q -e '"kind":' -e '"partition":' <<<"$st" || return 1
		versions+=("$(grep -o '"version":[0-9]*' <<<"$st" | head -n1)")
	done
	[[ $(printf '%s\n' "${versions[@]}" | sort -u | wc -l) -eq 1 ]] || return 1
	st=$(gkcli "$1" transfers --json 2>/dev/null) || return 1
	! grep -q '"partition":' <<<"$st"
}

# --- main ---------------------------------------------------------------------------------------------------

echo "== output: $OUT"
gk="$work/gokai"
go build -o "$gk" ./cmd/gokai
echo "== gokai $("$gk" version | cut -d' ' -f2), built from $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
echo "== load: gokai bench ${load[*]} ${extra_args[*]+${extra_args[*]}}"

start_memcached
if [[ -z $SKIP_SINGLE ]]; then
	start_gokai single
	single_pid=$gk_pid

	rounds "1 node, closed loop" 1node-closed "$gk_mc"
	if [[ -z $SKIP_PROTOCOLS ]]; then
		rounds "1 node, closed loop, binary protocol" 1node-binary "$gk_mc" -protocol memcache-binary
		rounds "1 node, closed loop, meta commands" 1node-meta "$gk_mc" -protocol memcache-meta
	fi
	if [[ -z $SKIP_OPEN_LOOP ]]; then
		rounds "1 node, open loop at $RATE ops/s" 1node-open "$gk_mc" -rate "$RATE"
	fi
	# NB: the write-heavy scenarios come last on this node: they leave goleveldb compactions behind, which would
	# weigh on the scenarios after them (measured after them, the open loop's p99 was 47 ms; before them, 3.5 ms).
	if [[ -z $SKIP_WRITES ]]; then
		rounds "1 node, closed loop, 100% set" 1node-set "$gk_mc" -get-ratio 0
		rounds "1 node, closed loop, 50% set" 1node-mixed "$gk_mc" -get-ratio 0.5
	fi
	stop_pids "$single_pid"
fi

# cluster LABEL SLUG [start flags...] forms a 3-node cluster (n1, n2, n3; GOKAI_CERTS_DIR set for the CLI when
# the nodes run on certificates), runs the rounds against n1 and stops the nodes.
cluster() {
	local label=$1 slug=$2 n1_mc n1_rpc n1_transport n2_mc n2_rpc n3_mc n3_rpc cpids
	shift 2
	start_gokai "n1$slug" "$@" $(node_certs "n1$slug")
	n1_mc=$gk_mc n1_rpc=$gk_rpc n1_transport=$gk_transport cpids=("$gk_pid")
	start_gokai "n2$slug" "$@" $(node_certs "n2$slug")
	n2_mc=$gk_mc n2_rpc=$gk_rpc cpids+=("$gk_pid")
	start_gokai "n3$slug" "$@" $(node_certs "n3$slug")
	n3_mc=$gk_mc n3_rpc=$gk_rpc cpids+=("$gk_pid")
	gkcli "$n2_rpc" cluster join "$n1_transport" >>"$OUT/logs/cluster.log"
	gkcli "$n3_rpc" cluster join "$n1_transport" >>"$OUT/logs/cluster.log"
	deadline=$((SECONDS + 30))
	until [[ $(gkcli "$n1_rpc" cluster status --json 2>/dev/null | grep -o '"kind":' | wc -l) -eq 2 ]]; do
		((SECONDS < deadline)) || die "the claimant n1$slug did not stage both joins within 30s"
		sleep 0.1 # poll interval
	done
	gkcli "$n1_rpc" cluster plan >>"$OUT/logs/cluster.log"
	gkcli "$n1_rpc" cluster commit >>"$OUT/logs/cluster.log"
	deadline=$((SECONDS + 180))
	until cluster_settled 3 "$n1_rpc" "$n2_rpc" "$n3_rpc"; do
		((SECONDS < deadline)) || die "the cluster did not settle within 180s (see $OUT/logs)"
		sleep 0.2 # poll interval
	done
	gkcli "$n1_rpc" cluster status >>"$OUT/logs/cluster.log"
	echo "== 3-node cluster settled ($label)"
	rounds "3 nodes via n1, closed loop$label" "3nodes-closed$slug" "$n1_mc"
	rounds "3 nodes, 51 conns over all, closed loop$label" "3nodes-spread$slug" "$n1_mc,$n2_mc,$n3_mc" -conns 51
	stop_pids "${cpids[@]}"
}

# node_certs NAME prints the start flags of node NAME on the bench CA (none without one).
node_certs() {
	[[ -n ${GOKAI_CERTS_DIR:-} ]] || return 0
	local d="$work/certs-$1"
	if [[ ! -d $d ]]; then
		mkdir -p "$d"
		cp "$GOKAI_CERTS_DIR/ca.crt" "$GOKAI_CERTS_DIR/gossip.key" "$d/"
		"$gk" certs create-node "$1@127.0.0.1" --certs-dir "$d" --ca-key "$GOKAI_CERTS_DIR/ca.key" >/dev/null
	fi
	echo "-certs-dir $d -rpc-tls"
}

if [[ -z $SKIP_CLUSTER ]]; then
	cluster "" ""
	if [[ -z $SKIP_CLUSTER_TLS ]]; then
		# The same cluster with mutual TLS between the nodes (the load itself still speaks plain memcache).
		"$gk" certs create-ca --certs-dir "$work/ca" >/dev/null
		"$gk" certs create-client admin --certs-dir "$work/ca" >/dev/null
		export GOKAI_CERTS_DIR="$work/ca"
		cluster ", mTLS between nodes" "-tls"
		unset GOKAI_CERTS_DIR
	fi
fi

# metric HTTP_ADDR NAME{LABELS} prints the value of one sample of the node's Prometheus metrics (0 when absent).
metric() {
	local body v
	# The whole page first: awk leaving at the first match would close the pipe on a curl still writing,
	# and curl reports that as a failure (exit 23) that pipefail passes on.
	body=$(curl -fsS --max-time 5 "http://$1/metrics") || die "metrics of $1 not readable"
	v=$(awk -v name="$2" '$1 == name { print $2; exit }' <<<"$body")
	echo "${v:-0}"
}

now_ns() { date +%s%N; }

handoff_rows=()

# handoff_round R loads HANDOFF_KEYS keys into a fresh node, joins a second empty one, commits and times the
# ownership transfers from the commit until both nodes see none pending and none running.
handoff_round() {
	local r=$1 a_rpc a_http a_mc a_transport b_rpc hpids file t0 t1 items bytes pkeys psecs secs
	start_gokai "h${r}a"
	a_rpc=$gk_rpc a_http=$gk_http a_mc=$gk_mc a_transport=$gk_transport hpids=("$gk_pid")
	file=$(printf '%s/handoff-%02d-load' "$OUT" "$r")
	echo "   round $r: loading $HANDOFF_KEYS keys into h${r}a"
	timeout --foreground --kill-after=10s $((bench_bound + 900)) "$gk" bench -scenario "handoff load" -target gokai \
		-addr "$a_mc" -conns 50 -get-ratio 0 -value-size 100 -keys "$HANDOFF_KEYS" -ops 1 -prefill-timeout 900s \
		-json "$file.json" >"$file.txt" 2>&1 || { cat "$file.txt" >&2; die "loading the handoff keys failed"; }
	pkeys=$(grep -o '"keys": *[0-9]*' "$file.json" | tail -n1 | grep -o '[0-9]*$')
	psecs=$(grep -o '"elapsed_s": *[0-9.e+-]*' "$file.json" | tail -n1 | sed 's/.*: *//')
	start_gokai "h${r}b"
	b_rpc=$gk_rpc hpids+=("$gk_pid")
	gkcli "$b_rpc" cluster join "$a_transport" >>"$OUT/logs/cluster.log"
	deadline=$((SECONDS + 30))
	until [[ $(gkcli "$a_rpc" cluster status --json 2>/dev/null | grep -o '"kind":' | wc -l) -eq 1 ]]; do
		((SECONDS < deadline)) || die "the claimant h${r}a did not stage the join within 30s"
		sleep 0.1 # poll interval
	done
	gkcli "$a_rpc" cluster plan >>"$OUT/logs/cluster.log"
	t0=$(now_ns)
	gkcli "$a_rpc" cluster commit >>"$OUT/logs/cluster.log"
	deadline=$((SECONDS + 900))
	until cluster_settled 2 "$a_rpc" "$b_rpc"; do
		((SECONDS < deadline)) || die "the handoff did not finish within 900s (see $OUT/logs)"
		sleep 0.05 # poll interval
	done
	t1=$(now_ns)
	items=$(metric "$a_http" 'gokai_handoff_keys_sent_total{kind="ownership"}')
	bytes=$(metric "$a_http" 'gokai_handoff_bytes_sent_total{kind="ownership"}')
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
	echo "   round $r: $items items, $bytes bytes in ${secs}s"
	handoff_rows+=("$(awk -v i="$items" -v b="$bytes" -v s="$secs" -v pk="$pkeys" -v ps="$psecs" -v r="$r" 'BEGIN {
		printf "| %d | %d | %.1f | %.2f | **%.1f** | **%.0f** | %d keys in %.2f s: %.1f MB/s, %.0f keys/s |", r, i, b / 1e6, s,
			b / 1e6 / s, i / s, pk, ps, pk * 100 / 1e6 / ps, pk / ps }')")
	stop_pids "${hpids[@]}"
}

if [[ -z $SKIP_HANDOFF ]]; then
	echo "== ownership handoff: $ROUNDS round(s) of $HANDOFF_KEYS keys, a second node joins the loaded first"
	for ((r = 1; r <= ROUNDS; r++)); do handoff_round "$r"; done
fi

echo
: >"$OUT/table.md"
if ((${#reports[@]} > 0)); then
	"$gk" bench table "${reports[@]}" | tee "$OUT/table.md"
fi
if ((${#handoff_rows[@]} > 0)); then
	{
		echo
		echo "Ownership handoff, $HANDOFF_KEYS keys of 100 B on one node (N=3: every replica local), a second node joins;"
		echo "from the commit until no transfer is pending or running. Baseline: the same node loading those keys by"
		echo "memcache sets (gokai bench, 50 connections, pipelined; MB of values)."
		echo
		echo "| round | items sent | MB sent | s | MB/s | items/s | baseline: load by sets |"
		echo "| ---: | ---: | ---: | ---: | ---: | ---: | --- |"
		printf '%s\n' "${handoff_rows[@]}"
	} | tee -a "$OUT/table.md"
fi
echo
echo "JSON reports, run printouts, node logs and table.md: $OUT"
