package dockerx_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/bee2d/bee2d/internal/pki"
	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// TestTLSEngine connects to a dockerd serving mutual TLS, with the right files and with each kind of wrong
// one: the error says what is wrong, naming the file, and no call reaches the engine.
func TestTLSEngine(t *testing.T) {
	engine, certs := testdocker.StartTLSEngine(t)
	good := dockerx.TLSFiles{CA: certs.CAFile, Cert: certs.ClientCert, Key: certs.ClientKey}

	other := testdocker.NewEngineCerts(t, pki.Template{Usage: pki.Server, DNSNames: []string{"other"}})
	expired := filepath.Join(certs.Dir, "expired.crt")
	expiredKey := filepath.Join(certs.Dir, "expired.pem")
	certs.Issue(t, pki.Template{Usage: pki.Client, CommonName: "bee2d",
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}, expired, expiredKey)
	port := strings.TrimPrefix(engine.TCPHost, "tcp://127.0.0.1:")

	for _, c := range []struct {
		name string
		host string
		tls  dockerx.TLSFiles
		want string // "" for success
	}{
		{"trusted", engine.TCPHost, good, ""},
		{"wrong CA", engine.TCPHost, dockerx.TLSFiles{CA: other.CAFile, Cert: certs.ClientCert, Key: certs.ClientKey},
			"docker engine at " + engine.TCPHost + ": TLS: the engine's certificate is not signed by the CA in " + other.CAFile},
		{"wrong name", "tcp://localhost:" + port, good,
			"TLS: the engine's certificate is for " + testdocker.TLSName + ", 127.0.0.1, not localhost"},
		{"expired client certificate", engine.TCPHost, dockerx.TLSFiles{CA: certs.CAFile, Cert: expired, Key: expiredKey},
			"TLS client certificate " + expired + " expired on"},
		{"client certificate of another CA", engine.TCPHost, dockerx.TLSFiles{CA: certs.CAFile, Cert: other.ClientCert, Key: other.ClientKey},
			"TLS: the engine refused the client certificate " + other.ClientCert},
		{"key of another certificate", engine.TCPHost, dockerx.TLSFiles{CA: certs.CAFile, Cert: certs.ClientCert, Key: other.ClientKey},
			"private key does not match public key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			tls := c.tls
			cli, err := dockerx.Connect(t.Context(), dockerx.Endpoint{Host: c.host, TLS: &tls})
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer cli.Close()
				if _, err := cli.ListContainers(t.Context()); err != nil {
					t.Fatal(err)
				}
				if cli.Host() != c.host {
					t.Errorf("Host() = %s, want %s", cli.Host(), c.host)
				}
				return
			}
			if err == nil {
				cli.Close()
				t.Fatalf("connected; want an error with %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error:\n  %v\nwant it to contain\n  %s", err, c.want)
			}
		})
	}

	t.Run("plain tcp refused", func(t *testing.T) {
		_, err := dockerx.Connect(t.Context(), dockerx.Endpoint{Host: engine.TCPHost})
		if err == nil || !strings.Contains(err.Error(), "insecure: true") {
			t.Fatalf("err = %v, want plain TCP refused", err)
		}
	})
}

// TestTLSEngineExpiredCertificate: an engine whose own certificate expired is not trusted.
func TestTLSEngineExpiredCertificate(t *testing.T) {
	certs := testdocker.NewEngineCerts(t, pki.Template{Usage: pki.Server, IPs: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-60 * 24 * time.Hour), NotAfter: time.Now().Add(-30 * 24 * time.Hour)})
	engine := testdocker.StartEngine(t, &testdocker.EngineTLS{CA: certs.CAFile, Cert: certs.ServerCert, Key: certs.ServerKey})
	_, err := dockerx.Connect(t.Context(), dockerx.Endpoint{Host: engine.TCPHost,
		TLS: &dockerx.TLSFiles{CA: certs.CAFile, Cert: certs.ClientCert, Key: certs.ClientKey}})
	if want := "TLS: the engine's certificate is valid from"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("err = %v, want one with %q", err, want)
	}
}

// sshEndpoint reaches the machine's engine (the default socket path) through the test's sshd.
func sshEndpoint(s *testdocker.SSHD) dockerx.Endpoint {
	return dockerx.Endpoint{Host: "ssh://" + s.User + "@" + s.Addr,
		SSH: &dockerx.SSHFiles{KnownHosts: s.KnownHosts, Identity: s.Identity}}
}

