#!/usr/bin/env bash
# Throughput of one node with the HTTP listener and its metrics on vs off, interleaved in one run
# (docs/benchmarks.md). Usage: scripts/bench_metrics.sh [ROUNDS] [DURATION]   (defaults: 3 rounds of 10s)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
rounds=${1:-3} duration=${2:-10s}
work=$(mktemp -d)
gk_pid=""
cleanup() { [[ -n $gk_pid ]] && kill "$gk_pid" 2>/dev/null && wait "$gk_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
go build -o "$work/gokai" ./cmd/gokai

run() { # $1 = on|off; prints ops/s
	local http="127.0.0.1:0" log="$work/node.log" line="" addr
	[[ $1 == off ]] && http=""
	rm -rf "$work/data"
	"$work/gokai" start -data-dir "$work/data" -memcache-listen 127.0.0.1:0 -rpc-listen 127.0.0.1:0 \
		-gossip-listen 127.0.0.1:0 -transport-listen 127.0.0.1:0 -http-listen "$http" >"$log" 2>&1 &
	gk_pid=$!
	for _ in $(seq 100); do
		line=$(grep -m1 'msg="gokai ready"' "$log" || true)
		[[ -n $line ]] && break
		sleep 0.1
	done
	[[ -n $line ]] || { cat "$log" >&2; exit 1; }
	addr=$(sed -E 's/.*memcache=([^ ]+).*/\1/' <<<"$line")
	"$work/gokai" bench -addr "$addr" -duration "$duration" -conns 50 -keys 10000 -get-ratio 0.9 \
		-json "$work/r.json" >/dev/null
	kill "$gk_pid"; wait "$gk_pid" 2>/dev/null || true; gk_pid=""
	/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(round(r["results"]["ops_per_sec"]))' "$work/r.json"
}

declare -a on off
for i in $(seq "$rounds"); do
	off+=("$(run off)")
	on+=("$(run on)")
	echo "round $i: metrics off ${off[-1]} ops/s, on ${on[-1]} ops/s"
done
/usr/bin/python3 - "${off[*]}" "${on[*]}" <<'PY'
import statistics, sys
off = [float(x) for x in sys.argv[1].split()]
on = [float(x) for x in sys.argv[2].split()]
mo, mn = statistics.median(off), statistics.median(on)
print(f"median: off {mo:.0f} ops/s, on {mn:.0f} ops/s, cost {100*(mo-mn)/mo:+.1f}%")
PY
