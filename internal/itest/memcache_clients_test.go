package itest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Third-party memcache clients driving a real node over the binary and text protocols: memccapable (its
// ascii and binary conformance suites), Dalli (Ruby, binary), memjs (Node, binary) and pylibmc (Python on
// libmemcached) in binary mode. Each script runs every command its client offers and prints OK.

// requireOrSkip skips (fails in CI) when cond fails.
func requireOrSkip(t *testing.T, err error, what string) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI: %v", what, err)
	}
	t.Skipf("%s not available: %v", what, err)
}

// runScript runs a client script and wants "OK" as its last line.
func runScript(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil || !strings.HasSuffix(text, "OK") {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, text)
	}
	t.Logf("%s: %s", filepath.Base(args[0]), text)
}

func writeScript(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeUserFile writes a memcached user file with user "gokai", password "s3cret".
func writeUserFile(t *testing.T) string {
	t.Helper()
	return writeScript(t, "users", "gokai:s3cret\nother:x\n")
}

// TestMemccapable runs libmemcached's conformance suite, ascii and binary: all 27 tests of each.
func TestMemccapable(t *testing.T) {
	need(t, "/usr/bin/memccapable")
	p := startNode(t, "", "-memcache-flush-all")
	host, port, _ := strings.Cut(p.mcAddr, ":")
	for _, mode := range []string{"-a", "-b"} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		out, err := exec.CommandContext(ctx, "memccapable", "-h", host, "-p", port, mode).CombinedOutput()
		cancel()
		if err != nil || !strings.Contains(string(out), "All tests passed") || strings.Count(string(out), "[pass]") != 27 {
			t.Fatalf("memccapable %s: %v\n%s", mode, err, out)
		}
	}
}

const dalliScript = `
require 'dalli'
addr, user, pass = ARGV
opts = {socket_timeout: 5, socket_failure_delay: false, down_retry_delay: 0}
opts.merge!(username: user, password: pass) if user
dc = Dalli::Client.new(addr, opts)

def check(what, got, want)
  return if got == want
  puts "FAIL #{what}: got #{got.inspect} want #{want.inspect}"
  exit 1
end

check("version", dc.version.values.first.start_with?("1.6.18-gokai-"), true)
check("alive", dc.alive!.nil?, false)
check("flush", dc.flush.all?, true)
check("get missing", dc.get("nope"), nil)
dc.set("k", "v")
check("get", dc.get("k"), "v")
dc.set("obj", {"a" => [1, 2]})
check("get marshalled", dc.get("obj"), {"a" => [1, 2]})
check("add existing", dc.add("k", "x"), false)
check("add new", dc.add("a", "1").is_a?(Integer), true)
dc.replace("nope", "x") # NB: Dalli answers a miss with the error's cas, 0
check("replace missing", dc.get("nope"), nil)
check("replace", dc.replace("a", "2").is_a?(Integer), true)
check("get replaced", dc.get("a"), "2")
dc.set("raw", "mid", nil, raw: true)
check("append", dc.append("raw", ">"), true)
check("prepend", dc.prepend("raw", "<"), true)
check("get appended", dc.get("raw"), "<mid>")
check("append missing", dc.append("nope", "x"), false)
check("delete", dc.delete("a"), true)
check("delete missing", dc.delete("a"), nil)

check("incr missing", dc.incr("ctr"), nil)
check("incr default", dc.incr("ctr", 1, nil, 10), 10)
check("incr", dc.incr("ctr", 5), 15)
check("decr", dc.decr("ctr", 20), 0)
check("decr default", dc.decr("ctr2", 1, 100, 7), 7)
check("incr 64-bit", dc.incr("ctr2", 2**40), 2**40 + 7)

check("touch", dc.touch("k", 100), true)
check("touch missing", dc.touch("nope", 100), nil)
check("gat", dc.gat("k", 100), "v")
check("gat missing", dc.gat("nope", 100), nil)

check("cas", dc.cas("k") { |v| v + "!" }.is_a?(Integer), true)
check("get after cas", dc.get("k"), "v!")
check("cas missing", dc.cas("nope") { |v| "x" }, nil)
check("cas! missing", dc.cas!("new") { |v| "made" }.is_a?(Integer), true)
check("get cas!", dc.get("new"), "made")
v, cas = dc.get_cas("k")
check("get_cas", v, "v!")
check("set_cas stale", dc.set_cas("k", "y", cas + 1), false)
check("set_cas", dc.set_cas("k", "y", cas).is_a?(Integer), true)
v, cas = dc.get_cas("k")
check("replace_cas", dc.replace_cas("k", "z", cas).is_a?(Integer), true)
v, cas = dc.get_cas("k")
check("delete_cas stale", dc.delete_cas("k", cas + 1), false)
check("delete_cas", dc.delete_cas("k", cas), true)
check("fetch", dc.fetch("f") { "computed" }, "computed")
check("fetch hit", dc.fetch("f") { "again" }, "computed")

dc.multi do
  100.times { |i| dc.set("m#{i}", "v#{i}") }
end
got = dc.get_multi((0...100).map { |i| "m#{i}" } + ["nope"])
check("get_multi count", got.size, 100)
check("get_multi value", got["m42"], "v42")
cas_got = dc.get_multi_cas("m1", "m2", "nope")
check("get_multi_cas", cas_got.keys.sort, ["m1", "m2"])
check("get_multi_cas value", cas_got["m1"][0], "v1")

dc.set("ttl", "short", 1)
check("ttl alive", dc.get("ttl"), "short")
deadline = Time.now + 10
sleep 0.2 while dc.get("ttl") && Time.now < deadline
check("ttl expired", dc.get("ttl"), nil)

big = "x" * 500_000
dc.set("big", big)
check("big", dc.get("big"), big)

st = dc.stats.values.first
check("stats cmd_get", st["cmd_get"].to_i > 0, true)
check("stats gokai_version", st.key?("gokai_version"), true)
check("stats settings", dc.stats(:settings).values.first["cas_enabled"], "yes")
dc.reset_stats
check("reset_stats", dc.stats.values.first["cmd_set"], "0")
check("flush after", dc.flush.all?, true)
check("get after flush", dc.get("m1"), nil)
dc.close
puts "OK"
`

