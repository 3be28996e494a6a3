// Package pki makes and loads gokai's certificates: a cluster CA, one certificate per node (its name is the
// node's name), client certificates for operators, and the gossip encryption key. It builds the tls.Config
// values the transport and the client ports use, with the cluster's rules: a peer is accepted only with a
// certificate the cluster CA signed, of the right kind (node or client), and, where the caller knows which
// node it expects, with that node's name.
//
// Layout of a certs directory (CockroachDB's, with gokai's names):
//
//	ca.crt          the cluster CA certificate (every node and client has it)
//	ca.key          the CA's private key (only where certificates are made; keep it off the nodes)
//	node.crt/.key   this node's certificate and key (CN = node name, OU = node)
//	client.NAME.crt/.key   an operator's certificate (CN = NAME, OU = client)
//	gossip.key      the gossip encryption key (32 random bytes, base64); further keys arrive by rotation
//
// It owns no sockets and starts no goroutines; its functions are safe for concurrent use.
package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names in a certs directory.
const (
	CACert    = "ca.crt"
	CAKey     = "ca.key"
	NodeCert  = "node.crt"
	NodeKey   = "node.key"
	GossipKey = "gossip.key"
)

// Organisational units that tell certificate kinds apart.
const (
	KindNode   = "node"
	KindClient = "client"
)

// Lifetimes of the certificates this package makes.
const (
	caLifetime   = 10 * 365 * 24 * time.Hour
	certLifetime = 5 * 365 * 24 * time.Hour
)

// Errors.
var (
	// ErrExists: a file CreateCA, CreateNode or CreateClient would write is already there.
	ErrExists = errors.New("pki: file exists")
	// ErrPeer: a peer's certificate is not acceptable (wrong CA, wrong kind, wrong name).
	ErrPeer = errors.New("pki: peer refused")
)

// ClientCert and ClientKey name an operator's certificate files.
func ClientCert(name string) string { return "client." + name + ".crt" }
func ClientKey(name string) string  { return "client." + name + ".key" }

// CreateCA makes a new cluster CA and gossip key in dir (created if missing). It refuses to overwrite.
func CreateCA(dir string, now time.Time) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	for _, f := range []string{CACert, CAKey, GossipKey} {
		if err := absent(filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "gokai CA", Organization: []string{"gokai"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	var gk [32]byte
	if _, err := rand.Read(gk[:]); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := writeKey(filepath.Join(dir, CAKey), key); err != nil {
		return err
	}
	if err := writePEM(filepath.Join(dir, CACert), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, GossipKey), []byte(base64.StdEncoding.EncodeToString(gk[:])+"\n"), 0o600)
}

// CreateNode makes node name's certificate in dir, signed by the CA whose key is caKey (and certificate
// dir/ca.crt). hosts are the DNS names and IPs the node is reached at (the host part of a name like
// n1@10.0.0.1 is added, and localhost and 127.0.0.1 always are).
func CreateNode(dir, caKey, name string, hosts []string, now time.Time) error {
	if err := checkName(name); err != nil {
		return err
	}
	hosts = append(hosts, "localhost", "127.0.0.1")
	if _, h, ok := strings.Cut(name, "@"); ok && h != "" {
		hosts = append(hosts, h)
	}
	return create(dir, caKey, NodeCert, NodeKey, name, KindNode, hosts, now,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth})
}

