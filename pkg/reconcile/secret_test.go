package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/labels"
)

// secretSettings writes settings with one application whose DB_PASSWORD is a secret file (or, with
// plain, a value in the settings) into dir, and loads them.
func secretSettings(t *testing.T, dir, password string, plain bool) *config.Settings {
	t.Helper()
	env := "{user: app, db_password: {secret: db_password}}"
	if plain {
		env = "{user: app, db_password: " + password + "}"
	}
	yml := "servers: {web1: {}}\napplications:\n  db:\n    server: web1\n    image: postgres:16\n    env: " + env + "\n"
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "db_password"), []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "settings.yml")
	if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func desireDB(t *testing.T, s *config.Settings) *Container {
	t.Helper()
	d, err := DesireFrom(s, "web1", Sources{Digest: fakeDigest(""), Head: fakeHead("")})
	if err != nil {
		t.Fatal(err)
	}
	return d.Containers[0]
}

// scheme1Hash is the spec hash as scheme 1 defines it, written out again here so that a change to the
// code cannot move both sides: sha256 of the digest's JSON, env values as the first 8 bytes of
// sha256(key NUL value) in hex.
func scheme1Hash(t *testing.T, c *Container) string {
	t.Helper()
	env := map[string]string{}
	for _, kv := range c.Env {
		k, v, _ := strings.Cut(kv, "=")
		sum := sha256.Sum256([]byte(k + "\x00" + v))
		env[k] = hex.EncodeToString(sum[:8])
	}
	// Fields in the order scheme 1 writes them; this spec has no command, binds or ports.
	b, err := json.Marshal(struct {
		Image   string            `json:"image"`
		Env     map[string]string `json:"env"`
		Restart string            `json:"restart"`
		Network string            `json:"network"`
		Aliases []string          `json:"aliases"`
	}{c.Image, env, c.RestartPolicy, c.Network, c.Aliases})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// A spec without secret values hashes exactly as under scheme 1 and is labelled 1, so upgrading bee2d
// recreates nothing and an older bee2d still recognises the container.
func TestPlainSpecKeepsScheme1(t *testing.T) {
	s := secretSettings(t, t.TempDir(), "hunter2", true)
	c := desireDB(t, s)
	if got := c.Labels[labels.HashScheme]; got != "1" {
		t.Errorf("hash scheme label %q, want 1", got)
	}
	if want := scheme1Hash(t, c); c.Hash != want {
		t.Errorf("spec hash %s, scheme 1 gives %s", c.Hash, want)
	}
	// The live container of an older bee2d (scheme 1, same spec) is left as it is.
	snap := liveFrom(&Desired{Server: "web1", Prefix: "bee2", Network: c.Network, Containers: []*Container{c}})
	if p := Diff(&Desired{Server: "web1", Prefix: "bee2", Network: c.Network, Containers: []*Container{c}}, snap, Options{}); !p.Empty() {
		t.Errorf("an unchanged scheme-1 container is acted on:\n%s", p)
	}
}

// A secret value is hashed with the installation's key: the labels hold neither the value nor its unkeyed
// hash (which a short password could be guessed from), a new value still changes the spec hash and the
// plan names the key as secret, and the same value under the same key keeps its hash.
func TestSecretSpecHash(t *testing.T) {
	dir := t.TempDir()
	const password = "hunter2"
	s := secretSettings(t, dir, password, false)
	c := desireDB(t, s)
	if got := c.Labels[labels.HashScheme]; got != "2" {
		t.Errorf("hash scheme label %q, want 2", got)
	}
	if !strings.Contains(strings.Join(c.Env, "\n"), "DB_PASSWORD="+password) {
		t.Fatalf("the container's env lacks the secret: the value must reach the container")
	}
	unkeyed := valueHash("DB_PASSWORD", password)
	plainSum := sha256.Sum256([]byte(password))
	for k, v := range c.Labels {
		for _, leak := range []string{password, unkeyed, hex.EncodeToString(plainSum[:])[:16]} {
			if strings.Contains(v, leak) {
				t.Errorf("label %s holds %q: %s", k, leak, v)
			}
		}
	}
	if !strings.HasPrefix(c.Digest.Env["DB_PASSWORD"], secretHashPrefix) {
		t.Errorf("the digest of DB_PASSWORD is %q, not a keyed hash", c.Digest.Env["DB_PASSWORD"])
	}
	if c.Digest.Env["USER"] != valueHash("USER", "app") {
		t.Errorf("a plain value next to a secret is hashed differently: %q", c.Digest.Env["USER"])
	}

	again := desireDB(t, secretSettings(t, dir, password, false))
	if again.Hash != c.Hash {
		t.Error("the same secret under the same key hashes differently: every load would recreate")
	}
	live := liveFrom(&Desired{Server: "web1", Prefix: "bee2", Network: c.Network, Containers: []*Container{c}})

	changed := desireDB(t, secretSettings(t, dir, "hunter3", false))
	if changed.Hash == c.Hash {
		t.Fatal("a new secret value leaves the spec hash as it was: the container would keep the old one")
	}
	p := Diff(&Desired{Server: "web1", Prefix: "bee2", Network: c.Network, Containers: []*Container{changed}}, live, Options{})
	if got, want := p.String(), "server web1: 1 action\n  ~ recreate container bee2-app-db: env DB_PASSWORD (secret) changed\n"; got != want {
		t.Errorf("plan\n got %q\nwant %q", got, want)
	}

	other := t.TempDir()
	if got := desireDB(t, secretSettings(t, other, password, false)); got.Hash == c.Hash {
		t.Error("two installations with their own keys give the same hash for the same secret")
	}

	// A value moved out of the settings into a secret file is recreated once, so no label keeps its
	// unkeyed hash.
	plainLive := desireDB(t, secretSettings(t, t.TempDir(), password, true))
	snap := liveFrom(&Desired{Server: "web1", Prefix: "bee2", Network: c.Network, Containers: []*Container{plainLive}})
	p = Diff(&Desired{Server: "web1", Prefix: "bee2", Network: c.Network, Containers: []*Container{c}}, snap, Options{})
	if got, want := p.String(), "server web1: 1 action\n  ~ recreate container bee2-app-db: env DB_PASSWORD (secret) changed\n"; got != want {
		t.Errorf("plan\n got %q\nwant %q", got, want)
	}
}

// Settings with secret values but no hash key (made without config.Load) are refused rather than hashed
// without a key.
func TestSecretWithoutKeyRefused(t *testing.T) {
	s := secretSettings(t, t.TempDir(), "hunter2", false)
	// A copy without the unexported key: only config can set it.
	var stripped config.Settings
	stripped.Servers, stripped.Applications, stripped.Docker, stripped.File, stripped.Dir = s.Servers, s.Applications, s.Docker, s.File, s.Dir
	if _, err := DesireFrom(&stripped, "web1", Sources{Digest: fakeDigest(""), Head: fakeHead("")}); err == nil ||
		!strings.Contains(err.Error(), "secret env values but no hash key") {
		t.Errorf("got %v", err)
	}
}
