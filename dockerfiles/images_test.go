package dockerfiles

import (
	"fmt"
	"github.com/bee2d/bee2d/internal/testdocker"

	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"flag"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// tool finds a program of Debian's packages (haproxy, nginx-light): on PATH or in /usr/sbin. CI installs
// them, so there a missing one fails.
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p := "/usr/sbin/" + name; isExecutable(p) {
		return p
	}
	testdocker.Need(t, fmt.Sprintf("%s not found (apt-get install %s)", name, pkg))
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// runScript runs one of the images' scripts with sh and only the given environment (plus PATH).
func runScript(t *testing.T, script string, env map[string]string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command("sh", append([]string{script}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update creates it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s--- want\n%s", path, got, want)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

// combinedPEM is a self-signed certificate for names with its key, as CertBot's combined files hold them.
func combinedPEM(t *testing.T, names ...string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(90 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})) +
		string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
}

// TestHAProxyConfig writes the configuration for each DOMAINS, compares it with its golden file and has
// HAProxy check it, certificates included.
func TestHAProxyConfig(t *testing.T) {
	haproxy := tool(t, "haproxy", "haproxy")
	for _, c := range []struct {
		name  string
		env   map[string]string
		certs []string // domains with a combined certificate in the live directory
	}{
		// The blog post's stack: one static server for one domain, no certificate yet.
		{name: "blogpost", env: map[string]string{"DOMAINS": "bee2-app-nginx-static:dyject.com", "IPV6": "true"}},
		// Several applications, a port suffix, upper case, certificates for some domains, IPv4 only.
		{name: "several", env: map[string]string{
			"DOMAINS":      "bee2-app-nginx-static:dyject.com,Example.COM bee2-app-api:api.example.com/9000,example.net/9000 bee2-app-blog:blog.example.org",
			"CERTBOT_HOST": "bee2-app-certbot", "CERTBOT_PORT": "8081", "IPV6": "false",
		}, certs: []string{"dyject.com", "example.com", "api.example.com"}},
		// No application with domains on the server: HAProxy still starts, with the placeholder only.
		{name: "none", env: map[string]string{"IPV6": "true"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			live := filepath.Join(dir, "live")
			writeFile(t, filepath.Join(live, "README"), "certbot's README is no certificate\n", 0o644)
			for _, d := range c.certs {
				writeFile(t, filepath.Join(live, d+"-combined.pem"), combinedPEM(t, d, "www."+d), 0o600)
			}
			// A combined file being written is not loaded.
			writeFile(t, filepath.Join(live, ".half-combined.pem.tmp"), "partial", 0o600)
			etc := filepath.Join(dir, "haproxy")
			writeFile(t, filepath.Join(etc, "placeholder.pem"), readFile(t, filepath.Join("HAProxy", "placeholder.pem")), 0o600)
			env := map[string]string{"CERT_DIR": live, "HAPROXY_DIR": etc}
			for k, v := range c.env {
				env[k] = v
			}
			if out, err := runScript(t, filepath.Join("HAProxy", "haproxy-config.sh"), env); err != nil {
				t.Fatalf("haproxy-config.sh: %v\n%s", err, out)
			}
			cfg := strings.ReplaceAll(readFile(t, filepath.Join(etc, "haproxy.cfg")), dir, "$DIR")
			list := strings.ReplaceAll(readFile(t, filepath.Join(etc, "certificates.list")), dir, "$DIR")
			golden(t, filepath.Join("testdata", "haproxy-"+c.name+".cfg"), cfg+"# certificates.list:\n"+list)
			checkStartFirst(t, cfg)
			if out, err := exec.Command(haproxy, "-c", "-f", filepath.Join(etc, "haproxy.cfg")).CombinedOutput(); err != nil {
				t.Fatalf("haproxy -c: %v\n%s", err, out)
			}
		})
	}
}

// checkStartFirst checks what a start-first deploy behind HAProxy relies on (TestHAProxyStartFirst shows it
// working), so that a golden file rewritten with -update cannot lose it unnoticed: each site is a template of
// servers found by the resolvers and checked every second, and a request its server refuses goes to another.
func checkStartFirst(t *testing.T, cfg string) {
	t.Helper()
	for _, want := range []string{
		"default-server init-addr libc,none resolvers docker resolve-prefer ipv4\n",
		"resolvers docker\n    nameserver docker 127.0.0.11:53\n",
		"    timeout resolve 1s\n",
		"    hold obsolete 0s\n",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("the configuration has no %q", want)
		}
	}
	for _, block := range strings.Split(cfg, "\nbackend ")[1:] {
		name, _, _ := strings.Cut(block, "\n")
		if !strings.HasPrefix(name, "site_") {
			continue
		}
		for _, want := range []string{
			"\n    timeout connect 2s\n",
			"\n    retries 3\n",
			"\n    option redispatch 1\n",
			"\n    retry-on conn-failure empty-response\n",
			"\n    http-request disable-l7-retry unless METH_GET || METH_OPTIONS\n",
			"\n    server-template app 4 ",
			" check inter 1s fall 2 rise 1\n",
		} {
			if !strings.Contains(block, want) {
				t.Errorf("backend %s has no %q", name, want)
			}
		}
		if strings.Contains(block, "\n    server ") {
			t.Errorf("backend %s has a single server, which follows one of the addresses its name resolves to", name)
		}
	}
}

// TestHAProxyConfigRejects checks that a DOMAINS the configuration cannot express stops the container
// with a message, rather than starting HAProxy with a part of it.
func TestHAProxyConfigRejects(t *testing.T) {
	for _, c := range []struct{ domains, want string }{
		{"example.com", `DOMAINS entry "example.com" is not <container>:<domain>[,<domain>...]`},
		{"app:example.com/http", `port "http" is not a number`},
		{"app:exa_mple.com", `"exa_mple.com" is not a domain name`},
	} {
		dir := t.TempDir()
		out, err := runScript(t, filepath.Join("HAProxy", "haproxy-config.sh"),
			map[string]string{"DOMAINS": c.domains, "HAPROXY_DIR": dir, "CERT_DIR": dir})
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("DOMAINS=%q: err %v, output %q; want an error saying %s", c.domains, err, out, c.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "haproxy.cfg")); err == nil {
			t.Errorf("DOMAINS=%q: a configuration was written", c.domains)
		}
	}
}