// CreateClient makes an operator's certificate (client.NAME.crt/.key) in dir, signed like CreateNode.
func CreateClient(dir, caKey, name string, now time.Time) error {
	if err := checkName(name); err != nil {
		return err
	}
	return create(dir, caKey, ClientCert(name), ClientKey(name), name, KindClient, nil, now,
		[]x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
}

func create(dir, caKeyPath, certFile, keyFile, name, kind string, hosts []string, now time.Time, usage []x509.ExtKeyUsage) error {
	for _, f := range []string{certFile, keyFile} {
		if err := absent(filepath.Join(dir, f)); err != nil {
			return err
		}
	}
	if caKeyPath == "" {
		caKeyPath = filepath.Join(dir, CAKey)
	}
	ca, err := readCert(filepath.Join(dir, CACert))
	if err != nil {
		return err
	}
	caKey, err := readKey(caKeyPath)
	if err != nil {
		return err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name, OrganizationalUnit: []string{kind}, Organization: []string{"gokai"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(certLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
	}
	seen := map[string]bool{}
	for _, h := range hosts {
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	if err := writeKey(filepath.Join(dir, keyFile), key); err != nil {
		return err
	}
	return writePEM(filepath.Join(dir, certFile), "CERTIFICATE", der, 0o644)
}

// Bundle is what a node loads from its certs directory.
type Bundle struct {
	Dir  string
	CA   *x509.Certificate
	Pool *x509.CertPool
	// Cert is this node's certificate and key (node.crt, node.key); Name its CN.
	Cert tls.Certificate
	Name string
	// GossipKey is the initial gossip encryption key (gossip.key).
	GossipKey []byte
}

// Fingerprint is the first 16 hex digits of the SHA-256 of the CA certificate: the cluster's identity on
// the wire (gossip label).
func (b *Bundle) Fingerprint() string {
	sum := sha256.Sum256(b.CA.Raw)
	return hex.EncodeToString(sum[:8])
}

// LoadNode reads a node's certs directory: the CA, node.crt/node.key (which the CA must have signed, of kind
// node) and gossip.key.
func LoadNode(dir string) (*Bundle, error) {
	ca, err := readCert(filepath.Join(dir, CACert))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, NodeCert), filepath.Join(dir, NodeKey))
	if err != nil {
		return nil, fmt.Errorf("pki: node certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("pki: node certificate: %w", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		return nil, fmt.Errorf("pki: %s is not signed by %s: %w", NodeCert, CACert, err)
	}
	if Kind(leaf) != KindNode {
		return nil, fmt.Errorf("pki: %s is not a node certificate", NodeCert)
	}
	cert.Leaf = leaf
	gk, err := ReadGossipKey(filepath.Join(dir, GossipKey))
	if err != nil {
		return nil, err
	}
	return &Bundle{Dir: dir, CA: ca, Pool: pool, Cert: cert, Name: leaf.Subject.CommonName, GossipKey: gk}, nil
}

// LoadClient reads an operator's certificate client.NAME.crt/.key and the CA from dir.
func LoadClient(dir, name string) (tls.Certificate, *x509.CertPool, error) {
	ca, err := readCert(filepath.Join(dir, CACert))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, ClientCert(name)), filepath.Join(dir, ClientKey(name)))
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("pki: client certificate %q: %w", name, err)
	}
	return cert, pool, nil
}

// ReadGossipKey reads a base64 key file (16, 24 or 32 bytes: AES-128/192/256).
func ReadGossipKey(path string) ([]byte, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: gossip key: %w", err)
	}
	return ParseGossipKey(strings.TrimSpace(string(raw)))
}

// ParseGossipKey decodes a base64 gossip key and checks its length.
func ParseGossipKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("pki: gossip key: not base64")
	}
	switch len(k) {
	case 16, 24, 32:
		return k, nil
	}
	return nil, fmt.Errorf("pki: gossip key of %d bytes, want 16, 24 or 32", len(k))
}

// Kind is the certificate's kind (its organisational unit): KindNode, KindClient or "".
func Kind(c *x509.Certificate) string {
	if len(c.Subject.OrganizationalUnit) == 1 {
		return c.Subject.OrganizationalUnit[0]
	}
	return ""
}

// PeerIdentity checks a verified chain's leaf: of kind want; it returns its name.
func PeerIdentity(chains [][]*x509.Certificate, want string) (string, error) {
	if len(chains) == 0 || len(chains[0]) == 0 {
		return "", fmt.Errorf("%w: no verified certificate", ErrPeer)
	}
	leaf := chains[0][0]
	if k := Kind(leaf); k != want {
		return "", fmt.Errorf("%w: a %q certificate where a %q one is needed", ErrPeer, k, want)
	}
	return leaf.Subject.CommonName, nil
}

// ServerConfig is the TLS configuration of a port that serves with the node's certificate. With
// requireClient, peers must present a certificate the CA signed (the transport); otherwise a client may
// present one (the client ports: an operator's certificate) or none.
func (b *Bundle) ServerConfig(requireClient bool) *tls.Config {
	auth := tls.VerifyClientCertIfGiven
	if requireClient {
		auth = tls.RequireAndVerifyClientCert
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{b.Cert}, ClientCAs: b.Pool,
		ClientAuth: auth}
}

