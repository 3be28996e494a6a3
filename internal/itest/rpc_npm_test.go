package itest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// msgpack5rpcScript drives gokai with msgpack5rpc (a third-party MessagePack-RPC session for node.js, on
// msgpack5: JS strings go out as str, Buffers as bin). It prints one JSON object with what it saw.
const msgpack5rpcScript = `
const net = require('net');
const Session = require('msgpack5rpc');
const [host, port] = process.argv[2].split(':');

const show = (v) => {
  if (Buffer.isBuffer(v)) return {bin: v.toString('hex')};
  if (Array.isArray(v)) return v.map(show);
  if (v && typeof v === 'object') { const o = {}; for (const k of Object.keys(v)) o[k] = show(v[k]); return o; }
  return v;
};

const sock = net.connect(Number(port), host, async () => {
  const s = new Session();
  s.attach(sock, sock);
  const call = (method, args) => new Promise((resolve) => {
    const timer = setTimeout(() => resolve({timeout: true}), 10000);
    s.request(method, args, (err, res) => { clearTimeout(timer); resolve({err, res}); });
  });
  const out = {};
  const key = Buffer.from('js-key');
  out.missing = (await call('get', [key, {}])).err;
  out.put = await call('put', [key, Buffer.from('v1'), null, {w: 2, flags: 5}]);
  const g1 = await call('get', [key, {r: 1}]);
  out.get1 = {values: g1.res.values.map(String), flags: g1.res.metadata[0].flags, ctxlen: g1.res.context.length};
  // Two puts with the same context: siblings.
  out.sibA = (await call('put', [key, Buffer.from('a'), g1.res.context, {}])).err;
  out.sibB = (await call('put', [key, Buffer.from('b'), g1.res.context, {}])).err;
  const g2 = await call('get', [key, null]);
  out.siblings = g2.res.values.map(String).sort();
  // Resolve: write the merge with the siblings' context.
  const merged = await call('put', [key, Buffer.from('a+b'), g2.res.context, {return_body: true}]);
  out.merged = merged.res.values.map(String);
  const g3 = await call('get', [key, {}]);
  out.afterMerge = g3.res.values.map(String);
  // Strings for key and value are accepted too.
  out.strPut = (await call('put', ['str-key', 'str-value', null, {}])).err;
  out.strGet = (await call('get', ['str-key', {}])).res.values.map(String);
  // Delete with the context; then not_found.
  out.del = await call('delete', [key, g3.res.context, {}]);
  out.afterDelete = (await call('get', [key, {}])).err;
  // Errors.
  out.badOpt = (await call('get', [key, {r: 99}])).err;
  out.badCtx = (await call('put', [key, Buffer.from('x'), Buffer.from('junk'), {}])).err;
  out.unknown = (await call('frobnicate', [])).err;
  out.ping = (await call('ping', [])).res;
  out.version = (await call('version', [])).res;
  // Many in flight on the one connection.
  const many = await Promise.all(Array.from({length: 50}, (_, i) =>
    call('put', [Buffer.from('many-' + i), Buffer.from('v' + i), null, {}]).then(() =>
      call('get', [Buffer.from('many-' + i), {}]))));
  out.many = many.every((r, i) => r.res && String(r.res.values[0]) === 'v' + i);
  console.log(JSON.stringify(show(out)));
  sock.end();
});
sock.on('error', (e) => { console.error(e); process.exit(2); });
`

// TestRPCMsgpack5rpc: a third-party MessagePack-RPC client (npm msgpack5rpc) speaks to gokai: data
// methods with siblings and a context round trip, errors, admin, and 50 requests in flight.
func TestRPCMsgpack5rpc(t *testing.T) {
	dir := installNpm(t, "msgpack5rpc@1.1.0")
	p := startNode(t, "")
	script := filepath.Join(dir, "drive.js")
	if err := os.WriteFile(script, []byte(msgpack5rpcScript), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, p.rpcAddr)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("node: %v\n%s\n%s", err, out, stderr)
	}
	t.Logf("msgpack5rpc: %s", out)

	type rpcErr struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	var res struct {
		Missing rpcErr            `json:"missing"`
		Put     struct{ Err any } `json:"put"`
		Get1    struct {
			Values []string `json:"values"`
			Flags  int      `json:"flags"`
			CtxLen int      `json:"ctxlen"`
		} `json:"get1"`
		SibA       any      `json:"sibA"`
		SibB       any      `json:"sibB"`
		Siblings   []string `json:"siblings"`
		Merged     []string `json:"merged"`
		AfterMerge []string `json:"afterMerge"`
		StrPut     any      `json:"strPut"`
		StrGet     []string `json:"strGet"`
		Del        struct {
			Err any  `json:"err"`
			Res bool `json:"res"`
		} `json:"del"`
		AfterDelete rpcErr `json:"afterDelete"`
		BadOpt      rpcErr `json:"badOpt"`
		BadCtx      rpcErr `json:"badCtx"`
		Unknown     rpcErr `json:"unknown"`
		Ping        string `json:"ping"`
		Version     struct {
			Version  string `json:"version"`
			Protocol int    `json:"protocol"`
		} `json:"version"`
		Many bool `json:"many"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("script output: %v\n%s", err, out)
	}
	check := func(what string, ok bool) {
		t.Helper()
		if !ok {
			t.Errorf("%s: unexpected (output %s)", what, out)
		}
	}
	check("missing is not_found", res.Missing.Code == "not_found")
	check("put ok", res.Put.Err == nil && res.SibA == nil && res.SibB == nil)
	check("get", len(res.Get1.Values) == 1 && res.Get1.Values[0] == "v1" && res.Get1.Flags == 5 && res.Get1.CtxLen > 0)
	check("two puts with one context are siblings", len(res.Siblings) == 2 && res.Siblings[0] == "a" && res.Siblings[1] == "b")
	check("put with the siblings' context leaves one value", len(res.Merged) == 1 && res.Merged[0] == "a+b" &&
		len(res.AfterMerge) == 1 && res.AfterMerge[0] == "a+b")
	check("str key and value", res.StrPut == nil && len(res.StrGet) == 1 && res.StrGet[0] == "str-value")
	check("delete", res.Del.Err == nil && res.Del.Res)
	check("not_found after delete", res.AfterDelete.Code == "not_found")
	check("bad option", res.BadOpt.Code == "bad_request" && res.BadOpt.Message != "")
	check("bad context", res.BadCtx.Code == "bad_request")
	check("unknown method", res.Unknown.Code == "unknown_method")
	check("ping", res.Ping == "pong")
	check("version", res.Version.Protocol == 1 && res.Version.Version != "")
	check("50 in flight", res.Many)
}