func requireDalli(t *testing.T) {
	t.Helper()
	_, err := exec.LookPath("ruby")
	if err == nil {
		err = exec.Command("ruby", "-e", `require "dalli"`).Run()
	}
	requireOrSkip(t, err, "ruby with Dalli (Debian ruby, ruby-dalli)")
}

// TestDalli drives every command of Dalli (Ruby's most used memcache client, binary protocol).
func TestDalli(t *testing.T) {
	requireDalli(t)
	p := startNode(t, "", "-memcache-flush-all")
	runScript(t, "", "ruby", writeScript(t, "dalli.rb", dalliScript), p.mcAddr)
}

const memjsScript = `
const memjs = require('memjs');
const [addr, user, pass] = process.argv.slice(2);
const opts = {timeout: 5, retries: 0, logger: {log: () => {}}};
if (user) { opts.username = user; opts.password = pass; }
const c = memjs.Client.create(addr, opts);
const fail = (what, got, want) => { console.log('FAIL ' + what + ': got ' + JSON.stringify(got) + ' want ' + JSON.stringify(want)); process.exit(1); };
const check = (what, got, want) => { if (JSON.stringify(got) !== JSON.stringify(want)) fail(what, got, want); };
const str = (r) => r.value === null ? null : r.value.toString();
(async () => {
  await c.flush();
  check('get missing', str(await c.get('nope')), null);
  check('set', await c.set('k', 'v', {expires: 0}), true);
  const g = await c.get('k');
  check('get', [str(g), g.flags.readUInt32BE(0)], ['v', 0]);
  check('add existing', await c.add('k', 'x').catch(() => false), false);
  check('add new', await c.add('a', '1', {expires: 100}), true);
  check('replace missing', await c.replace('nope', 'x').catch(() => false), false);
  check('replace', await c.replace('a', '2'), true);
  check('get replaced', str(await c.get('a')), '2');
  check('append', await c.append('a', '3'), true);
  check('prepend', await c.prepend('a', '1'), true);
  // NB: memjs 1.3.2's prepend sends the APPEND opcode (0x0e): the node does what it was asked.
  check('get appended', str(await c.get('a')), '231');
  check('delete', await c.delete('a'), true);
  check('delete missing', await c.delete('a'), false);
  check('increment initial', await c.increment('n', 5, {initial: 10}), {success: true, value: 10});
  check('increment', await c.increment('n', 5, {}), {success: true, value: 15});
  check('decrement', await c.decrement('n', 20, {}), {success: true, value: 0});
  check('get counter', str(await c.get('n')), '0');
  check('touch', await c.touch('k', 100), true);
  check('touch missing', await c.touch('nope', 100).catch(() => false), false);
  await c.set('ttl', 'short', {expires: 1});
  const deadline = Date.now() + 10000;
  while (str(await c.get('ttl')) !== null && Date.now() < deadline) await new Promise(r => setTimeout(r, 200));
  check('expired', str(await c.get('ttl')), null);
  const big = 'y'.repeat(300000);
  await c.set('big', big);
  check('big', str(await c.get('big')), big);
  const many = await Promise.all(Array.from({length: 50}, (_, i) => c.set('m' + i, 'v' + i).then(() => c.get('m' + i))));
  check('pipelined', many.every((r, i) => str(r) === 'v' + i), true);
  const stats = await new Promise((resolve) => c.stats((err, server, st) => resolve(err ? {} : st)));
  check('stats', stats.version.startsWith('1.6.18-gokai-') && Number(stats.cmd_get) > 0, true);
  const settings = await new Promise((resolve) => c.statsWithKey('settings', (err, server, st) => resolve(err ? {} : st)));
  check('stats settings', settings.cas_enabled, 'yes');
  await new Promise((resolve) => c.resetStats(() => resolve()));
  const after = await new Promise((resolve) => c.stats((err, server, st) => resolve(err ? {} : st)));
  check('reset stats', after.cmd_set, '0');
  check('flush', Object.values(await c.flush()).every(v => v === true), true);
  check('get after flush', str(await c.get('k')), null);
  c.quit();
  console.log('OK');
})().catch((e) => { console.log('FAIL ' + (e && e.stack || e)); process.exit(1); });
`