// PeerConfig is the TLS configuration a node dials another node with: its own certificate, and the server's
// checked against the CA and, when want is not "", required to name node want (the node the dialler meant
// to reach; "" when any node of the cluster will do, e.g. a seed whose name is not known yet). Host names are
// not checked: a node's identity is its certificate's name.
func (b *Bundle) PeerConfig(want string) *tls.Config {
	pool := b.Pool
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{b.Cert},
		RootCAs:      pool,
		// NB: the chain is verified below, against the CA; what crypto/tls would add is a host name check,
		// and a node's identity is its certificate's name, checked against the address book instead.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: no certificate", ErrPeer)
			}
			inter := x509.NewCertPool()
			for _, c := range cs.PeerCertificates[1:] {
				inter.AddCert(c)
			}
			chains, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if err != nil {
				return fmt.Errorf("%w: %v", ErrPeer, err)
			}
			name, err := PeerIdentity(chains, KindNode)
			if err != nil {
				return err
			}
			if want != "" && want != name {
				return fmt.Errorf("%w: the node answered as %q, expected %q", ErrPeer, name, want)
			}
			return nil
		},
	}
}

// ClientConfig is the TLS configuration of a client of a node's client ports: the node's certificate checked
// against the CA (any node of the cluster), and cert presented when given (an operator's).
func ClientConfig(pool *x509.CertPool, cert *tls.Certificate) *tls.Config {
	c := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            pool,
		InsecureSkipVerify: true, // NB: verified below against the CA, without a host name check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: no certificate", ErrPeer)
			}
			chains, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
			if err != nil {
				return fmt.Errorf("%w: %v", ErrPeer, err)
			}
			_, err = PeerIdentity(chains, KindNode)
			return err
		},
	}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c
}

func checkName(name string) error {
	if name == "" || len(name) > 64 || strings.ContainsAny(name, "/\\ \t\n") {
		return fmt.Errorf("pki: name %q: want 1..64 bytes without slashes or spaces", name)
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("pki: crypto/rand failed: %v", err))
	}
	return n
}

func absent(path string) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("%w: %s", ErrExists, filepath.Base(path))
	}
	return nil
}

func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	return writePEM(path, "PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%w: %s", ErrExists, filepath.Base(path))
		}
		return fmt.Errorf("pki: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("pki: %w", err)
	}
	return f.Close()
}

func readCert(path string) (*x509.Certificate, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	b, _ := pem.Decode(raw)
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("pki: %s: no certificate", filepath.Base(path))
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", filepath.Base(path), err)
	}
	return c, nil
}

func readKey(path string) (*ecdsa.PrivateKey, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pki: CA key: %w", err)
	}
	b, _ := pem.Decode(raw)
	if b == nil {
		return nil, fmt.Errorf("pki: %s: no PEM key", filepath.Base(path))
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pki: %s: %w", filepath.Base(path), err)
	}
	ek, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("pki: %s: not an ECDSA key", filepath.Base(path))
	}
	return ek, nil
}

// Sign signs data with the node's key (ECDSA over SHA-256) and returns the signature and the node's
// certificate (DER) to check it with.
func (b *Bundle) Sign(data []byte) (sig, cert []byte, err error) {
	key, ok := b.Cert.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("pki: the node key is not an ECDSA key")
	}
	sum := sha256.Sum256(data)
	sig, err = ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		return nil, nil, fmt.Errorf("pki: %w", err)
	}
	return sig, b.Cert.Certificate[0], nil
}

// VerifySigned checks that sig over data was made with cert, a node certificate the cluster CA issued to
// node name.
func (b *Bundle) VerifySigned(name string, data, sig, certDER []byte) error {
	c, err := x509.ParseCertificate(certDER)
	if err != nil {
		return fmt.Errorf("%w: certificate: %v", ErrPeer, err)
	}
	chains, err := c.Verify(x509.VerifyOptions{Roots: b.Pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPeer, err)
	}
	signer, err := PeerIdentity(chains, KindNode)
	if err != nil {
		return err
	}
	if signer != name {
		return fmt.Errorf("%w: signed by %q, not %q", ErrPeer, signer, name)
	}
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: not an ECDSA key", ErrPeer)
	}
	sum := sha256.Sum256(data)
	if !ecdsa.VerifyASN1(pub, sum[:], sig) {
		return fmt.Errorf("%w: bad signature", ErrPeer)
	}
	return nil
}

// KeyID names a gossip key without revealing it: the first 8 hex digits of its SHA-256.
func KeyID(key []byte) string {
	if len(key) == 0 {
		return ""
	}
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}