// TestNginxConfig writes nginx's configuration for each DOMAINS, compares it with its golden file and has
// nginx test it.
func TestNginxConfig(t *testing.T) {
	nginx := tool(t, "nginx", "nginx-light")
	for _, c := range []struct {
		name string
		env  map[string]string
	}{
		{name: "blogpost", env: map[string]string{"DOMAINS": "dyject.com", "HTTP_PORT": "8080", "IPV6": "true"}},
		// The domains: all form with ports, duplicates and upper case; IPv4 only, another port.
		{name: "several", env: map[string]string{"DOMAINS": "bee2-app-a:Example.com,example.org/9000 bee2-app-b:example.com", "HTTP_PORT": "9090", "IPV6": "false"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			conf := filepath.Join(t.TempDir(), "nginx.conf")
			env := map[string]string{"NGINX_CONF": conf, "NGINX_USER": "www-data"}
			for k, v := range c.env {
				env[k] = v
			}
			if out, err := runScript(t, filepath.Join("NginxStatic", "nginx-config.sh"), env); err != nil {
				t.Fatalf("nginx-config.sh: %v\n%s", err, out)
			}
			golden(t, filepath.Join("testdata", "nginx-"+c.name+".conf"), readFile(t, conf))
			if out, err := exec.Command(nginx, "-t", "-q", "-c", conf).CombinedOutput(); err != nil {
				t.Fatalf("nginx -t: %v\n%s", err, out)
			}
		})
	}
	out, err := runScript(t, filepath.Join("NginxStatic", "nginx-config.sh"),
		map[string]string{"DOMAINS": "exa_mple.com", "NGINX_CONF": filepath.Join(t.TempDir(), "nginx.conf")})
	if err == nil || !strings.Contains(out, `"exa_mple.com" is not a domain name`) {
		t.Errorf("a bad domain: err %v, output %q", err, out)
	}
}

// fakeCertbot stands in for certbot on PATH: it records its arguments and, for a new lineage or a forced
// renewal, writes a new full chain and key as certbot does.
const fakeCertbot = `#!/bin/sh
echo "$*" >>"$CALLS"
name=""; force=""
while [ $# -gt 0 ]; do
	case $1 in
	--cert-name) name=$2; shift ;;
	--force-renewal) force=1 ;;
	esac
	shift
done
[ "$name" = fail.example ] && exit 1
dir=$LETSENCRYPT_DIR/live/$name
if [ ! -f "$dir/fullchain.pem" ] || [ -n "$force" ]; then
	mkdir -p "$dir"
	n=$(($(cat "$dir/n" 2>/dev/null || echo 0) + 1))
	echo $n >"$dir/n"
	echo "chain $name $n" >"$dir/fullchain.pem"
	echo "key $name $n" >"$dir/privkey.pem"
fi
`