// installNpm installs pkg into a temp dir (skipping the test when node or npm is missing or the install
// fails, unless CI is set) and returns the dir.
func installNpm(t *testing.T, pkg string) string {
	t.Helper()
	for _, tool := range []string{"node", "npm"} {
		_, err := exec.LookPath(tool)
		requireOrSkip(t, err, tool)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "npm", "install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund",
		"--prefix", dir, pkg)
	if out, err := cmd.CombinedOutput(); err != nil {
		requireOrSkip(t, err, "npm install "+pkg+"\n"+string(out))
	}
	return dir
}

// TestMemjs drives every command of memjs (Node's binary-protocol client).
func TestMemjs(t *testing.T) {
	dir := installNpm(t, "memjs@1.3.2")
	p := startNode(t, "", "-memcache-flush-all")
	script := filepath.Join(dir, "memjs_test.js")
	if err := os.WriteFile(script, []byte(memjsScript), 0o644); err != nil {
		t.Fatal(err)
	}
	runScript(t, dir, "node", script, p.mcAddr)
}

const pylibmcScript = `
import sys, time, pylibmc
addr = sys.argv[1]
mc = pylibmc.Client([addr], binary=True, behaviors={"cas": True, "receive_timeout": 5000000, "send_timeout": 5000000})

def check(what, got, want):
    if got != want:
        print("FAIL %s: got %r want %r" % (what, got, want)); sys.exit(1)

def raises(what, exc, fn, *args):
    try:
        fn(*args)
    except exc:
        return
    print("FAIL %s: no %s" % (what, exc.__name__)); sys.exit(1)

check("flush_all", mc.flush_all(), True)
check("get missing", mc.get("nope"), None)
check("set", mc.set("k", b"v"), True)
check("get", mc.get("k"), b"v")
check("set flags (int)", mc.set("i", 42), True)
check("get int", mc.get("i"), 42)
check("add existing", mc.add("k", b"x"), False)
check("add new", mc.add("a", b"1"), True)
raises("replace missing", pylibmc.NotFound, mc.replace, "nope", b"x") # memcached's binary NOT_FOUND
check("replace", mc.replace("a", b"2"), True)
check("append", mc.append("a", b"3"), True)
check("prepend", mc.prepend("a", b"1"), True)
check("get appended", mc.get("a"), b"123")
check("delete", mc.delete("a"), True)
check("delete missing", mc.delete("a"), False)
mc.set("n", b"10")
check("incr", mc.incr("n", 5), 15)
check("decr", mc.decr("n", 20), 0)
raises("incr missing", pylibmc.NotFound, mc.incr, "nope")
check("touch", mc.touch("k", 100), True)
check("touch missing", mc.touch("nope", 100), False)
v, cas = mc.gets("k")
check("gets", v, b"v")
check("cas", mc.cas("k", b"w", cas), True)
check("cas stale", mc.cas("k", b"x", cas), False)
check("get after cas", mc.get("k"), b"w")
check("set_multi", mc.set_multi({"m1": b"1", "m2": b"2", "m3": b"3"}), [])
check("get_multi", mc.get_multi(["m1", "m2", "m3", "nope"]), {"m1": b"1", "m2": b"2", "m3": b"3"})
check("add_multi", mc.add_multi({"m1": b"x", "m4": b"4"}), ["m1"])
mc.set_multi({"c1": b"1", "c2": b"5"})
check("incr_multi", mc.incr_multi(["c1", "c2"], delta=2), None)
check("counters", mc.get_multi(["c1", "c2"]), {"c1": b"3", "c2": b"7"})
check("delete_multi", mc.delete_multi(["m1", "m2"]), True)
check("get deleted", mc.get_multi(["m1", "m2", "m3"]), {"m3": b"3"})
mc.set("ttl", b"x", time=1)
deadline = time.time() + 10
while mc.get("ttl") is not None and time.time() < deadline:
    time.sleep(0.2)
check("expired", mc.get("ttl"), None)
big = b"z" * 400000
mc.set("big", big)
check("big", mc.get("big"), big)
def text(d):
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v) for k, v in d.items()}
stats = dict(mc.get_stats())
st = text(list(stats.values())[0]) if stats else {}
check("stats", st.get("version", "").startswith("1.6.18-gokai-") and int(st.get("cmd_get", 0)) > 0, True)
# NB: pylibmc parses only libmemcached's fixed set of general stat names, so stats groups are not asked.
check("flush_all", mc.flush_all(), True)
check("get after flush", mc.get("k"), None)
mc.disconnect_all()
print("OK")
`

