package node

import (
	"strings"
	"testing"
)

// TestAdvertiseValidation: a gossip or transport listener on every interface needs an address to
// advertise; advertise settings must be well formed.
func TestAdvertiseValidation(t *testing.T) {
	base := func() Config {
		c := Default()
		c.Insecure = true
		return c
	}
	for _, tc := range []struct {
		mod  func(*Config)
		want string // "" = valid
	}{
		{func(c *Config) {}, ""},
		{func(c *Config) { c.GossipListen = "0.0.0.0:11012" }, "gossip-listen 0.0.0.0:11012 binds every interface"},
		{func(c *Config) { c.TransportListen = "[::]:11013" }, "transport-listen [::]:11013 binds every interface"},
		{func(c *Config) { c.GossipListen, c.AdvertiseHost = "0.0.0.0:11012", "10.0.0.1" }, ""},
		{func(c *Config) { c.GossipListen, c.AdvertiseHost = "0.0.0.0:0", "10.0.0.1" }, "the port must be fixed"},
		{func(c *Config) { c.GossipListen, c.GossipAdvertise = "0.0.0.0:0", "10.0.0.1:7000" }, ""},
		{func(c *Config) { c.GossipListen, c.AdvertiseHost = "0.0.0.0:11012", "db1.example" }, "needs an IP address"},
		{func(c *Config) { c.TransportListen, c.AdvertiseHost = "0.0.0.0:11013", "db1.example" }, ""},
		{func(c *Config) { c.AdvertiseHost = "10.0.0.1:80" }, "without a port"},
		{func(c *Config) { c.AdvertiseHost = "0.0.0.0" }, "an address others can reach"},
		{func(c *Config) { c.AdvertiseHost = "bad host" }, "want a host name or IP"},
		{func(c *Config) { c.RPCAdvertise = "10.0.0.1" }, "rpc-advertise \"10.0.0.1\": want host:port"},
		{func(c *Config) { c.GossipAdvertise = "db1.example:7946" }, "gossip-advertise"},
		{func(c *Config) { c.RPCListen = "0.0.0.0:11011" }, ""}, // clients: the bound address is gossiped as is
	} {
		c := base()
		tc.mod(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", c, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("want an error containing %q, got %v", tc.want, err)
		}
	}
}

// TestAdvertised: the per-port setting wins; advertise-host replaces an unspecified host only.
func TestAdvertised(t *testing.T) {
	n := &Node{cfg: Config{AdvertiseHost: "10.1.2.3"}}
	for _, tc := range []struct{ bound, override, want string }{
		{"", "", ""},
		{"0.0.0.0:11011", "", "10.1.2.3:11011"},
		{"[::]:11011", "", "10.1.2.3:11011"},
		{"127.0.0.1:11011", "", "127.0.0.1:11011"},
		{"0.0.0.0:11011", "203.0.113.9:21011", "203.0.113.9:21011"},
	} {
		if got := n.advertised(tc.bound, tc.override); got != tc.want {
			t.Errorf("advertised(%q, %q) = %q, want %q", tc.bound, tc.override, got, tc.want)
		}
	}
	n.cfg.GossipListen, n.cfg.TransportListen = "0.0.0.0:11012", "0.0.0.0:11013"
	if h, p := n.gossipAdvertise(); h != "10.1.2.3" || p != 11012 {
		t.Errorf("gossip advertises %s:%d", h, p)
	}
	if got := n.transportAdvertise(); got != "10.1.2.3:11013" {
		t.Errorf("transport advertises %q", got)
	}
	n.cfg.TransportAdvertise = "198.51.100.7:31013"
	if got := n.transportAdvertise(); got != "198.51.100.7:31013" {
		t.Errorf("transport advertises %q with transport-advertise", got)
	}
}
