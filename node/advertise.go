package node

import (
	"fmt"
	"net"
	"strconv"
)

// Advertise addresses (Config.AdvertiseHost and the per-port settings): a node may bind every interface
// (0.0.0.0, ::) or sit behind NAT; what it tells others is then not what it binds. docs/deploy.md has the
// table of ports.

// isUnspecified reports whether addr's host binds every interface ("", 0.0.0.0, ::).
func isUnspecified(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsUnspecified()
}

// checkAdvertise refuses advertise settings that are not host:port (host only for AdvertiseHost), and a
// gossip or transport listener on every interface that nothing says how to reach: peers would be told
// 0.0.0.0. A port 0 there needs a per-port setting (the advertised port must be known before binding).
func (c Config) checkAdvertise() error {
	if c.AdvertiseHost != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseHost); err == nil || net.ParseIP(c.AdvertiseHost) == nil && !validHostname(c.AdvertiseHost) {
			return fmt.Errorf("config: advertise-host %q: want a host name or IP address, without a port", c.AdvertiseHost)
		}
		if ip := net.ParseIP(c.AdvertiseHost); ip != nil && ip.IsUnspecified() {
			return fmt.Errorf("config: advertise-host %q: want an address others can reach", c.AdvertiseHost)
		}
	}
	for _, a := range []struct{ flag, listen, adv string }{
		{"gossip", c.GossipListen, c.GossipAdvertise}, {"transport", c.TransportListen, c.TransportAdvertise},
		{"rpc", c.RPCListen, c.RPCAdvertise}, {"memcache", c.MemcacheListen, c.MemcacheAdvertise}} {
		if a.adv != "" {
			host, port, err := net.SplitHostPort(a.adv)
			if p, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || p < 1 || p > 65535 {
				return fmt.Errorf("config: %s-advertise %q: want host:port", a.flag, a.adv)
			}
			if a.flag == "gossip" && net.ParseIP(host) == nil {
				return fmt.Errorf("config: gossip-advertise %q: want an IP address (memberlist advertises IPs)", a.adv)
			}
			continue
		}
		if a.listen == "" || !isUnspecified(a.listen) || (a.flag != "gossip" && a.flag != "transport") {
			continue
		}
		_, port, _ := net.SplitHostPort(a.listen)
		switch {
		case c.AdvertiseHost == "":
			return fmt.Errorf("config: %s-listen %s binds every interface: set advertise-host (or %s-advertise) to the address peers reach it at", a.flag, a.listen, a.flag)
		case port == "0":
			return fmt.Errorf("config: %s-listen %s: with advertise-host the port must be fixed (or set %s-advertise)", a.flag, a.listen, a.flag)
		case a.flag == "gossip" && net.ParseIP(c.AdvertiseHost) == nil:
			return fmt.Errorf("config: advertise-host %q: gossip on every interface needs an IP address (memberlist advertises IPs), or gossip-advertise", c.AdvertiseHost)
		}
	}
	return nil
}

// validHostname is a loose check of a DNS name: letters, digits, '-', '.', at most 253 bytes.
func validHostname(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// advertised is what others are told for a listener bound at bound (host:port): the per-port setting,
// else advertise-host with the bound port when bound is on every interface, else bound itself.
func (n *Node) advertised(bound, override string) string {
	switch {
	case bound == "":
		return ""
	case override != "":
		return override
	case n.cfg.AdvertiseHost != "" && isUnspecified(bound):
		_, port, _ := net.SplitHostPort(bound)
		return net.JoinHostPort(n.cfg.AdvertiseHost, port)
	}
	return bound
}

// rpcAdvertised and memcacheAdvertised are the client addresses gossip carries ("" when disabled).
func (n *Node) rpcAdvertised() string { return n.advertised(n.RPCAddr(), n.cfg.RPCAdvertise) }
func (n *Node) memcacheAdvertised() string {
	return n.advertised(n.MemcacheAddr(), n.cfg.MemcacheAdvertise)
}

// transportAdvertise is RemoteConfig.Advertise ("" = the bound address).
func (n *Node) transportAdvertise() string {
	if n.cfg.TransportAdvertise != "" {
		return n.cfg.TransportAdvertise
	}
	if n.cfg.AdvertiseHost != "" && isUnspecified(n.cfg.TransportListen) {
		_, port, _ := net.SplitHostPort(n.cfg.TransportListen)
		return net.JoinHostPort(n.cfg.AdvertiseHost, port)
	}
	return ""
}

// gossipAdvertise is the gossip's advertised IP and port ("", 0 = the bound ones).
func (n *Node) gossipAdvertise() (string, int) {
	adv := n.cfg.GossipAdvertise
	if adv == "" && n.cfg.AdvertiseHost != "" && isUnspecified(n.cfg.GossipListen) {
		_, port, _ := net.SplitHostPort(n.cfg.GossipListen)
		adv = net.JoinHostPort(n.cfg.AdvertiseHost, port)
	}
	if adv == "" {
		return "", 0
	}
	host, port, _ := net.SplitHostPort(adv)
	p, _ := strconv.Atoi(port)
	return host, p
}