// TestSSH: every call goes through one SSH connection, however many run at once; after the connection
// drops, the next call dials a new one.
func TestSSH(t *testing.T) {
	testdocker.Require(t)
	sshd := testdocker.StartSSHD(t)
	cli, err := dockerx.Connect(t.Context(), sshEndpoint(sshd))
	if err != nil {
		t.Fatalf("%v\nsshd log:\n%s", err, sshd.Log())
	}
	defer cli.Close()

	// An event stream holds a channel open for as long as it runs, beside the calls.
	ctx, stopEvents := context.WithCancel(t.Context())
	defer stopEvents()
	_, evErrs := cli.Events(ctx, map[string]string{"io.bee2d.test": "none"})
	calls := func() {
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for range 40 {
			wg.Go(func() {
				if _, err := cli.ListContainers(t.Context()); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	calls()
	if n := sshd.Logins(); n != 1 {
		t.Fatalf("%d SSH logins for 40 concurrent calls, want 1\n%s", n, sshd.Log())
	}

	sshd.Restart() // drops the connection
	select {
	case err := <-evErrs:
		if err == nil {
			t.Error("event stream ended without an error when the connection dropped")
		}
	case <-time.After(30 * time.Second):
		t.Error("event stream did not notice the dropped connection")
	}
	calls()
	if n := sshd.Logins(); n != 2 {
		t.Fatalf("%d SSH logins after a drop, want 2 (one reconnect)\n%s", n, sshd.Log())
	}
}

// TestSSHAgent logs in with a key the SSH agent holds, no identity file configured.
func TestSSHAgent(t *testing.T) {
	testdocker.Require(t)
	sshd := testdocker.StartSSHD(t)
	pemBytes, err := os.ReadFile(sshd.Identity)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParseRawPrivateKey(pemBytes)
	if err != nil {
		t.Fatal(err)
	}
	keyring := agent.NewKeyring()
	if err := keyring.Add(agent.AddedKey{PrivateKey: key}); err != nil {
		t.Fatal(err)
	}
	ln, sock := testdocker.ListenUnix(t, "bee2d-agent", "agent.sock")
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = agent.ServeAgent(keyring, c)
			}()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("HOME", t.TempDir()) // no ~/.ssh/id_* to fall back on

	ep := sshEndpoint(sshd)
	ep.SSH.Identity = ""
	cli, err := dockerx.Connect(t.Context(), ep)
	if err != nil {
		t.Fatalf("%v\nsshd log:\n%s", err, sshd.Log())
	}
	cli.Close()
}

// TestSSHRefused: a host key that does not match known_hosts, an unknown host and a key sshd does not
// accept each stop the connection with a message saying which, before any call is made.
func TestSSHRefused(t *testing.T) {
	sshd := testdocker.StartSSHD(t)
	dir := t.TempDir()
	t.Setenv("SSH_AUTH_SOCK", "")
	t.Setenv("HOME", dir)

	wrongHostKey := filepath.Join(dir, "known_hosts.wrong")
	otherKey, err := testdocker.WriteSSHKey(filepath.Join(dir, "other_host_key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := testdocker.WriteKnownHosts(wrongHostKey, sshd.Addr, otherKey); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "known_hosts.empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	strangerKey := filepath.Join(dir, "id_stranger")
	if _, err := testdocker.WriteSSHKey(strangerKey); err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name       string
		knownHosts string
		identity   string
		want       string
	}{
		{"wrong host key", wrongHostKey, sshd.Identity, "SSH: the host key of " + sshd.Addr + " does not match " + wrongHostKey + ":1; refusing to connect"},
		{"unknown host", empty, sshd.Identity, "SSH: the host key of " + sshd.Addr + " is not in " + empty},
		{"no known_hosts file", filepath.Join(dir, "missing"), sshd.Identity, "known_hosts file " + filepath.Join(dir, "missing")},
		{"key not authorized", sshd.KnownHosts, strangerKey, "accepted none of the keys offered"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ep := sshEndpoint(sshd)
			ep.SSH = &dockerx.SSHFiles{KnownHosts: c.knownHosts, Identity: c.identity}
			cli, err := dockerx.Connect(t.Context(), ep)
			if err == nil {
				cli.Close()
				t.Fatalf("connected; want an error with %q", c.want)
			}
			if !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), ep.Host) {
				t.Fatalf("error:\n  %v\nwant it to name %s and contain\n  %s", err, ep.Host, c.want)
			}
		})
	}
	if n := sshd.Logins(); n != 0 {
		t.Errorf("%d logins accepted, want none\n%s", n, sshd.Log())
	}
}
