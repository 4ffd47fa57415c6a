package config

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The watcher fires for the settings file, a secret (also one created after the start, or replaced by a
// rename), and an env_file beside the settings, and not for an unrelated file beside the settings.
func TestWatcherFollowsSecrets(t *testing.T) {
	sd := newSecretDir(t)
	sd.file("secrets/pw", "one", 0o600)
	sd.file("app.env", "A=1\n", 0o600)
	file := sd.file("settings.yml", secretApp+"    env: {pw: {secret: pw}}\n    env_file: app.env\n", 0o600)
	s, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	fired := make(chan struct{}, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w, err := NewWatcher(ctx, file, 10*time.Millisecond, func() { fired <- struct{}{} })
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Follow(s); err != nil {
		t.Fatal(err)
	}
	// wait reports whether onChange ran within a bound that only keeps a broken watcher from hanging the
	// test; nothing is asserted about how soon.
	wait := func() bool {
		select {
		case <-fired:
			return true
		case <-time.After(30 * time.Second):
			return false
		}
	}
	drain := func() {
		for {
			select {
			case <-fired:
			default:
				return
			}
		}
	}
	steps := []struct {
		what string
		do   func()
	}{
		{"secret written in place", func() { sd.file("secrets/pw", "two", 0o600) }},
		{"secret replaced by rename", func() {
			tmp := sd.file("secrets/.pw.tmp", "three", 0o600)
			if err := os.Rename(tmp, filepath.Join(sd.root, "secrets", "pw")); err != nil {
				t.Fatal(err)
			}
		}},
		{"new secret", func() { sd.file("secrets/new", "x", 0o600) }},
		{"env_file beside the settings", func() { sd.file("app.env", "A=2\n", 0o600) }},
		{"settings file", func() { sd.file("settings.yml", secretApp+"    env_file: app.env\n", 0o600) }},
	}
	for _, st := range steps {
		drain()
		st.do()
		if !wait() {
			t.Errorf("%s: no change reported", st.what)
		}
	}
	// Other files beside the settings do not count; every entry of the secrets directory does.
	for name, want := range map[string]bool{
		filepath.Join(sd.root, "notes.txt"):        false,
		filepath.Join(sd.root, "settings.yml"):     true,
		filepath.Join(sd.root, "app.env"):          true,
		filepath.Join(sd.root, "secrets", "any"):   true,
		filepath.Join(sd.root, "other", "app.env"): false,
	} {
		if got := w.counts(name, "settings.yml"); got != want {
			t.Errorf("an event on %s counts: %v, want %v", name, got, want)
		}
	}
}
