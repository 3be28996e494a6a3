package faults

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// NamePrefix starts the name of every network namespace this package creates: NamePrefix + owner pid +
// "-" + 4 hex digits + "-" + role ("hub", "n1", ...). Sweep removes the ones whose owner is gone.
const NamePrefix = "gkf-"

// netnsDir is where `ip netns add` mounts named namespaces.
const netnsDir = "/run/netns"

// hubHost is the last byte of the hub's address on the topology's subnet; nodes are 1..hubHost-1.
const hubHost = 254

// faultTable is the nft table a partition installs in a node's namespace.
const faultTable = "gokai_faults"

// Topology is a private network in network namespaces: a hub namespace holding a Linux bridge with the
// address 10.200.X.254/24 (X random per topology), and one namespace per node, connected to the bridge by
// a veth pair (eth0 inside the node, 10.200.X.K/24 for node K). Nothing is added to the caller's namespace;
// no namespace has a route out of the subnet. The caller reaches the nodes from the hub with Dial.
//
// Partition and Heal install and remove nft rules inside the node namespaces. All methods are safe for
// concurrent use; Dial is meant to be called from many goroutines.
type Topology struct {
	prefix string     // NamePrefix + pid + "-" + 4 hex
	subnet [3]byte    // 10, 200, X
	hub    string     // hub namespace name
	hubFD  int        // open /run/netns/<hub>, for setns
	hubID  nsIdentity // to check that setns really entered it

	mu     sync.Mutex
	nodes  map[int]string // node index → namespace; REQUIRES: mu held
	parted map[int]bool   // nodes with a fault table installed; REQUIRES: mu held
	closed bool           // REQUIRES: mu held
}

// nsIdentity names a namespace by the device and inode of its nsfs file.
type nsIdentity struct{ dev, ino uint64 }

// ErrUnsupported wraps the reason this machine cannot build a topology (not root, no `ip`, or `ip netns
// add` failed): tests skip on it.
var ErrUnsupported = errors.New("faults: network namespaces unavailable")

// NewTopology creates the hub namespace and its bridge. Close removes everything it created.
func NewTopology(ctx context.Context) (*Topology, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: not root (euid %d)", ErrUnsupported, os.Geteuid())
	}
	if _, err := toolPath("ip"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("faults: random: %w", err)
	}
	t := &Topology{
		prefix: fmt.Sprintf("%s%d-%s", NamePrefix, os.Getpid(), hex.EncodeToString(rnd[:2])),
		subnet: [3]byte{10, 200, 1 + rnd[2]%253}, // 10.200.1.0/24 .. 10.200.253.0/24
		hubFD:  -1,
		nodes:  map[int]string{},
		parted: map[int]bool{},
	}
	t.hub = t.prefix + "-hub"
	if err := ipCmd(ctx, "netns", "add", t.hub); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnsupported, err)
	}
	steps := [][]string{
		{"-n", t.hub, "link", "set", "lo", "up"},
		{"-n", t.hub, "link", "add", "br0", "type", "bridge"},
		{"-n", t.hub, "addr", "add", t.HubIP().String() + "/24", "dev", "br0"},
		{"-n", t.hub, "link", "set", "br0", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			t.Close()
			return nil, err
		}
	}
	fd, err := unix.Open(filepath.Join(netnsDir, t.hub), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("faults: open hub namespace: %w", err)
	}
	t.hubFD = fd
	if t.hubID, err = fdIdentity(fd); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// Prefix is the common start of this topology's namespace names.
func (t *Topology) Prefix() string { return t.prefix }

// Subnet is the topology's /24, as "10.200.X.0/24".
func (t *Topology) Subnet() string {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{t.subnet[0], t.subnet[1], t.subnet[2], 0}), 24).String()
}

// HubIP is the hub's address (the bridge's): every client connection comes from it.
func (t *Topology) HubIP() netip.Addr { return t.ip(hubHost) }

// NodeIP is node i's address.
func (t *Topology) NodeIP(i int) netip.Addr { return t.ip(byte(i)) }

func (t *Topology) ip(host byte) netip.Addr {
	return netip.AddrFrom4([4]byte{t.subnet[0], t.subnet[1], t.subnet[2], host})
}

