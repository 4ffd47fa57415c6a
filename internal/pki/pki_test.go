package pki

import (
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIssueVerifies(t *testing.T) {
	ca, err := NewCA("bee2d test CA", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	server, err := ca.Issue(Template{Usage: Server, CommonName: "web1", DNSNames: []string{"web1.example.net"},
		IPs: []net.IP{net.ParseIP("192.168.150.10")}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := ca.Issue(Template{Usage: Client, CommonName: "bee2d"})
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	for _, c := range []struct {
		name  string
		cert  *x509.Certificate
		host  string
		usage x509.ExtKeyUsage
	}{
		{"server by name", server.Cert, "web1.example.net", x509.ExtKeyUsageServerAuth},
		{"server by address", server.Cert, "192.168.150.10", x509.ExtKeyUsageServerAuth},
		{"client", client.Cert, "", x509.ExtKeyUsageClientAuth},
	} {
		if _, err := c.cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: c.host, KeyUsages: []x509.ExtKeyUsage{c.usage}}); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if _, err := server.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "web2.example.net"}); err == nil {
		t.Error("server certificate verified for a name it does not have")
	}
	if _, err := client.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err == nil {
		t.Error("client certificate verified as a server's")
	}
	if got := server.Cert.NotAfter.Sub(server.Cert.NotBefore); got < CertValidity || got > CertValidity+2*time.Hour {
		t.Errorf("server certificate valid for %s, want about %s", got, CertValidity)
	}
	if _, err := ca.Issue(Template{Usage: Server, CommonName: "nameless"}); err == nil {
		t.Error("a server certificate without names was issued")
	}
	if _, err := server.Issue(Template{Usage: Client}); err == nil {
		t.Error("a server certificate signed a certificate")
	}
}

func TestSaveLoad(t *testing.T) {
	dir := t.TempDir()
	ca, err := NewCA("bee2d test CA", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "sub", "ca.pem"), filepath.Join(dir, "sub", "ca-key.pem")
	if err := ca.Save(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]os.FileMode{certFile: 0o644, keyFile: 0o600} {
		st, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", filepath.Base(file), st.Mode().Perm(), want)
		}
	}
	back, err := Load(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !back.Cert.Equal(ca.Cert) || !back.Key.Equal(ca.Key) {
		t.Error("loaded CA differs from the saved one")
	}
	other, err := NewCA("other", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(keyFile, other.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(certFile, keyFile); err == nil {
		t.Error("a key of another certificate was accepted")
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "sub", ".*"))
	if len(leftovers) > 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}
