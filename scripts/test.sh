#!/usr/bin/env bash
# Runs gokai's whole test suite, installing what the tests need when it is missing:
#   Debian packages: libmemcached-tools, python3-pymemcache, python3-pylibmc, ruby + ruby-dalli (third-party
#                    memcache clients; npm's memjs is installed by its test into a temp dir),
#                    python3-msgpack (a third-party msgpack implementation), memcached (the bench reference),
#                    perl, gcc, libc6-dev, xz-utils (memcached's own t/ suite, fetched by its test with
#                    apt-get source from the Debian archives the system uses: needs the network),
#                    nftables (nft: the fault-injection suite's partitions, internal/faults),
#                    prometheus (a real server scraping a cluster, and promtool), chromium (the status
#                    page in a headless browser)
#   Go modules:      go mod download
# Usage: scripts/test.sh            (CI=true makes missing third-party clients a failure instead of a skip)
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
	export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null 2>&1 || { echo "test.sh: Go is not installed (https://go.dev/doc/install)" >&2; exit 1; }

apt_pkgs=()
for tool in memccp memccat memcrm memcexist memctouch; do
	[ -x "/usr/bin/$tool" ] || { apt_pkgs+=(libmemcached-tools); break; }
done
/usr/bin/python3 -c 'import pymemcache' >/dev/null 2>&1 || apt_pkgs+=(python3-pymemcache)
/usr/bin/python3 -c 'import pylibmc' >/dev/null 2>&1 || apt_pkgs+=(python3-pylibmc)
command -v ruby >/dev/null 2>&1 || apt_pkgs+=(ruby)
ruby -e 'require "dalli"' >/dev/null 2>&1 || apt_pkgs+=(ruby-dalli)
perl -MTest::More -e 1 >/dev/null 2>&1 || apt_pkgs+=(perl)
command -v gcc >/dev/null 2>&1 || apt_pkgs+=(gcc libc6-dev)
command -v xz >/dev/null 2>&1 || apt_pkgs+=(xz-utils)
/usr/bin/python3 -c 'import msgpack' >/dev/null 2>&1 || apt_pkgs+=(python3-msgpack)
[ -x /usr/bin/memcached ] || apt_pkgs+=(memcached)
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] || apt_pkgs+=(nftables)
{ [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || apt_pkgs+=(prometheus)
[ -x /usr/bin/chromium ] || apt_pkgs+=(chromium)
if [ ${#apt_pkgs[@]} -gt 0 ]; then
	echo "== installing Debian packages: ${apt_pkgs[*]}"
	sudo=""
	[ "$(id -u)" = 0 ] || sudo="sudo"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${apt_pkgs[@]}" >/dev/null
fi

echo "== go mod download"
go mod download

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test -race -count=3 (packages with concurrency; three runs, so a flake shows before it lands)"
# NB: not cli (cmd/gokai's command line): its tests run several in-process nodes at once, and two protoactor remotes in one
# process race inside gRPC's global logger setup (protoactor's Remote.Start); multi-node behaviour is tested
# with separate processes in internal/itest instead.
go test -race -count=3 ./actors/... ./coordinator/... ./vnode/... ./kv/... ./ring/... ./membership/... ./storage/... ./supervisor/... ./protocol/... ./bench/... ./client/... ./internal/mpscan/... ./internal/netserve/... ./internal/eventually/... ./handoff/... ./coverage/... ./entropy/... ./aae/... ./service/... ./node/... ./examples/...

echo "== go test ./..."
# NB: internal/faults runs real clusters under faults for about 8 minutes (as root; it skips elsewhere):
# past go test's default 10-minute limit per package when the machine is busy.
go test -count=1 -timeout 30m ./...