// NodeNS is the namespace name of node i ("" before AddNode).
func (t *Topology) NodeNS(i int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.nodes[i]
}

// HubNS is the hub namespace's name.
func (t *Topology) HubNS() string { return t.hub }

// AddNode creates node i's namespace (1 <= i < 254), its veth pair to the hub's bridge, its address and its
// loopback, and returns the namespace's name.
func (t *Topology) AddNode(ctx context.Context, i int) (string, error) {
	if i < 1 || i >= hubHost {
		return "", fmt.Errorf("faults: node index %d: want 1..%d", i, hubHost-1)
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return "", errors.New("faults: topology closed")
	}
	if ns := t.nodes[i]; ns != "" {
		t.mu.Unlock()
		return "", fmt.Errorf("faults: node %d exists (%s)", i, ns)
	}
	ns := fmt.Sprintf("%s-n%d", t.prefix, i)
	t.nodes[i] = ns // before creating it, so Close removes a half-made one
	t.mu.Unlock()
	veth := fmt.Sprintf("v%d", i) // in the hub namespace; the node's end is eth0 in its own
	steps := [][]string{
		{"netns", "add", ns},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", t.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"-n", t.hub, "link", "set", veth, "master", "br0"},
		{"-n", t.hub, "link", "set", veth, "up"},
		{"-n", ns, "addr", "add", t.NodeIP(i).String() + "/24", "dev", "eth0"},
		{"-n", ns, "link", "set", "eth0", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			return "", err
		}
	}
	return ns, nil
}

// Dial connects to addr (an IPv4 host:port on the subnet) from the hub namespace. The socket is created
// on an OS thread that entered the hub namespace and bound to the hub's address (so it cannot reach
// anything in the caller's namespace, even if the namespace switch went wrong); it keeps the hub's
// namespace for its whole life. The thread returns to its namespace before it runs anything else, or
// exits when it cannot.
func (t *Topology) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, fmt.Errorf("faults: dial %s: only tcp", network)
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return nil, &DialError{Addr: addr, Err: fmt.Errorf("want an IPv4 address:port: %v", err)}
	}
	var c net.Conn
	err = t.inHub(func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(t.HubIP(), 0))}
		// NB: tcp4 to a literal address dials serially on this goroutine (no happy-eyeballs goroutines),
		// so the socket is created on this thread.
		var derr error
		c, derr = d.DialContext(ctx, "tcp4", addr)
		return derr
	})
	if err != nil {
		return nil, &DialError{Addr: addr, Err: err}
	}
	return c, nil
}

// DialError is a failed Dial: the connection was never made, so nothing was sent on it.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("faults: dial %s from the hub: %v", e.Addr, e.Err)
}
func (e *DialError) Unwrap() error { return e.Err }

// inHub runs f on a locked OS thread inside the hub namespace.
func (t *Topology) inHub(f func() error) error {
	return inNamespace(t.hubFD, t.hubID, f)
}

// inNode runs f on a locked OS thread inside node i's namespace.
func (t *Topology) inNode(i int, f func() error) error {
	ns := t.NodeNS(i)
	if ns == "" {
		return fmt.Errorf("faults: no node %d", i)
	}
	fd, err := unix.Open(filepath.Join(netnsDir, ns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("faults: open %s: %w", ns, err)
	}
	defer unix.Close(fd)
	id, err := fdIdentity(fd)
	if err != nil {
		return err
	}
	return inNamespace(fd, id, f)
}

// inNamespace runs f on its own goroutine, locked to an OS thread that entered the network namespace
// of fd (checked against want), and waits for it. The thread goes back to its own namespace afterwards;
// when that fails it stays locked, so it exits with the goroutine instead of serving other goroutines.
func inNamespace(fd int, want nsIdentity, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("faults: open own namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("faults: setns: %w", err)
			return
		}
		restored := false
		defer func() {
			if restored {
				runtime.UnlockOSThread()
			} // else: the goroutine ends locked and the runtime terminates the thread
		}()
		var ferr error
		if got, err := pathIdentity("/proc/thread-self/ns/net"); err != nil || got != want {
			ferr = fmt.Errorf("faults: setns did not enter the namespace (%v)", err)
		} else {
			ferr = f()
		}
		restored = unix.Setns(orig, unix.CLONE_NEWNET) == nil
		errc <- ferr
	}()
	return <-errc
}