// TestCertbotCombines runs the CertBot image's script once against a fake certbot: every domain gets its
// combined file, a check with nothing due rewrites nothing, a forced renewal rewrites the file by rename.
func TestCertbotCombines(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	writeFile(t, filepath.Join(bin, "certbot"), fakeCertbot, 0o755)
	le := filepath.Join(dir, "letsencrypt")
	calls := filepath.Join(dir, "calls")
	env := map[string]string{
		"PATH":            bin + ":" + os.Getenv("PATH"),
		"CALLS":           calls,
		"LETSENCRYPT_DIR": le,
		"WEBROOT":         filepath.Join(dir, "acme"),
		"EMAIL":           "ops@example.com",
		"DOMAINS":         "bee2-app-a:example.com,www.example.org/9000 bee2-app-b:example.com",
		"ACME_SERVER":     "https://acme.test/dir",
	}
	once := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("sh", append([]string{filepath.Join("CertBot", "certbot.sh"), "renew-now"}, args...)...)
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("certbot.sh renew-now %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	once()
	wantCalls := "certonly --non-interactive --agree-tos --no-eff-email --email ops@example.com --webroot -w " + env["WEBROOT"] +
		" --cert-name example.com --keep-until-expiring -d example.com -d www.example.com --server https://acme.test/dir\n" +
		"certonly --non-interactive --agree-tos --no-eff-email --email ops@example.com --webroot -w " + env["WEBROOT"] +
		" --cert-name www.example.org --keep-until-expiring -d www.example.org --server https://acme.test/dir\n"
	if got := readFile(t, calls); got != wantCalls {
		t.Errorf("certbot calls:\n%s\nwant:\n%s", got, wantCalls)
	}
	combined := filepath.Join(le, "live", "example.com-combined.pem")
	if got := readFile(t, combined); got != "chain example.com 1\nkey example.com 1\n" {
		t.Errorf("combined file holds %q", got)
	}
	if fi, err := os.Stat(combined); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("combined file mode: %v %v; want 0600, it holds the key", fi.Mode(), err)
	}
	before, _ := os.Stat(combined)

	// Nothing due: the file is left as it is, not rewritten with the same bytes.
	time.Sleep(10 * time.Millisecond)
	once()
	if after, _ := os.Stat(combined); !os.SameFile(before, after) || !after.ModTime().Equal(before.ModTime()) {
		t.Errorf("a check with nothing due rewrote %s", combined)
	}

	// A renewal replaces the file by rename: a reader holding the old one keeps it whole.
	out := once("--force-renewal")
	if got := readFile(t, combined); got != "chain example.com 2\nkey example.com 2\n" {
		t.Errorf("after a renewal the combined file holds %q", got)
	}
	if after, _ := os.Stat(combined); os.SameFile(before, after) {
		t.Errorf("the renewed file was written in place, not renamed over the old one")
	}
	if !strings.Contains(out, "wrote example.com-combined.pem") {
		t.Errorf("no log line for the new file:\n%s", out)
	}
	entries, _ := os.ReadDir(filepath.Join(le, "live"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".tmp") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}

	// A domain that fails makes the run fail (the image then retries sooner) but the others are done.
	env["DOMAINS"] = "bee2-app-a:fail.example,example.net"
	cmd := exec.Command("sh", filepath.Join("CertBot", "certbot.sh"), "renew-now")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "certbot failed for fail.example") {
		t.Errorf("a failing domain: err %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(le, "live", "example.net-combined.pem")); err != nil {
		t.Errorf("the domain after a failing one was not done: %v", err)
	}
}

// TestScriptsParse has sh check every script of the images.
func TestScriptsParse(t *testing.T) {
	scripts, _ := filepath.Glob("*/*.sh")
	if len(scripts) < 5 {
		t.Fatalf("found only %v", scripts)
	}
	for _, s := range scripts {
		if out, err := exec.Command("sh", "-n", s).CombinedOutput(); err != nil {
			t.Errorf("sh -n %s: %v\n%s", s, err, out)
		}
	}
}