// TestPylibmcBinary drives every command of pylibmc (libmemcached) in binary mode.
func TestPylibmcBinary(t *testing.T) {
	need(t, "/usr/bin/python3")
	requireOrSkip(t, exec.Command("/usr/bin/python3", "-c", "import pylibmc").Run(), "python3-pylibmc")
	p := startNode(t, "", "-memcache-flush-all")
	runScript(t, "", "/usr/bin/python3", writeScript(t, "pylibmc_test.py", pylibmcScript), p.mcAddr)
}

// TestMemcachedClientsSASL: with -memcache-auth-file, Dalli and memjs log in with SASL PLAIN and run their
// commands; a client without credentials or with a wrong password is refused; a text client logs in with
// memcached's token.
func TestMemcachedClientsSASL(t *testing.T) {
	requireDalli(t)
	dir := installNpm(t, "memjs@1.3.2")
	p := startNode(t, "", "-memcache-flush-all", "-memcache-auth-file", writeUserFile(t))
	runScript(t, "", "ruby", writeScript(t, "dalli.rb", dalliScript), p.mcAddr, "gokai", "s3cret")
	script := filepath.Join(dir, "memjs_test.js")
	if err := os.WriteFile(script, []byte(memjsScript), 0o644); err != nil {
		t.Fatal(err)
	}
	runScript(t, dir, "node", script, p.mcAddr, "gokai", "s3cret")

	refused := writeScript(t, "refused.rb", `
require 'dalli'
addr, user, pass = ARGV
opts = {socket_timeout: 5, socket_failure_delay: false, down_retry_delay: 0}
opts.merge!(username: user, password: pass) if user
begin
  Dalli::Client.new(addr, opts).set("k", "v")
  puts "FAIL: a write went through"
rescue Dalli::DalliError => e
  puts "refused: #{e.class}"
  puts "OK"
end
`)
	runScript(t, "", "ruby", refused, p.mcAddr, "gokai", "wrong")
	runScript(t, "", "ruby", refused, p.mcAddr)

	m := dialMC(t, p.mcAddr)
	if got := m.do("get k\r\n"); got != "CLIENT_ERROR unauthenticated\r\n" {
		t.Fatalf("text before login: %q", got)
	}
	if got := m.do("set login 0 0 12\r\ngokai s3cret\r\n"); got != "STORED\r\n" {
		t.Fatalf("text login: %q", got)
	}
	if got := m.do("mn\r\n"); got != "MN\r\n" {
		t.Fatalf("meta after login: %q", got)
	}
}
