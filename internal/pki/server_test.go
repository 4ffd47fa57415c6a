package pki

import (
	"bytes"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serverFiles lays the files out as `tls init` does, in dir.
func serverFiles(dir, server string) ServerFiles {
	in := func(name string) string { return filepath.Join(dir, server, name) }
	return ServerFiles{
		CACert: filepath.Join(dir, "ca.pem"), CAKey: filepath.Join(dir, "ca-key.pem"), CA: in("ca.pem"),
		ServerCert: in("docker-server.crt"), ServerKey: in("docker-server.pem"),
		ClientCert: in("docker-client.crt"), ClientKey: in("docker-client.pem"),
	}
}

func TestInitServer(t *testing.T) {
	dir := t.TempDir()
	files := serverFiles(dir, "web1")
	req := ServerRequest{Files: files, Names: []string{"web1.example.net"},
		IPs: []net.IP{net.ParseIP("192.168.150.10")}, FixedCIDRv6: "2001:db8:1:2::/80"}
	got, err := InitServer(req)
	if err != nil {
		t.Fatal(err)
	}
	if !got.MadeCA {
		t.Error("MadeCA false for a new CA")
	}

	t.Run("daemon.json", func(t *testing.T) {
		want := `{
  "tls": true,
  "tlsverify": true,
  "tlscacert": "/etc/docker/tls/ca.pem",
  "tlscert": "/etc/docker/tls/docker-server.crt",
  "tlskey": "/etc/docker/tls/docker-server.pem",
  "ipv6": true,
  "fixed-cidr-v6": "2001:db8:1:2::/80",
  "hosts": [
    "127.0.0.1:2376",
    "192.168.150.10:2376",
    "fd://"
  ]
}`
		if string(got.DaemonJSON) != want {
			t.Errorf("daemon.json:\n%s\nwant:\n%s", got.DaemonJSON, want)
		}
	})

	t.Run("files and modes", func(t *testing.T) {
		for file, mode := range map[string]os.FileMode{
			files.CACert: 0o644, files.CAKey: 0o600, files.CA: 0o644,
			files.ServerCert: 0o644, files.ServerKey: 0o600, files.ClientCert: 0o644, files.ClientKey: 0o600,
		} {
			st, err := os.Stat(file)
			if err != nil {
				t.Error(err)
				continue
			}
			if st.Mode().Perm() != mode {
				t.Errorf("%s: mode %v, want %v", file, st.Mode().Perm(), mode)
			}
		}
		if b, _ := os.ReadFile(files.CA); !bytes.Equal(b, got.CA.CertPEM) {
			t.Error("the server's copy of the CA differs from it")
		}
	})

	roots := x509.NewCertPool()
	roots.AddCert(got.CA.Cert)
	t.Run("certificates", func(t *testing.T) {
		for _, host := range []string{"web1.example.net", "192.168.150.10", "127.0.0.1"} {
			if _, err := got.Server.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("server certificate for %s: %v", host, err)
			}
		}
		if cn := got.Server.Cert.Subject.CommonName; cn != "web1.example.net" {
			t.Errorf("server common name %q", cn)
		}
		if _, err := got.Client.Cert.Verify(x509.VerifyOptions{Roots: roots,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("client certificate: %v", err)
		}
	})

	t.Run("a server with certificates keeps them", func(t *testing.T) {
		before, _ := os.ReadFile(files.ClientCert)
		if _, err := InitServer(req); !errors.Is(err, ErrHasCertificates) {
			t.Fatalf("err = %v, want ErrHasCertificates", err)
		}
		if after, _ := os.ReadFile(files.ClientCert); !bytes.Equal(before, after) {
			t.Error("the refused run changed the client certificate")
		}
	})

	t.Run("force renews with the same CA", func(t *testing.T) {
		again := req
		again.Force = true
		renewed, err := InitServer(again)
		if err != nil {
			t.Fatal(err)
		}
		if renewed.MadeCA || !renewed.CA.Cert.Equal(got.CA.Cert) {
			t.Error("the CA changed")
		}
		if renewed.Client.Cert.Equal(got.Client.Cert) {
			t.Error("the client certificate was not renewed")
		}
	})

	t.Run("another server, the same CA", func(t *testing.T) {
		other, err := InitServer(ServerRequest{Files: serverFiles(dir, "web2"), IPs: []net.IP{net.ParseIP("10.8.0.12")}})
		if err != nil {
			t.Fatal(err)
		}
		if other.MadeCA || !other.CA.Cert.Equal(got.CA.Cert) {
			t.Error("the second server got another CA")
		}
		// Without names, the address is the common name, and the daemon.json has no IPv6.
		if cn := other.Server.Cert.Subject.CommonName; cn != "10.8.0.12" {
			t.Errorf("common name %q", cn)
		}
		if strings.Contains(string(other.DaemonJSON), "ipv6") || !strings.Contains(string(other.DaemonJSON), `"10.8.0.12:2376"`) {
			t.Errorf("daemon.json:\n%s", other.DaemonJSON)
		}
	})
}

// Nothing the CA signs outlives it.
func TestInitServerCertificatesEndWithTheCA(t *testing.T) {
	dir := t.TempDir()
	files := serverFiles(dir, "web1")
	now := time.Now()
	ca, err := NewCA("short CA", now, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.Save(files.CACert, files.CAKey); err != nil {
		t.Fatal(err)
	}
	got, err := InitServer(ServerRequest{Files: files, IPs: []net.IP{net.ParseIP("10.0.0.1")}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	for name, kp := range map[string]*KeyPair{"server": got.Server, "client": got.Client} {
		if !kp.Cert.NotAfter.Equal(ca.Cert.NotAfter) {
			t.Errorf("%s certificate ends %s, the CA %s", name, kp.Cert.NotAfter, ca.Cert.NotAfter)
		}
	}
}

func TestInitServerCAErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		setup func(t *testing.T, f ServerFiles)
		want  string
	}{
		{"key without certificate", func(t *testing.T, f ServerFiles) {
			ca, err := NewCA("test CA", time.Now(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(f.CAKey, ca.KeyPEM, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "go together; one of them is missing"},
		{"expired", func(t *testing.T, f ServerFiles) {
			ca, err := NewCA("test CA", time.Now().Add(-48*time.Hour), 24*time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if err := ca.Save(f.CACert, f.CAKey); err != nil {
				t.Fatal(err)
			}
		}, "expired on"},
		{"key of another CA", func(t *testing.T, f ServerFiles) {
			ca, err := NewCA("test CA", time.Now(), 0)
			if err != nil {
				t.Fatal(err)
			}
			other, err := NewCA("other CA", time.Now(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := ca.Save(f.CACert, f.CAKey); err != nil {
				t.Fatal(err)
			}
			if err := WriteFile(f.CAKey, other.KeyPEM, 0o600); err != nil {
				t.Fatal(err)
			}
		}, "CA: "},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := serverFiles(t.TempDir(), "web1")
			c.setup(t, files)
			_, err := InitServer(ServerRequest{Files: files, IPs: []net.IP{net.ParseIP("10.0.0.1")}})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if _, err := os.Stat(files.ClientCert); err == nil {
				t.Error("a client certificate was written")
			}
		})
	}
}