// TestHAProxyStartFirst runs HAProxy with the configuration the script writes in front of one site under a
// load loop, and deploys the site start-first several times as bee2d does: a new container answers to the
// application's name beside the old one, the old one is stopped (it closes its listener and finishes the
// requests in flight, as a Go server's Shutdown does) and leaves the name. Docker's embedded DNS is a stand-in
// answering for the name, and the containers are servers on loopback addresses. No request may fail.
func TestHAProxyStartFirst(t *testing.T) {
	if testing.Short() {
		testdocker.Need(t, "HAProxy under load for seconds under -short")
	}
	haproxy := tool(t, "haproxy", "haproxy")
	dns := startFakeDNS(t, "app")
	first := startApp(t, "127.0.0.2:0")
	_, port, _ := net.SplitHostPort(first.addr)

	dir := t.TempDir()
	etc := filepath.Join(dir, "haproxy")
	writeFile(t, filepath.Join(etc, "placeholder.pem"), readFile(t, filepath.Join("HAProxy", "placeholder.pem")), 0o600)
	env := map[string]string{"DOMAINS": "app:site.test/" + port, "IPV6": "false", "CERT_DIR": filepath.Join(dir, "live"), "HAPROXY_DIR": etc}
	if out, err := runScript(t, filepath.Join("HAProxy", "haproxy-config.sh"), env); err != nil {
		t.Fatalf("haproxy-config.sh: %v\n%s", err, out)
	}
	// Only the addresses change, and the user: the test need not run as root.
	https := freePort(t)
	sock := filepath.Join(etc, "admin.sock")
	cfg := readFile(t, filepath.Join(etc, "haproxy.cfg"))
	for _, r := range [][2]string{
		{"    user haproxy\n    group haproxy\n", "    stats socket " + sock + " level admin\n"},
		{"nameserver docker 127.0.0.11:53", "nameserver docker " + dns.addr()},
		{"bind 0.0.0.0:80\n", "bind 127.0.0.1:" + freePort(t) + "\n"},
		{"bind 0.0.0.0:443 ", "bind 127.0.0.1:" + https + " "},
	} {
		if strings.Count(cfg, r[0]) != 1 {
			t.Fatalf("the configuration has not exactly one %q:\n%s", r[0], cfg)
		}
		cfg = strings.Replace(cfg, r[0], r[1], 1)
	}
	writeFile(t, filepath.Join(etc, "haproxy.cfg"), cfg, 0o644)
	runHAProxy(t, haproxy, filepath.Join(etc, "haproxy.cfg"))

	dns.set(first.ip())
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true, ServerName: "site.test"},
		MaxIdleConnsPerHost: 16,
	}}
	fresh := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, ServerName: "site.test"},
		DisableKeepAlives: true,
	}}
	get := func(c *http.Client) error {
		req, err := http.NewRequest(http.MethodGet, "https://127.0.0.1:"+https+"/", nil)
		if err != nil {
			return err
		}
		req.Host = "site.test"
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || string(body) != "ok\n") {
			err = fmt.Errorf("%s: %q", resp.Status, body)
		}
		return err
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		err := get(fresh)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the site never answered: %v", err)
		}
	}

	// The load: clients that keep their connection to HAProxy and clients that open one per request. The latter
	// see every failure: net/http silently sends a GET again when a connection it reused closes.
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		requests atomic.Int64
		mu       sync.Mutex
		failures []string
	)
	for i := range 8 {
		c := client
		if i%2 == 1 {
			c = fresh
		}
		wg.Go(func() {
			for !stop.Load() {
				requests.Add(1)
				if err := get(c); err != nil {
					mu.Lock()
					failures = append(failures, fmt.Sprintf("%s %v", time.Now().Format("15:04:05.000"), err))
					mu.Unlock()
				}
			}
		})
	}
	t.Cleanup(func() {
		stop.Store(true)
		wg.Wait()
	})

	// The deploys: old and new answer to the name while the new one becomes healthy, then the old one stops
	// and leaves the name. Addresses come back, as Docker's do once a container is gone.
	ips := []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"}
	apps := []*testApp{first}
	time.Sleep(time.Second)
	for i := 1; i <= 5; i++ {
		old := apps[len(apps)-1]
		next := startApp(t, ips[i%len(ips)]+":"+port)
		apps = append(apps, next)
		dns.set(old.ip(), next.ip())
		time.Sleep(1500 * time.Millisecond) // bee2d waits for the new container's health check
		old.stop(t)
		dns.set(next.ip())
		time.Sleep(time.Second)
	}
	stop.Store(true)
	wg.Wait()

	t.Logf("%d requests; HAProxy's back end: %s", requests.Load(), backendStats(t, sock, "site_app_"+port))
	for i, a := range apps {
		if a.served.Load() == 0 {
			t.Errorf("container %d (%s) served no request", i, a.addr)
		}
	}
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed, the first ones:\n%s", len(failures), requests.Load(), strings.Join(failures[:min(len(failures), 10)], "\n"))
	}
}

// testApp is a container of the deployed application: a Go HTTP server whose requests take a little while,
// so that some are in flight when it is stopped.
type testApp struct {
	addr   string
	srv    *http.Server
	served atomic.Int64
	done   chan error
}

