package main

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/internal/pki"
)

// tlsDir is a settings file with two servers and an empty dockerfiles folder beside it.
func tlsDir(t *testing.T) (dir, settings string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "dockerfiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	settings = filepath.Join(dir, "settings.yml")
	yml := "servers:\n  web1:\n    dns: {private: [web1.vpn.example.net]}\n    private_ip: 10.8.0.11\n" +
		"  web2:\n    docker: {host: \"ssh://root@web2.example.net\"}\n"
	if err := os.WriteFile(settings, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, settings
}

func bee2dRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestTLSInit(t *testing.T) {
	dir, settings := tlsDir(t)
	code, out, errOut := bee2dRun(t, "tls", "init", "web1", "--name", "web1.example.net", "--ip", "192.168.150.10",
		"--ipv6-subnet", "2001:db8:1:2::/64", "-c", settings)
	if code != 0 {
		t.Fatalf("tls init = %d\n%s", code, errOut)
	}

	t.Run("daemon.json", func(t *testing.T) {
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, out)
		}
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
}
`
		if out != want {
			t.Errorf("daemon.json:\n%s\nwant:\n%s", out, want)
		}
	})

	conf := filepath.Join(dir, "conf", "docker")
	t.Run("files and modes", func(t *testing.T) {
		for file, mode := range map[string]os.FileMode{
			"ca.pem": 0o644, "ca-key.pem": 0o600,
			"web1/ca.pem": 0o644, "web1/docker-server.crt": 0o644, "web1/docker-server.pem": 0o600,
			"web1/docker-client.crt": 0o644, "web1/docker-client.pem": 0o600,
		} {
			st, err := os.Stat(filepath.Join(conf, file))
			if err != nil {
				t.Error(err)
				continue
			}
			if st.Mode().Perm() != mode {
				t.Errorf("%s: mode %v, want %v", file, st.Mode().Perm(), mode)
			}
		}
	})

	ca, err := pki.Load(filepath.Join(conf, "ca.pem"), filepath.Join(conf, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	server, err := pki.Load(filepath.Join(conf, "web1", "docker-server.crt"), filepath.Join(conf, "web1", "docker-server.pem"))
	if err != nil {
		t.Fatal(err)
	}
	client, err := pki.Load(filepath.Join(conf, "web1", "docker-client.crt"), filepath.Join(conf, "web1", "docker-client.pem"))
	if err != nil {
		t.Fatal(err)
	}
	t.Run("certificates", func(t *testing.T) {
		for _, host := range []string{"web1.example.net", "192.168.150.10", "127.0.0.1"} {
			if _, err := server.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: host,
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
				t.Errorf("server certificate for %s: %v", host, err)
			}
		}
		if _, err := server.Cert.Verify(x509.VerifyOptions{Roots: roots, DNSName: "web1.vpn.example.net"}); err == nil {
			t.Error("--name replaces dns.private, but the certificate names dns.private too")
		}
		if _, err := client.Cert.Verify(x509.VerifyOptions{Roots: roots,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("client certificate: %v", err)
		}
	})

	t.Run("a server with certificates keeps them", func(t *testing.T) {
		code, _, errOut := bee2dRun(t, "tls", "init", "web1", "--ip", "192.168.150.10", "-c", settings)
		if code != exitError || !strings.Contains(errOut, "--force") {
			t.Fatalf("tls init again = %d, want 1 and a word about --force\n%s", code, errOut)
		}
		after, err := os.ReadFile(filepath.Join(conf, "web1", "docker-client.crt"))
		if err != nil || !bytes.Equal(after, client.CertPEM) {
			t.Error("the refused run changed the client certificate")
		}
	})

	t.Run("force renews with the same CA", func(t *testing.T) {
		code, _, errOut := bee2dRun(t, "tls", "init", "web1", "--ip", "192.168.150.10", "--force", "-c", settings)
		if code != 0 {
			t.Fatalf("tls init --force = %d\n%s", code, errOut)
		}
		again, err := pki.Load(filepath.Join(conf, "ca.pem"), filepath.Join(conf, "ca-key.pem"))
		if err != nil || !again.Cert.Equal(ca.Cert) {
			t.Fatalf("the CA changed: %v", err)
		}
		renewed, err := pki.Load(filepath.Join(conf, "web1", "docker-client.crt"), filepath.Join(conf, "web1", "docker-client.pem"))
		if err != nil || renewed.Cert.Equal(client.Cert) {
			t.Fatalf("the client certificate was not renewed: %v", err)
		}
		if _, err := renewed.Cert.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			t.Errorf("renewed client certificate: %v", err)
		}
	})
}

// TestTLSInitDefaults: without --name and --ip the server's dns.private and private_ip are used.
func TestTLSInitDefaults(t *testing.T) {
	dir, settings := tlsDir(t)
	code, out, errOut := bee2dRun(t, "tls", "init", "-c", settings, "web1")
	if code != 0 {
		t.Fatalf("tls init = %d\n%s", code, errOut)
	}
	if !strings.Contains(out, `"10.8.0.11:2376"`) || strings.Contains(out, "ipv6") {
		t.Errorf("daemon.json:\n%s", out)
	}
	server, err := pki.Load(filepath.Join(dir, "conf", "docker", "web1", "docker-server.crt"),
		filepath.Join(dir, "conf", "docker", "web1", "docker-server.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := server.Cert.VerifyHostname("web1.vpn.example.net"); err != nil {
		t.Error(err)
	}
	if !server.Cert.IPAddresses[0].Equal(net.ParseIP("10.8.0.11")) {
		t.Errorf("addresses %v", server.Cert.IPAddresses)
	}
	// Bee2's default reaches web1 with these files: no hint. web2 is reached by SSH: the hint says how to
	// use them.
	if strings.Contains(errOut, "settings:") {
		t.Errorf("a hint for a server that already uses conf/docker/web1:\n%s", errOut)
	}
	code, _, errOut = bee2dRun(t, "tls", "init", "web2", "--ip", "10.8.0.12", "-c", settings)
	if code != 0 || !strings.Contains(errOut, `settings: servers.web2.docker: {host: "tcp://10.8.0.12:2376"`) {
		t.Errorf("tls init web2 = %d\n%s", code, errOut)
	}
}

func TestTLSInitErrors(t *testing.T) {
	_, settings := tlsDir(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"web3", "--ip", "10.0.0.1"}, `no server "web3"`},
		{[]string{"web2"}, "give --ip"},
		{[]string{"web1", "--ip", "10.0.0.300"}, `--ip "10.0.0.300" is not an IP address`},
		{[]string{"web1", "--ipv6-subnet", "10.0.0.0/8"}, "is IPv4"},
		{[]string{"web1", "--ipv6-subnet", "2001:db8::/96"}, "smaller than a /80"},
		{[]string{"web1", "--name", "bad name"}, "is not a DNS name"},
		{[]string{"web1", "web2"}, `unexpected argument "web2"`},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			code, out, errOut := bee2dRun(t, append([]string{"tls", "init", "-c", settings}, c.args...)...)
			if code != exitError || !strings.Contains(errOut, c.want) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr:\n%s\nwant 1 and %q", code, out, errOut, c.want)
			}
		})
	}
	if code, _, errOut := bee2dRun(t, "tls", "renew"); code != exitError || !strings.Contains(errOut, "tls init") {
		t.Errorf("tls renew = %d: %s", code, errOut)
	}
}

// TestInsecureWarnedAtStart: a server on plain TCP, allowed by insecure: true, is warned about once when a
// command starts, even though it cannot be reached.
func TestInsecureWarnedAtStart(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "dockerfiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	settings := filepath.Join(dir, "settings.yml")
	yml := "servers:\n  lab:\n    docker: {host: \"tcp://" + addr + "\", insecure: true}\n"
	if err := os.WriteFile(settings, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := bee2dRun(t, "plan", "-c", settings)
	if code != exitError {
		t.Errorf("plan = %d, want 1 (unreachable)", code)
	}
	if n := strings.Count(errOut, "docker api over tcp without tls"); n != 1 || !strings.Contains(errOut, `"server": "lab"`) {
		t.Errorf("warned %d times, want once naming the server:\n%s", n, errOut)
	}
}
