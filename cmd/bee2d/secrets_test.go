package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/pkg/labels"
)

// secretText is a distinctive value that can be searched for in everything bee2d prints.
func secretText(t *testing.T, what string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return what + "-" + hex.EncodeToString(b)
}

// inspect asks the engine for a container as `docker inspect` does and returns its labels and env.
func (st *daemonStack) inspect(name string) (map[string]string, []string) {
	st.t.Helper()
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); strings.HasPrefix(h, "unix://") {
		sock = strings.TrimPrefix(h, "unix://")
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://docker/containers/" + name + "/json")
	if err != nil {
		st.t.Fatal(err)
	}
	defer resp.Body.Close()
	var c struct {
		Config struct {
			Labels map[string]string
			Env    []string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
		st.t.Fatalf("inspect %s: %v", name, err)
	}
	return c.Config.Labels, c.Config.Env
}

// TestSecretsNeverShown runs plan, apply, a failing apply and the daemon with secret values, and searches
// everything they print or log, /metrics, and the containers' labels for the values (and for the unkeyed
// hash a label could have given away): nothing may show them, while the containers get them.
func TestSecretsNeverShown(t *testing.T) {
	st := newDaemonStack(t)
	dir := filepath.Dir(st.file)
	port := freePort(t)
	password, token := secretText(t, "pw"), secretText(t, "tok")
	var all []string // secret values used so far
	var seen strings.Builder
	writeSecrets := func(pw, tok string) {
		t.Helper()
		all = append(all, pw, tok)
		if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "secrets", "db_password"), []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		// Group-readable on purpose: every command must warn about it.
		if err := os.WriteFile(filepath.Join(dir, "app.env"), []byte("# the API token\nAPI_TOKEN="+tok+"\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(dir, "app.env"), 0o640)
	}
	settings := func(image string, publish int) string {
		return fmt.Sprintf(`servers:
  local: {docker: {host: %q}}
docker:
  prefix: %s
applications:
  web:
    server: local
    image: %s
    env: {greeting: hello, port: %d, db_password: {secret: db_password}}
    env_file: app.env
    ports: [%d]
`, st.proxy.Host, st.prefix, image, port, publish)
	}
	run := func(args ...string) (int, string) {
		t.Helper()
		code, out := runCmd(t, args...)
		fmt.Fprintf(&seen, "--- bee2d %s (exit %d)\n%s", strings.Join(args, " "), code, out)
		return code, out
	}
	warnsAboutEnvFile := func(what, out string) {
		t.Helper()
		if !strings.Contains(out, "warning: "+filepath.Join(dir, "app.env")+": readable by its group (mode 0640)") {
			t.Errorf("%s does not warn about the group-readable env_file:\n%s", what, out)
		}
	}
	labels := func() {
		t.Helper()
		l, env := st.inspect(st.name("web"))
		b, _ := json.Marshal(l)
		fmt.Fprintf(&seen, "--- labels\n%s\n", b)
		if l[labels.HashScheme] != "2" {
			t.Errorf("hash scheme label %q, want 2", l[labels.HashScheme])
		}
		// The engine has the value: it is the container's env, where it belongs.
		if !strings.Contains(strings.Join(env, "\n"), "DB_PASSWORD="+all[len(all)-2]) {
			t.Errorf("the container's env lacks the current secret")
		}
	}

	writeSecrets(password, token)
	st.write(settings(st.image, port))
	os.Chmod(st.file, 0o600)

	code, out := run("validate", "-c", st.file)
	if code != 0 {
		t.Fatalf("validate: exit %d\n%s", code, out)
	}
	warnsAboutEnvFile("validate", out)
	if !strings.Contains(out, "made "+filepath.Join(dir, "secrets", ".hash-key")) {
		t.Errorf("validate does not say it made the hash key:\n%s", out)
	}

	code, out = run("plan", "-c", st.file)
	if code != 0 || !strings.Contains(out, "create container "+st.name("web")) {
		t.Fatalf("plan: exit %d\n%s", code, out)
	}
	warnsAboutEnvFile("plan", out)

	code, out = run("apply", "-c", st.file)
	if code != 0 {
		t.Fatalf("apply: exit %d\n%s", code, out)
	}
	warnsAboutEnvFile("apply", out)
	st.waitEnv(port, "DB_PASSWORD", password)
	st.waitEnv(port, "API_TOKEN", token)
	labels()

	// A new password: plan names the key as secret, never a value.
	password2 := secretText(t, "pw")
	writeSecrets(password2, token)
	code, out = run("plan", "-c", st.file)
	if code != 0 || !strings.Contains(out, "recreate container "+st.name("web")+": env DB_PASSWORD (secret) changed") {
		t.Errorf("plan after a new secret: exit %d\n%s", code, out)
	}

	// Failing applies with the new secret, whose errors must not show it either: the new container's
	// host port is taken (it is created with the secret, cannot start, and the old one comes back), then
	// its image cannot be had (no registry).
	busy := freePort(t)
	ln, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", busy))
	if err != nil {
		t.Fatal(err)
	}
	st.write(settings(st.image, busy))
	code, out = run("apply", "-c", st.file)
	ln.Close()
	if code != 1 || !strings.Contains(out, "action failed") || !strings.Contains(out, "start container") {
		t.Errorf("apply onto a taken port: exit %d, want 1 with the start failing\n%s", code, out)
	}
	st.waitEnv(port, "DB_PASSWORD", password)
	st.write(settings("bee2d-test-no-such-image:"+strings.ToLower(secretText(t, "x")), port))
	code, out = run("apply", "-c", st.file)
	if code != 1 || !strings.Contains(out, "No such image") {
		t.Errorf("apply of a missing image: exit %d, want 1 with the create failing\n%s", code, out)
	}
	st.waitEnv(port, "DB_PASSWORD", password)

	// The daemon: it converges the new secret, then follows a change of the secret file.
	st.write(settings(st.image, port))
	st.start()
	st.waitEnv(port, "DB_PASSWORD", password2)
	password3 := secretText(t, "pw")
	writeSecrets(password3, token)
	st.waitEnv(port, "DB_PASSWORD", password3)
	st.waitConverged()
	labels()
	if _, body := st.get("/metrics"); !strings.Contains(body, "bee2_config_last_reload_successful 1") {
		t.Errorf("/metrics:\n%s", body)
	} else {
		fmt.Fprintf(&seen, "--- /metrics\n%s", body)
	}
	if n := len(logged(st.logs.String(), "file readable by group or others")); n < 1 {
		t.Error("the daemon did not log the group-readable env_file")
	}
	fmt.Fprintf(&seen, "--- daemon log\n%s", st.logs.String())

	text := seen.String()
	for _, v := range all {
		if strings.Contains(text, v) {
			t.Errorf("secret %s shows in bee2d's output, logs, /metrics or labels", v)
		}
		for _, key := range []string{"DB_PASSWORD", "API_TOKEN"} {
			sum := sha256.Sum256([]byte(key + "\x00" + v))
			if strings.Contains(text, hex.EncodeToString(sum[:8])) {
				t.Errorf("the unkeyed hash of %s=%s shows", key, v)
			}
		}
	}
	if t.Failed() {
		t.Logf("searched:\n%s", text)
	}
}
