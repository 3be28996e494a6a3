package itest

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const pymemcacheScript = `
import ssl, sys, time
from pymemcache.client.base import Client
host, port = sys.argv[1].rsplit(":", 1)
tls = {}
if len(sys.argv) > 2:  # a CA file: memcache over TLS (the node's -memcache-tls), checked against it
    tls = {"tls_context": ssl.create_default_context(cafile=sys.argv[2])}
c = Client((host, int(port)), connect_timeout=5, timeout=10, **tls)

def check(what, got, want):
    if got != want:
        print("FAIL %s: got %r want %r" % (what, got, want)); sys.exit(1)

check("set", c.set("k1", b"v1", noreply=False), True)
check("get", c.get("k1"), b"v1")
check("get missing", c.get("nope"), None)
check("set flags", c.set("kf", b"x", flags=42, noreply=False), True)
class FlagSerde:
    def serialize(self, key, value):
        return value, 42
    def deserialize(self, key, value, flags):
        return (value, flags)
cf = Client((host, int(port)), connect_timeout=5, timeout=10, serde=FlagSerde(), **tls)
check("get flags", cf.get("kf"), (b"x", 42))
check("add existing", c.add("k1", b"other", noreply=False), False)
check("add new", c.add("k2", b"v2", noreply=False), True)
check("replace missing", c.replace("k3", b"v3", noreply=False), False)
check("replace", c.replace("k2", b"v2b", noreply=False), True)
check("get replaced", c.get("k2"), b"v2b")
check("append", c.append("k1", b"-tail", noreply=False), True)
check("prepend", c.prepend("k1", b"head-", noreply=False), True)
check("get appended", c.get("k1"), b"head-v1-tail")
check("append missing", c.append("zz", b"x", noreply=False), False)
v, cas = c.gets("k1")
check("gets value", v, b"head-v1-tail")
check("cas good", c.cas("k1", b"casval", cas, noreply=False), True)
check("cas stale", c.cas("k1", b"casval2", cas, noreply=False), False)
check("cas missing", c.cas("nokey", b"x", b"123", noreply=False), None)
check("get cas", c.get("k1"), b"casval")
check("set counter", c.set("n", b"10", noreply=False), True)
check("incr", c.incr("n", 5, noreply=False), 15)
check("decr", c.decr("n", 20, noreply=False), 0)
check("incr missing", c.incr("nonum", 1, noreply=False), None)
check("touch", c.touch("k2", 100, noreply=False), True)
check("touch missing", c.touch("absent", 100, noreply=False), False)
check("get_many", c.get_many(["k1", "k2", "nope", "n"]), {"k1": b"casval", "k2": b"v2b", "n": b"0"})
check("delete", c.delete("k2", noreply=False), True)
check("delete missing", c.delete("k2", noreply=False), False)
check("get deleted", c.get("k2"), None)
check("set ttl", c.set("ttl", b"short", expire=1, noreply=False), True)
check("ttl alive", c.get("ttl"), b"short")
deadline = time.time() + 10
while c.get("ttl") is not None and time.time() < deadline:
    time.sleep(0.2)
check("ttl expired", c.get("ttl"), None)
for i in range(200):
    c.set("bulk%d" % i, b"x" * i, noreply=True)
got = c.get_many(["bulk%d" % i for i in range(200)])
check("bulk noreply count", len(got), 200)
check("bulk value", got["bulk150"], b"x" * 150)
check("version", c.version().startswith(b"1.6.18-gokai-"), True)
st = c.stats()
check("stats has gokai counters", b"gokai_read_repairs" in st, True)
print("OK")
`

func TestPymemcache(t *testing.T) {
	need(t, "/usr/bin/python3")
	if err := exec.Command("/usr/bin/python3", "-c", "import pymemcache").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3-pymemcache is required in CI")
		}
		t.Skip("python3-pymemcache not installed")
	}
	p := startNode(t, "")
	script := filepath.Join(t.TempDir(), "pm.py")
	if err := os.WriteFile(script, []byte(pymemcacheScript), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := tool(t, "/usr/bin/python3", script, p.mcAddr)
	if err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("pymemcache: %v\n%s", err, out)
	}
}

// TestPymemcacheTLS runs the same pymemcache session over TLS (a node with -certs-dir -memcache-tls; the
// client checks the node's certificate against the cluster CA), and checks that a plaintext client gets
// nothing from the TLS port.
func TestPymemcacheTLS(t *testing.T) {
	need(t, "/usr/bin/python3")
	if err := exec.Command("/usr/bin/python3", "-c", "import pymemcache").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("python3-pymemcache is required in CI")
		}
		t.Skip("python3-pymemcache not installed")
	}
	env := useSecure(t)
	n := startCNode(t, "tls1@127.0.0.1", "", "-memcache-tls")
	script := filepath.Join(t.TempDir(), "pm.py")
	if err := os.WriteFile(script, []byte(pymemcacheScript), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := tool(t, "/usr/bin/python3", script, n.mcAddr, filepath.Join(env.ca, "ca.crt"))
	if err != nil || !strings.Contains(out, "OK") {
		t.Fatalf("pymemcache over TLS: %v\n%s", err, out)
	}
	c, err := net.DialTimeout("tcp", n.mcAddr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("version\r\n")); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(c); strings.Contains(string(b), "VERSION") {
		t.Fatalf("the TLS port answered plaintext: %q", b)
	}
}

func TestLibmemcachedTools(t *testing.T) {
	for _, b := range []string{"memccp", "memccat", "memcrm", "memcexist", "memctouch"} {
		need(t, "/usr/bin/"+b)
	}
	p := startNode(t, "")
	servers := "--servers=" + p.mcAddr
	dir := t.TempDir()
	file := filepath.Join(dir, "greeting.txt")
	if err := os.WriteFile(file, []byte("hello from memccp\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// memccp stores the file under its base name.
	if out, err := tool(t, "memccp", servers, "--flags=5", file); err != nil {
		t.Fatalf("memccp: %v\n%s", err, out)
	}
	out, err := tool(t, "memccat", servers, "greeting.txt")
	// memccat prints each value followed by a newline.
	if err != nil || out != "hello from memccp\n\n" {
		t.Fatalf("memccat: %v %q", err, out)
	}
	out, err = tool(t, "memccat", servers, "--flags", "greeting.txt")
	if err != nil || !strings.Contains(out, "5") {
		t.Fatalf("memccat --flags: %v %q", err, out)
	}
	if out, err := tool(t, "memcexist", servers, "greeting.txt"); err != nil {
		t.Fatalf("memcexist on a stored key: %v %s", err, out)
	}
	if _, err := tool(t, "memcexist", servers, "no-such-key"); err == nil {
		t.Fatal("memcexist on a missing key must fail")
	}
	if out, err := tool(t, "memctouch", servers, "--expire=3600", "greeting.txt"); err != nil {
		t.Fatalf("memctouch: %v %s", err, out)
	}
	if _, err := tool(t, "memctouch", servers, "--expire=3600", "no-such-key"); err == nil {
		t.Fatal("memctouch on a missing key must fail")
	}
	if out, err := tool(t, "memcrm", servers, "greeting.txt"); err != nil {
		t.Fatalf("memcrm: %v %s", err, out)
	}
	if _, err := tool(t, "memcexist", servers, "greeting.txt"); err == nil {
		t.Fatal("memcexist after memcrm must fail")
	}
	m := dialMC(t, p.mcAddr)
	if got := m.do("version\r\n"); !strings.HasPrefix(got, "VERSION ") {
		t.Fatalf("version: %q", got)
	}
}