func startApp(t *testing.T, addr string) *testApp {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	a := &testApp{addr: ln.Addr().String(), done: make(chan error, 1)}
	a.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(10 * time.Millisecond)
		a.served.Add(1)
		io.WriteString(w, "ok\n")
	})}
	go func() { a.done <- a.srv.Serve(ln) }()
	t.Cleanup(func() { a.srv.Close() })
	return a
}

func (a *testApp) ip() string {
	host, _, _ := net.SplitHostPort(a.addr)
	return host
}

// stop is what the application does on SIGTERM: Shutdown closes the listener and the idle connections at
// once and returns when the requests in flight are answered.
func (a *testApp) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown of %s: %v", a.addr, err)
	}
	if err := <-a.done; err != http.ErrServerClosed {
		t.Errorf("serve on %s: %v", a.addr, err)
	}
}

// fakeDNS answers A queries for one name with the addresses the test sets, shuffled, as Docker's embedded DNS
// does for a name several containers answer to; AAAA queries get no record, other names NXDOMAIN.
type fakeDNS struct {
	conn net.PacketConn
	name string
	mu   sync.Mutex
	ips  []netip.Addr
}

func startFakeDNS(t *testing.T, name string) *fakeDNS {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &fakeDNS{conn: conn, name: name}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, from, err := conn.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := d.answer(buf[:n]); resp != nil {
				conn.WriteTo(resp, from)
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return d
}

func (d *fakeDNS) addr() string { return d.conn.LocalAddr().String() }

func (d *fakeDNS) set(ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ips = d.ips[:0]
	for _, ip := range ips {
		d.ips = append(d.ips, netip.MustParseAddr(ip))
	}
}

// answer is the response to the query q, nil for what is not a query with one question.
func (d *fakeDNS) answer(q []byte) []byte {
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return nil
	}
	var labels []string
	i := 12
	for {
		if i >= len(q) {
			return nil
		}
		n := int(q[i])
		i++
		if n == 0 {
			break
		}
		if n > 63 || i+n > len(q) {
			return nil
		}
		labels = append(labels, string(q[i:i+n]))
		i += n
	}
	if i+4 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i:])
	flags := uint16(0x8480) | uint16(q[2]&0x01)<<8 // a response, authoritative, recursion as asked and available
	var ips []netip.Addr
	switch {
	case !strings.EqualFold(strings.Join(labels, "."), d.name):
		flags |= 3 // NXDOMAIN
	case qtype == 1:
		d.mu.Lock()
		ips = append(ips, d.ips...)
		d.mu.Unlock()
		mrand.Shuffle(len(ips), func(i, j int) { ips[i], ips[j] = ips[j], ips[i] })
	}
	resp := append([]byte{}, q[:2]...)
	for _, v := range []uint16{flags, 1, uint16(len(ips)), 0, 0} {
		resp = binary.BigEndian.AppendUint16(resp, v)
	}
	resp = append(resp, q[12:i+4]...)
	for _, ip := range ips {
		resp = append(resp, 0xc0, 12) // the question's name
		resp = binary.BigEndian.AppendUint16(resp, 1)
		resp = binary.BigEndian.AppendUint16(resp, 1)
		resp = binary.BigEndian.AppendUint32(resp, 600)
		resp = binary.BigEndian.AppendUint16(resp, 4)
		resp = append(resp, ip.AsSlice()...)
	}
	return resp
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}

// runHAProxy runs HAProxy in the foreground until the test ends. When the test fails, its output is shown
// without the log lines of requests answered 200.
func runHAProxy(t *testing.T, haproxy, cfg string) {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(haproxy, "-db", "-f", cfg)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			var lines []string
			for l := range strings.Lines(out.String()) {
				if !strings.Contains(l, " 200 ") {
					lines = append(lines, l)
				}
			}
			t.Logf("haproxy:\n%s", strings.Join(lines, ""))
		}
	})
}

// backendStats is what HAProxy's stats say about a back end's retries and errors.
func backendStats(t *testing.T, sock, backend string) string {
	t.Helper()
	conn, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimPrefix(string(b), "# "), "\n")
	head := strings.Split(lines[0], ",")
	var stats []string
	for _, l := range lines[1:] {
		f := strings.Split(l, ",")
		if len(f) < len(head) || f[0] != backend {
			continue
		}
		var s []string
		for i, h := range head {
			switch h {
			case "svname", "status", "stot", "wretr", "wredis", "econ", "eresp", "hrsp_5xx", "addr":
				s = append(s, h+"="+f[i])
			}
		}
		stats = append(stats, strings.Join(s, " "))
	}
	return strings.Join(stats, "; ")
}