func fdIdentity(fd int) (nsIdentity, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nsIdentity{}, fmt.Errorf("faults: fstat namespace: %w", err)
	}
	return nsIdentity{uint64(st.Dev), st.Ino}, nil
}

func pathIdentity(path string) (nsIdentity, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return nsIdentity{}, err
	}
	return nsIdentity{uint64(st.Dev), st.Ino}, nil
}

// Partition cuts the network between groups of nodes (by index): every node listed drops traffic to and
// from the nodes of the other groups, in both directions, with an nft table in its own namespace (input
// and output chains). Traffic with the hub's address always passes, so clients reach every node. Nodes
// not listed keep talking to everyone. A new Partition replaces the previous one.
func (t *Topology) Partition(ctx context.Context, groups ...[]int) error {
	blocked := PartitionPeers(groups)
	t.mu.Lock()
	var heal []int
	for i := range t.parted {
		if _, ok := blocked[i]; !ok {
			heal = append(heal, i)
		}
	}
	t.mu.Unlock()
	for _, i := range heal {
		if err := t.healNode(ctx, i); err != nil {
			return err
		}
	}
	nodes := make([]int, 0, len(blocked))
	for i := range blocked {
		nodes = append(nodes, i)
	}
	sort.Ints(nodes)
	for _, i := range nodes {
		var peers []string
		for _, p := range blocked[i] {
			peers = append(peers, t.NodeIP(p).String())
		}
		if err := t.nft(ctx, i, faultRules(t.HubIP().String(), peers)); err != nil {
			return err
		}
		t.mu.Lock()
		t.parted[i] = true
		t.mu.Unlock()
	}
	return nil
}

// PartitionPeers maps every node listed in groups to the nodes of the other groups, sorted. A node listed
// in two groups is cut from neither's members.
func PartitionPeers(groups [][]int) map[int][]int {
	out := map[int][]int{}
	for gi, g := range groups {
		for _, n := range g {
			if _, ok := out[n]; !ok {
				out[n] = nil
			}
			for gj, h := range groups {
				if gi == gj {
					continue
				}
				for _, p := range h {
					if p != n && !slices.Contains(g, p) && !slices.Contains(out[n], p) {
						out[n] = append(out[n], p)
					}
				}
			}
		}
	}
	for n := range out {
		sort.Ints(out[n])
	}
	return out
}

// faultRules is the nft script that replaces the fault table: drop everything to and from peers, except
// traffic with the hub. With no peers it only removes the table.
func faultRules(hub string, peers []string) string {
	var b strings.Builder
	// "add" then "delete" makes the delete succeed whether or not the table existed; the whole script is
	// one transaction.
	fmt.Fprintf(&b, "add table inet %s\ndelete table inet %s\n", faultTable, faultTable)
	if len(peers) == 0 {
		return b.String()
	}
	set := strings.Join(peers, ", ")
	fmt.Fprintf(&b, "table inet %s {\n", faultTable)
	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tip saddr %s accept\n\t\tip saddr { %s } drop\n\t}\n", hub, set)
	fmt.Fprintf(&b, "\tchain output {\n\t\ttype filter hook output priority filter; policy accept;\n")
	fmt.Fprintf(&b, "\t\tip daddr %s accept\n\t\tip daddr { %s } drop\n\t}\n}\n", hub, set)
	return b.String()
}

