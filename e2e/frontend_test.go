package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

const (
	pebbleVersion = "v2.10.3"
	domain        = "site.example.com"
	siteText      = "Hello from the site job"
)

// TestFrontEnd brings up the blog post's stack with the bee2d daemon: a job publishes a site into a volume,
// nginx serves it, CertBot gets its certificate from Pebble (Let's Encrypt's test server) through HAProxy's
// ACME path, and HAProxy serves it on 443. Then a forced renewal: bee2d sees the new file, signals HAProxy,
// and the served certificate changes while HAProxy's container keeps running.
func TestFrontEnd(t *testing.T) {
	if testing.Short() {
		testdocker.Need(t, "end-to-end test under -short")
	}
	cli := testdocker.Require(t)
	ctx := t.Context()
	for _, p := range []int{80, 443} {
		portFree(t, p)
	}
	base := baseImage(t, cli)
	pebble := goTool(t, "github.com/letsencrypt/pebble/v2/cmd/pebble@"+pebbleVersion)
	challtest := goTool(t, "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@"+pebbleVersion)

	prefix := testdocker.UniquePrefix(t)
	le, site, logs := prefix+"-letsencrypt", prefix+"-site", prefix+"-logs"
	testdocker.Cleanup(t, cli, prefix, le, site, logs)
	dir := t.TempDir()

	// The network is made first, to know the host's address on it, where CertBot finds the ACME server.
	network := prefix + "-network"
	labels := map[string]string{labels.Owner: labels.Bee2d, labels.Prefix: prefix, labels.Server: "local"}
	if err := cli.CreateNetwork(ctx, network, labels); err != nil {
		t.Fatal(err)
	}
	gws, err := cli.NetworkGateways(ctx, network)
	if err != nil || len(gws) == 0 {
		t.Fatalf("gateway of %s: %v %v", network, gws, err)
	}
	gw := gws[0]

	// DNS for Pebble's validation: every name is this machine, where HAProxy publishes port 80, so the
	// HTTP-01 challenge goes through HAProxy's ACME path to CertBot, as it would from Let's Encrypt.
	dnsPort := freePort(t, "127.0.0.1")
	process(t, "challtestsrv", nil, challtest, "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
		"-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort), "-management", fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1")),
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "")
	caFile, certFile, keyFile := serverCert(t, dir, gw, "127.0.0.1")
	acmePort, mgmtPort := freePort(t, gw), freePort(t, "127.0.0.1")
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("%s:%d", gw, acmePort),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmtPort),
		"certificate":             certFile, "privateKey": keyFile,
		"httpPort": 80, "tlsPort": 443, "ocspResponderURL": "",
		"externalAccountBindingRequired": false,
	}}
	cfgFile := filepath.Join(dir, "pebble.json")
	b, _ := json.Marshal(cfg)
	if err := os.WriteFile(cfgFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	process(t, "pebble", []string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}, pebble,
		"-config", cfgFile, "-dnsserver", fmt.Sprintf("127.0.0.1:%d", dnsPort))

	// The settings: the three images from dockerfiles/ on the offline base, and the site job.
	dockerfiles := filepath.Join(dir, "dockerfiles")
	for _, d := range []string{"HAProxy", "CertBot", "NginxStatic"} {
		copyDir(t, filepath.Join("..", "dockerfiles", d), filepath.Join(dockerfiles, d))
	}
	siteDir := filepath.Join(dockerfiles, "Site")
	copyDir(t, filepath.Join("testdata", "Site"), siteDir)
	if err := os.WriteFile(filepath.Join(siteDir, "index.html"), []byte("<h1>"+siteText+"</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	settings := filepath.Join(dir, "settings.yml")
	yml := fmt.Sprintf(`servers:
  local: {}
docker:
  prefix: %[1]s
jobs:
  site:
    server: local
    build_dir: Site
    build_args: {BASE: "%[2]s"}
    volumes: ["%[4]s:/out:rw"]
applications:
  certbot:
    server: local
    build_dir: CertBot
    build_args: {BASE: "%[2]s"}
    volumes: ["%[3]s:/etc/letsencrypt:rw", "%[6]s:/acme-ca.pem:ro"]
    env:
      email: e2e@example.com
      domains: all
      port: 8080
      acme_server: https://%[7]s/dir
      requests_ca_bundle: /acme-ca.pem
      retry_seconds: 2
  nginx-static:
    server: local
    build_dir: NginxStatic
    build_args: {BASE: "%[2]s"}
    env: {domains: [%[8]s], http_port: 8080}
    volumes: ["%[4]s:/www/%[8]s:ro", "%[5]s:/var/log/nginx:rw"]
  haproxy:
    server: local
    build_dir: HAProxy
    build_args: {BASE: "%[2]s"}
    env: {domains: all}
    link: [nginx-static, certbot]
    volumes: ["%[3]s:/etc/letsencrypt:rw"]
    ports: [80, 443]
    reload:
      - {watch: "%[3]s:/live", signal: HUP, verify: tls}
`, prefix, base, le, site, logs, caFile, net.JoinHostPort(gw, fmt.Sprint(acmePort)), domain)
	if err := os.WriteFile(settings, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}

	// The daemon, as systemd runs it: a static binary (the TLS probe runs it on the server).
	bee2d := bee2dBinary(t, dir)
	listen := fmt.Sprintf("127.0.0.1:%d", freePort(t, "127.0.0.1"))
	start := time.Now()
	process(t, "bee2d", []string{"DOCKER_HOST=unix:///var/run/docker.sock"}, bee2d, "daemon", "-c", settings,
		"--listen", listen, "--resync", "2s", "--log-format", "json", "--log-level", "debug")

	roots := pebbleRoots(t, mgmtPort)
	client := httpsClient(roots)

	// HAProxy serves the site with a certificate Pebble issued.
	var first *x509.Certificate
	err = eventually(ctx, 10*time.Minute, func() error {
		resp, err := client.Get("https://" + domain + "/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || !strings.Contains(string(body), siteText) {
			return fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		if resp.ProtoMajor != 2 {
			return fmt.Errorf("served over %s, want HTTP/2", resp.Proto)
		}
		first = resp.TLS.PeerCertificates[0]
		return nil
	})
	if err != nil {
		t.Fatalf("the site with a certificate from Pebble was never served: %v", err)
	}
	t.Logf("site served over HTTPS with Pebble's certificate %x after %v", first.SerialNumber, time.Since(start).Round(time.Second))

	t.Run("www redirects to the apex", func(t *testing.T) {
		resp, err := client.Get("https://www." + domain + "/page?x=1")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != 301 || loc != "https://"+domain+"/page?x=1" {
			t.Errorf("www: %d to %q", resp.StatusCode, loc)
		}
	})
	t.Run("http redirects to https", func(t *testing.T) {
		resp, err := client.Get("http://" + domain + "/a")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != 301 || loc != "https://"+domain+"/a" {
			t.Errorf("http: %d to %q", resp.StatusCode, loc)
		}
	})
	t.Run("the ACME path reaches CertBot", func(t *testing.T) {
		certbot := container(t, cli, prefix+"-app-certbot")
		res, err := cli.Exec(ctx, certbot.ID, []string{"sh", "-c", "echo token-from-certbot > /var/lib/bee2d/acme/.well-known/acme-challenge/e2e"})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("write a token: %v %+v", err, res)
		}
		resp, err := client.Get("http://" + domain + "/.well-known/acme-challenge/e2e")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "token-from-certbot" {
			t.Errorf("ACME path: %d %q", resp.StatusCode, body)
		}
	})

	t.Run("a renewal is reloaded without a restart", func(t *testing.T) {
		haproxy := container(t, cli, prefix+"-app-haproxy")
		certbot := container(t, cli, prefix+"-app-certbot")
		renewed := time.Now()
		res, err := cli.Exec(ctx, certbot.ID, []string{"sh", "/usr/local/lib/bee2d/certbot.sh", "renew-now", "--force-renewal"})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("forced renewal: %v exit %d\n%s%s", err, res.ExitCode, res.Stdout, res.Stderr)
		}
		var second *x509.Certificate
		err = eventually(ctx, time.Minute, func() error {
			c, err := served(client)
			if err != nil {
				return err
			}
			if c.SerialNumber.Cmp(first.SerialNumber) == 0 {
				return errors.New("still the first certificate")
			}
			second = c
			return nil
		})
		if err != nil {
			t.Fatalf("the renewed certificate was never served: %v", err)
		}
		t.Logf("serial %x -> %x, %v after the renewal", first.SerialNumber, second.SerialNumber, time.Since(renewed).Round(time.Millisecond))
		if now := container(t, cli, prefix+"-app-haproxy"); now.ID != haproxy.ID || now.State != "running" {
			t.Errorf("HAProxy's container was replaced or stopped: %s %s -> %s %s", haproxy.ID[:12], haproxy.State, now.ID[:12], now.State)
		}
		err = eventually(ctx, 30*time.Second, func() error {
			m := scrape(t, listen)
			for _, want := range []string{
				`bee2_reload_total{app="haproxy",result="success",server="local"}`,
				`bee2_certificate_expiry_timestamp_seconds{domain="` + domain + `",server="local"}`,
			} {
				if !strings.Contains(m, want) {
					return fmt.Errorf("no %s in\n%s", want, grep(m, "bee2_reload_total", "bee2_certificate"))
				}
			}
			if !strings.Contains(m, `bee2_reload_total{app="haproxy",result="failure",server="local"} 0`) {
				return fmt.Errorf("failed reloads:\n%s", grep(m, "bee2_reload_total"))
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
}

// pebbleRoots fetches the root that Pebble signs certificates with (made anew at each start).
func pebbleRoots(t *testing.T, mgmtPort int) *x509.CertPool {
	t.Helper()
	insecure := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	pool := x509.NewCertPool()
	err := eventually(t.Context(), 30*time.Second, func() error {
		resp, err := insecure.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmtPort))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		block, _ := pem.Decode(b)
		if block == nil {
			return fmt.Errorf("no PEM from Pebble: %s", b)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return err
		}
		pool.AddCert(c)
		return nil
	})
	if err != nil {
		t.Fatalf("Pebble's root: %v", err)
	}
	return pool
}

// httpsClient reaches every name at this machine's published ports and trusts only Pebble's root; it does
// not follow redirects.
func httpsClient(roots *x509.CertPool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(addr)
				return dialer.DialContext(ctx, network, net.JoinHostPort("127.0.0.1", port))
			},
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true,
			DisableKeepAlives: true,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func served(client *http.Client) (*x509.Certificate, error) {
	resp, err := client.Get("https://" + domain + "/")
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp.TLS.PeerCertificates[0], nil
}

func container(t *testing.T, cli *dockerx.Client, name string) dockerx.Container {
	t.Helper()
	list, err := cli.ListContainers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return dockerx.Container{}
}

func scrape(t *testing.T, listen string) string {
	t.Helper()
	resp, err := http.Get("http://" + listen + "/metrics")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grep(text string, prefixes ...string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		for _, p := range prefixes {
			if strings.HasPrefix(line, p) {
				out = append(out, line)
			}
		}
	}
	return strings.Join(out, "\n")
}
