package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// Reload (what SIGHUP, the resync and the watcher call) loads the settings again when a secret or an
// env_file changes although the settings file did not; unchanged files change nothing; a secret that
// disappears is a rejected reload that keeps the last good settings. Warnings are logged once per load.
func TestReloadFollowsSecretFiles(t *testing.T) {
	d, w, logs := testDaemon(t, twoApps, &connector{eng: newFakeEngine()}, nil)
	dir := filepath.Dir(d.Path)
	write := func(rel, content string, mode os.FileMode) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write("secrets/pw", "one\n", 0o600)
	write("app.env", "TOKEN=t1\n", 0o644)
	write("settings.yml", strings.Replace(twoApps, "env: {version: 1}", "env: {version: 1, pw: {secret: pw}}\n    env_file: app.env", 1), 0o600)
	if !d.Reload() {
		t.Fatal("settings with secrets not loaded")
	}
	warned := func() int {
		return logs.FilterMessage("file readable by group or others").FilterField(zap.String("file", filepath.Join(dir, "app.env"))).Len()
	}
	if warned() != 1 {
		t.Errorf("app.env (0644) warned %d times at its load, want once", warned())
	}
	hash := func() string {
		t.Helper()
		des, err := reconcile.DesireFrom(d.Settings(), "web1", reconcile.Sources{Digest: func(string) (string, error) { return "0000000000000000", nil }, Head: func(string, string) (string, error) { return "", nil }})
		if err != nil {
			t.Fatal(err)
		}
		return des.Containers[0].Hash
	}
	before := hash()
	for range 3 {
		if d.Reload() {
			t.Fatal("nothing changed, yet the settings were loaded again")
		}
	}
	if warned() != 1 {
		t.Errorf("a reload that changed nothing logged the warning again (%d)", warned())
	}
	<-w.wake // the load above woke the worker; drain it

	write("secrets/pw", "two\n", 0o600)
	if !d.Reload() {
		t.Fatal("a new secret value was not loaded")
	}
	if hash() == before {
		t.Error("the new secret did not change the spec hash")
	}
	if len(w.wake) != 1 {
		t.Error("a new secret did not wake the worker")
	}
	write("app.env", "TOKEN=t2\n", 0o600)
	if !d.Reload() {
		t.Error("a changed env_file was not loaded")
	}
	good := d.Settings()
	if err := os.Remove(filepath.Join(dir, "secrets", "pw")); err != nil {
		t.Fatal(err)
	}
	if d.Reload() || d.Settings() != good {
		t.Error("settings whose secret is gone replaced the last good ones")
	}
	if n := logs.FilterMessage("settings rejected, keeping the last good settings").Len(); n != 1 {
		t.Errorf("the missing secret was logged %d times, want once", n)
	}
	for _, e := range logs.All() {
		if s := fmt.Sprint(e.Message, e.ContextMap()); strings.Contains(s, "two") || strings.Contains(s, "t2") {
			t.Errorf("a log entry shows a secret: %s", s)
		}
	}
}

// TestInsecureWarnedOncePerStart: the worker warns about a plain-TCP server at its first connection
// attempt, not at every pass.
func TestInsecureWarnedOncePerStart(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "dockerfiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "settings.yml")
	if err := os.WriteFile(path, []byte("servers:\n  lab:\n    docker: {host: \"tcp://10.0.0.9:2375\", insecure: true}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	d := &Daemon{Path: path, Log: zap.New(core), Connect: func(context.Context, dockerx.Endpoint) (Conn, error) {
		return nil, errors.New("down")
	}}
	if err := d.LoadInitial(); err != nil {
		t.Fatal(err)
	}
	d.stop, d.work = t.Context(), t.Context()
	d.workers = map[string]*worker{}
	w := d.newWorker("lab")
	t.Cleanup(w.cancel)
	for range 3 {
		if _, err := w.connection(d.Settings()); err == nil {
			t.Fatal("connected to nothing")
		}
	}
	warned := logs.FilterMessageSnippet("without tls").FilterField(zap.String("server", "lab")).All()
	if len(warned) != 1 || !strings.Contains(warned[0].ContextMap()["host"].(string), "10.0.0.9:2375") {
		t.Errorf("warned %d times, want once with the host: %+v", len(warned), warned)
	}
}
