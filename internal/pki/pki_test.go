package pki

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newCA makes a CA in a temp dir and returns the dir.
func newCA(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := CreateCA(dir, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// nodeDir makes node name's certs dir from the CA in ca: ca.crt, gossip.key, node.crt/.key.
func nodeDir(t *testing.T, ca, name string) string {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{CACert, GossipKey} {
		b, err := os.ReadFile(filepath.Join(ca, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := CreateNode(dir, filepath.Join(ca, CAKey), name, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	return dir
}

// handshake runs a TLS handshake between a server and a client config over loopback; it returns the
// client's and the server's errors.
func handshake(t *testing.T, server, client *tls.Config) (cerr, serr error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
		err = tc.Handshake()
		if err == nil {
			_, err = tc.Read(make([]byte, 1)) // TLS 1.3: the client's certificate is checked by now
		}
		done <- err
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	if err == nil {
		_, err = c.Write([]byte{1})
		c.Close()
	}
	return err, <-done
}

func TestCertsAndTLS(t *testing.T) {
	ca := newCA(t)
	n1, n2 := nodeDir(t, ca, "n1@127.0.0.1"), nodeDir(t, ca, "n2@127.0.0.1")
	b1, err := LoadNode(n1)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := LoadNode(n2)
	if err != nil {
		t.Fatal(err)
	}
	if b1.Name != "n1@127.0.0.1" || len(b1.GossipKey) != 32 || b1.Fingerprint() != b2.Fingerprint() {
		t.Fatalf("bundle: name %q, gossip key %d bytes, fingerprints %s %s", b1.Name, len(b1.GossipKey), b1.Fingerprint(), b2.Fingerprint())
	}
	// Two nodes of one CA: mutual TLS, with or without a name expectation.
	for _, want := range []string{"", "n1@127.0.0.1"} {
		if cerr, serr := handshake(t, b1.ServerConfig(true), b2.PeerConfig(want)); cerr != nil || serr != nil {
			t.Fatalf("want %q: client %v, server %v", want, cerr, serr)
		}
	}
	// The server is not the node the client meant to reach.
	if cerr, _ := handshake(t, b1.ServerConfig(true), b2.PeerConfig("n3@127.0.0.1")); cerr == nil || !strings.Contains(cerr.Error(), "expected") {
		t.Fatalf("wrong node accepted: %v", cerr)
	}
	// A node of another CA is refused both ways.
	other, err := LoadNode(nodeDir(t, newCA(t), "n1@127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, serr := handshake(t, b1.ServerConfig(true), other.PeerConfig("")); serr == nil {
		t.Fatal("the transport accepted a client of another CA")
	}
	if cerr, _ := handshake(t, other.ServerConfig(true), b1.PeerConfig("")); cerr == nil {
		t.Fatal("a node accepted a server of another CA")
	}
	// A client without a certificate: refused by the transport, accepted by a client port.
	anon := ClientConfig(b1.Pool, nil)
	if _, serr := handshake(t, b1.ServerConfig(true), anon); serr == nil {
		t.Fatal("the transport accepted a client without a certificate")
	}
	if cerr, serr := handshake(t, b1.ServerConfig(false), anon); cerr != nil || serr != nil {
		t.Fatalf("client port: client %v, server %v", cerr, serr)
	}
	// An operator's certificate: accepted by a client port, of kind client.
	if err := CreateClient(ca, "", "admin", time.Now()); err != nil {
		t.Fatal(err)
	}
	cert, pool, err := LoadClient(ca, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if cerr, serr := handshake(t, b1.ServerConfig(false), ClientConfig(pool, &cert)); cerr != nil || serr != nil {
		t.Fatalf("operator: client %v, server %v", cerr, serr)
	}
	// A client certificate cannot serve as a node's.
	if cerr, _ := handshake(t, &tls.Config{Certificates: []tls.Certificate{cert}}, b1.PeerConfig("")); cerr == nil {
		t.Fatal("a node accepted a client certificate as a server's")
	}
	// Nothing is overwritten.
	if err := CreateCA(ca, time.Now()); !errors.Is(err, ErrExists) {
		t.Fatalf("CreateCA over a CA: %v", err)
	}
	if err := CreateNode(n1, filepath.Join(ca, CAKey), "n1@127.0.0.1", nil, time.Now()); !errors.Is(err, ErrExists) {
		t.Fatalf("CreateNode over a node: %v", err)
	}
	if err := CreateClient(ca, "", "bad/name", time.Now()); err == nil {
		t.Fatal("a name with a slash was accepted")
	}
	if st, err := os.Stat(filepath.Join(ca, CAKey)); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("ca.key mode %v (%v)", st.Mode().Perm(), err)
	}
}

func TestGossipKey(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{{"AAAAAAAAAAAAAAAAAAAAAA==", true}, {"not base64!", false}, {"AAAA", false}} {
		if _, err := ParseGossipKey(c.in); (err == nil) != c.ok {
			t.Errorf("ParseGossipKey(%q) = %v", c.in, err)
		}
	}
}

func TestSignVerify(t *testing.T) {
	ca := newCA(t)
	b1, err := LoadNode(nodeDir(t, ca, "n1"))
	if err != nil {
		t.Fatal(err)
	}
	b2, err := LoadNode(nodeDir(t, ca, "n2"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadNode(nodeDir(t, newCA(t), "n1"))
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("cluster state v7")
	sig, cert, err := b1.Sign(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := b2.VerifySigned("n1", data, sig, cert); err != nil {
		t.Fatalf("a node's signature: %v", err)
	}
	if err := b2.VerifySigned("n2", data, sig, cert); err == nil {
		t.Fatal("n1's signature passed as n2's")
	}
	if err := b2.VerifySigned("n1", []byte("cluster state v8"), sig, cert); err == nil {
		t.Fatal("a signature passed for other data")
	}
	osig, ocert, _ := other.Sign(data)
	if err := b2.VerifySigned("n1", data, osig, ocert); err == nil {
		t.Fatal("a signature with another CA's certificate passed")
	}
	if err := b2.VerifySigned("n1", data, sig, []byte("junk")); err == nil {
		t.Fatal("a junk certificate passed")
	}
}