// Heal removes every partition.
func (t *Topology) Heal(ctx context.Context) error {
	t.mu.Lock()
	var nodes []int
	for i := range t.parted {
		nodes = append(nodes, i)
	}
	t.mu.Unlock()
	sort.Ints(nodes)
	var first error
	for _, i := range nodes {
		if err := t.healNode(ctx, i); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (t *Topology) healNode(ctx context.Context, i int) error {
	if err := t.nft(ctx, i, faultRules("", nil)); err != nil {
		return err
	}
	t.mu.Lock()
	delete(t.parted, i)
	t.mu.Unlock()
	return nil
}

// Rules lists the nft ruleset of node i's namespace (for logs).
func (t *Topology) Rules(ctx context.Context, i int) (string, error) {
	ns := t.NodeNS(i)
	if ns == "" {
		return "", fmt.Errorf("faults: no node %d", i)
	}
	out, err := t.nodeCmd(ctx, i, "nft", "list", "ruleset").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("faults: nft list ruleset in %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func (t *Topology) nft(ctx context.Context, i int, script string) error {
	ns := t.NodeNS(i)
	if ns == "" {
		return fmt.Errorf("faults: no node %d", i)
	}
	cmd := t.nodeCmd(ctx, i, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("faults: nft in %s: %v: %s\nscript:\n%s", ns, err, bytes.TrimSpace(out), script)
	}
	return nil
}

// Close deletes the topology's namespaces (node namespaces first, then the hub). Processes still running
// inside keep their namespace alive until they exit: stop them first. Close is idempotent.
func (t *Topology) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	var names []string
	for _, ns := range t.nodes {
		names = append(names, ns)
	}
	t.mu.Unlock()
	sort.Strings(names)
	if t.hubFD >= 0 {
		unix.Close(t.hubFD)
		t.hubFD = -1
	}
	var first error
	for _, ns := range append(names, t.hub) {
		if err := deleteNS(context.Background(), ns); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// deleteNS removes a named namespace; one that does not exist is not an error.
func deleteNS(ctx context.Context, ns string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, ns)); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return ipCmd(ctx, "netns", "del", ns)
}

var sweepRE = regexp.MustCompile(`^` + regexp.QuoteMeta(NamePrefix) + `(\d+)-[0-9a-f]{4}-`)

// Sweep removes the namespaces of topologies whose owner process is gone (a test binary that crashed or
// was killed): it kills what still runs inside them, then deletes them. Namespaces of live owners are
// left alone, so concurrent runs do not disturb each other. It returns the names it deleted.
func Sweep(ctx context.Context) ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("faults: sweep: %w", err)
	}
	var gone []string
	for _, e := range ents {
		m := sweepRE.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, err := strconv.Atoi(m[1])
		if err != nil || processAlive(pid) {
			continue
		}
		gone = append(gone, e.Name())
	}
	sort.Strings(gone) // "...-hub" sorts before "...-n1": harmless, a hub only holds the bridge
	var first error
	for _, ns := range gone {
		if out, err := exec.CommandContext(ctx, tool("ip"), "netns", "pids", ns).Output(); err == nil {
			for _, f := range strings.Fields(string(out)) {
				if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGCONT)
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		if err := deleteNS(ctx, ns); err != nil && first == nil {
			first = err
		}
	}
	return gone, first
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, tool("ip"), args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("faults: ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// NodeCommand is a command run inside node i's namespace (`ip netns exec NS name args...`, which execs
// name in place: the command's pid is name's). name is looked up on PATH and in the sbin directories.
func (t *Topology) NodeCommand(i int, name string, args ...string) *exec.Cmd {
	return t.nodeCmd(context.Background(), i, name, args...)
}

func (t *Topology) nodeCmd(ctx context.Context, i int, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, tool("ip"), append([]string{"netns", "exec", t.NodeNS(i), tool(name)}, args...)...)
}

// toolPath finds a system tool on PATH or in the sbin directories, which a non-login shell's PATH may
// lack.
func toolPath(name string) (string, error) {
	if filepath.IsAbs(name) {
		return name, nil
	}
	p, err := exec.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		if st, serr := os.Stat(filepath.Join(dir, name)); serr == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return filepath.Join(dir, name), nil
		}
	}
	return "", err
}

// tool is toolPath, or name itself when it is not found (the command then fails with exec's error).
func tool(name string) string {
	if p, err := toolPath(name); err == nil {
		return p
	}
	return name
}

// HaveNft reports whether the nft tool is installed (Debian package nftables).
func HaveNft() error {
	_, err := toolPath("nft")
	return err
}
