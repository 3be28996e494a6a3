package faults

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gokai-kv/gokai/client"
	"github.com/gokai-kv/gokai/internal/eventually"
)

// TestNodesBoundToEveryInterfaceAdvertiseTheirAddress: three nodes, each in its own network namespace,
// listen on 0.0.0.0 for every port and advertise their namespace's address (-advertise-host). They form
// a cluster (joins seeded with the advertised transport address), gossip carries the advertised client
// addresses (no 0.0.0.0 anywhere in the cluster status), and clients outside the nodes' namespaces (in
// the hub) are served on every node: msgpack-RPC writes read back through the others, memcache set and
// get, /readyz.
func TestNodesBoundToEveryInterfaceAdvertiseTheirAddress(t *testing.T) {
	h := newHarness(t)
	h.bindAll = true
	h.form(3)

	type member struct {
		Name, RPCAddr, MemcacheAddr, GossipAddr, TransportAddr string
	}
	var st struct {
		Members []struct {
			Name          string `msgpack:"name"`
			RPCAddr       string `msgpack:"rpc_addr"`
			MemcacheAddr  string `msgpack:"memcache_addr"`
			GossipAddr    string `msgpack:"gossip_addr"`
			TransportAddr string `msgpack:"transport_addr"`
		} `msgpack:"members"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for _, viewer := range h.all() {
		if err := viewer.admin.Call(ctx, "cluster_status", nil, &st, true); err != nil {
			t.Fatal(err)
		}
		if len(st.Members) != 3 {
			t.Fatalf("%s sees %d members", viewer.short, len(st.Members))
		}
		for _, m := range st.Members {
			n := h.byName(m.Name)
			want := member{m.Name, n.rpcAddr(), n.mcAddr(), n.ip + ":" + gossipPort, n.transportAddr()}
			if got := (member{m.Name, m.RPCAddr, m.MemcacheAddr, m.GossipAddr, m.TransportAddr}); got != want {
				t.Errorf("%s sees %+v, want %+v", viewer.short, got, want)
			}
		}
	}

	// Writes through each node, with W=3 (every replica, on three nodes), read back through every node.
	// Just after the cluster formed a node may still hold another suspected for a moment (a dead letter
	// while the transport connected), and a W=3 put then times out: such a put is retried under a new
	// key (a retry of the same key could leave siblings of a half-applied first attempt), for a bounded
	// time. What must hold is that every node reaches every other over the advertised addresses.
	for i, writer := range h.all() {
		var key []byte
		attempt := 0
		eventually.NoError(t, 30*time.Second, "a W=3 put through "+writer.short, func() error {
			attempt++
			key = []byte(fmt.Sprintf("adv-%d-%d", i, attempt))
			_, err := writer.admin.Put(ctx, key, []byte(writer.short), nil, &client.WriteOptions{W: 3})
			return err
		})
		for _, reader := range h.all() {
			eventually.NoError(t, 30*time.Second, fmt.Sprintf("an R=3 get of %s through %s", key, reader.short), func() error {
				o, err := reader.admin.Get(ctx, key, &client.ReadOptions{R: 3})
				switch {
				case err != nil:
					return err
				case o == nil || len(o.Values) != 1 || string(o.Values[0].Data) != writer.short:
					t.Fatalf("get %s through %s: %+v, want one value %q", key, reader.short, o, writer.short)
				}
				return nil
			})
		}
	}

	// memcache and HTTP, on the bound-to-everything ports, from the hub.
	for _, n := range h.all() {
		c, err := h.topo.Dial(ctx, "tcp", n.mcAddr())
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "set mc-%s 0 0 2\r\nok\r\nget mc-%s\r\n", n.short, n.short)
		var got []string
		for len(got) < 4 {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("memcache on %s: %v (%q)", n.short, err, got)
			}
			got = append(got, strings.TrimRight(line, "\r\n"))
		}
		c.Close()
		if want := []string{"STORED", fmt.Sprintf("VALUE mc-%s 0 2", n.short), "ok", "END"}; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Fatalf("memcache on %s: %q, want %q", n.short, got, want)
		}

		hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return h.topo.Dial(ctx, network, addr)
			},
			TLSClientConfig: h.tls}}
		var body string
		eventually.NoError(t, 10*time.Second, n.short+" /readyz answers 200", func() error {
			res, err := hc.Get("https://" + n.ip + ":" + httpPort + "/readyz")
			if err != nil {
				return err
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			body = string(b)
			if res.StatusCode != 200 {
				return fmt.Errorf("%d %s", res.StatusCode, body)
			}
			return nil
		})
		if body != "ready\n" {
			t.Fatalf("%s /readyz: %q", n.short, body)
		}
	}
}
