package dockerfiles

import (
	"fmt"
	"github.com/bee2d/bee2d/internal/testdocker"

	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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
			"\n    retries 3\n",
			"\n    option redispatch 1\n",
			"\n    retry-on conn-failure empty-response\n",
			"\n    http-request disable-l7-retry unless METH_GET || METH_OPTIONS\n",
			"\n    server-template app 4 ",
			" check inter 1s fall 1 rise 1\n",
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
