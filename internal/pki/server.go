package pki

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DaemonTLSDir is where the daemon.json InitServer returns expects the engine's files on the server.
const DaemonTLSDir = "/etc/docker/tls"

// ErrHasCertificates is returned by InitServer, without Force, for a server that has certificates.
var ErrHasCertificates = errors.New("the server has certificates")

// ServerFiles are where InitServer reads and writes a server's TLS files. The engine's three files keep their
// names on the server, in DaemonTLSDir.
type ServerFiles struct {
	// CACert and CAKey are the CA every server's certificates are signed by: read, or made when neither exists.
	CACert, CAKey string
	// CA is the copy of CACert beside the server's files.
	CA                    string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
}

// ServerRequest is what InitServer makes the certificates of one server's engine for.
type ServerRequest struct {
	Files ServerFiles
	// Names and IPs are what the engine is reached by: its certificate names them all, and 127.0.0.1, which
	// the daemon.json listens on too. The first name, else the first address, is its common name. IPs must
	// not be empty.
	Names []string
	IPs   []net.IP
	// FixedCIDRv6 is the daemon.json's fixed-cidr-v6 (and ipv6: true); "" for none.
	FixedCIDRv6 string
	// Force replaces the server's certificates if it has some.
	Force bool
	// Now is when the certificates start (an hour before, for clocks behind); zero means time.Now().
	Now time.Time
}

// ServerTLS is what InitServer made and read.
type ServerTLS struct {
	CA *KeyPair
	// MadeCA tells that CA is new: the server's certificates are its first.
	MadeCA         bool
	Server, Client *KeyPair
	// DaemonJSON is the engine's /etc/docker/daemon.json, indented, without a final newline.
	DaemonJSON []byte
}

// InitServer makes the CA if there is none, then a server certificate and a client certificate signed by it,
// and writes them with a copy of the CA's certificate: what mutual TLS between bee2d and one engine needs.
// Nothing it signs outlives the CA. Without req.Force it refuses, with ErrHasCertificates, to replace a
// server's certificates.
func InitServer(req ServerRequest) (*ServerTLS, error) {
	f := req.Files
	if len(req.IPs) == 0 {
		return nil, errors.New("pki: a server needs the address its engine listens on")
	}
	if !req.Force {
		for _, p := range []string{f.ServerCert, f.ClientCert} {
			if _, err := os.Stat(p); err == nil {
				return nil, fmt.Errorf("%s: %w", p, ErrHasCertificates)
			}
		}
	}
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	ca, made, err := loadOrMakeCA(f.CACert, f.CAKey, now)
	if err != nil {
		return nil, err
	}
	cn := req.IPs[0].String()
	if len(req.Names) > 0 {
		cn = req.Names[0]
	}
	notAfter := now.Add(CertValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	ips := req.IPs
	if !containsIP(ips, net.IPv4(127, 0, 0, 1)) {
		// daemon.json listens on 127.0.0.1:2376 too, for `docker --tlsverify` on the server itself.
		ips = append(ips[:len(ips):len(ips)], net.IPv4(127, 0, 0, 1))
	}
	server, err := ca.Issue(Template{Usage: Server, CommonName: cn, DNSNames: req.Names, IPs: ips,
		NotBefore: now.Add(-backdate), NotAfter: notAfter})
	if err != nil {
		return nil, err
	}
	client, err := ca.Issue(Template{Usage: Client, CommonName: "bee2d",
		NotBefore: now.Add(-backdate), NotAfter: notAfter})
	if err != nil {
		return nil, err
	}
	dj, err := daemonJSON(f, req.IPs, req.FixedCIDRv6)
	if err != nil {
		return nil, err
	}
	if err := WriteFile(f.CA, ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if err := server.Save(f.ServerCert, f.ServerKey); err != nil {
		return nil, err
	}
	if err := client.Save(f.ClientCert, f.ClientKey); err != nil {
		return nil, err
	}
	return &ServerTLS{CA: ca, MadeCA: made, Server: server, Client: client, DaemonJSON: dj}, nil
}

// loadOrMakeCA reads the CA, or makes it when neither of its files exists.
func loadOrMakeCA(certPath, keyPath string, now time.Time) (*KeyPair, bool, error) {
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err := Load(certPath, keyPath)
		if err != nil {
			return nil, false, fmt.Errorf("CA: %w", err)
		}
		if now.After(ca.Cert.NotAfter) {
			return nil, false, fmt.Errorf("the CA %s expired on %s", certPath, ca.Cert.NotAfter.UTC().Format(time.DateOnly))
		}
		return ca, false, nil
	case certErr == nil || keyErr == nil:
		return nil, false, fmt.Errorf("%s and %s go together; one of them is missing", certPath, keyPath)
	}
	ca, err := NewCA("bee2d CA", now, CAValidity)
	if err != nil {
		return nil, false, err
	}
	if err := ca.Save(certPath, keyPath); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

// daemonConfig is the engine's /etc/docker/daemon.json, in the order Bee2's Ansible template had.
type daemonConfig struct {
	TLS         bool     `json:"tls"`
	TLSVerify   bool     `json:"tlsverify"`
	TLSCACert   string   `json:"tlscacert"`
	TLSCert     string   `json:"tlscert"`
	TLSKey      string   `json:"tlskey"`
	IPv6        bool     `json:"ipv6,omitempty"`
	FixedCIDRv6 string   `json:"fixed-cidr-v6,omitempty"`
	Hosts       []string `json:"hosts"`
}

// daemonJSON is the daemon.json of an engine that listens with TLS on port 2376 of 127.0.0.1 and of ips, and
// on systemd's socket.
func daemonJSON(f ServerFiles, ips []net.IP, fixedCIDRv6 string) ([]byte, error) {
	dc := daemonConfig{
		TLS: true, TLSVerify: true,
		TLSCACert: DaemonTLSDir + "/" + filepath.Base(f.CA),
		TLSCert:   DaemonTLSDir + "/" + filepath.Base(f.ServerCert),
		TLSKey:    DaemonTLSDir + "/" + filepath.Base(f.ServerKey),
		Hosts:     []string{"127.0.0.1:2376"},
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			dc.Hosts = append(dc.Hosts, net.JoinHostPort(ip.String(), "2376"))
		}
	}
	dc.Hosts = append(dc.Hosts, "fd://")
	if fixedCIDRv6 != "" {
		dc.IPv6, dc.FixedCIDRv6 = true, fixedCIDRv6
	}
	return json.MarshalIndent(dc, "", "  ")
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}
