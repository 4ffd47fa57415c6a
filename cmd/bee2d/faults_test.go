package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/backup"
)

// Fault tests: each injects one fault into a real engine, file system or process and asserts what bee2d
// promises when it happens.

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// bee2dBinary builds bee2d once for the tests that need a process of its own (to kill it).
func bee2dBinary(t *testing.T) string {
	t.Helper()
	binaryOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bee2d-bin")
		if err != nil {
			binaryErr = err
			return
		}
		binaryPath = filepath.Join(dir, "bee2d")
		if out, err := exec.Command("go", "build", "-o", binaryPath, ".").CombinedOutput(); err != nil {
			binaryErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binaryErr != nil {
		t.Fatal(binaryErr)
	}
	return binaryPath
}

// reloadMetric waits until bee2_config_last_reload_successful is want.
func (st *daemonStack) waitReloadMetric(want float64) {
	st.t.Helper()
	st.until(fmt.Sprintf("bee2_config_last_reload_successful = %v", want), func() error {
		got, ok := metric(st.t, st.listen, "bee2_config_last_reload_successful")
		if !ok || got != want {
			return fmt.Errorf("%v (present %v)", got, ok)
		}
		return nil
	})
}

// A settings file cut in half, emptied or deleted under a running daemon is rejected: the last good
// settings stay in force (a deleted file does not mean "no applications"), nothing on the engine is
// touched, the reload metric says 0 and the rejection is logged with the reason. A container removed by
// hand meanwhile is healed from the last good settings, and restoring the file converges to it.
func TestDaemonKeepsLastGoodSettings(t *testing.T) {
	st := newDaemonStack(t)
	port := freePort(t)
	web := func(greeting string) app { return app{name: "web", env: []string{"greeting: " + greeting}, port: port} }
	worker := app{name: "worker", env: []string{"index: 1"}}
	st.write(st.settings(web("v0"), worker))
	st.start()
	before := st.waitConverged()

	for i, c := range []struct {
		name  string
		fault func(good string)
		why   string // in the logged error
	}{
		// Cut mid-line inside the applications: a writer that died half-way through.
		{"truncated", func(good string) { st.write(good[:strings.Index(good, "    image:")+len("    ima")]) }, "settings.yml:"},
		{"emptied", func(string) { st.write("") }, "empty settings file"},
		{"deleted", func(string) {
			if err := os.Remove(st.file); err != nil {
				t.Fatal(err)
			}
		}, "no such file or directory"},
	} {
		t.Run(c.name, func(t *testing.T) {
			good := st.settings(web(fmt.Sprintf("v%d", i)), worker)
			rejected := len(logged(st.logs.String(), "settings rejected, keeping the last good settings"))
			st.proxy.Requests()
			c.fault(good)
			st.waitReloadMetric(0)
			entries := logged(st.logs.String(), "settings rejected, keeping the last good settings")
			if len(entries) != rejected+1 {
				t.Fatalf("%d rejections logged, want %d", len(entries), rejected+1)
			}
			if e := entries[len(entries)-1]; !strings.Contains(fmt.Sprint(e["error"]), c.why) || e["file"] != st.file {
				t.Errorf("rejection logged as %v; want the file and %q", e, c.why)
			}
			if w := testdocker.Writes(st.proxy.Requests()); len(w) > 0 {
				t.Errorf("the daemon made write calls after the settings were %s: %v", c.name, w)
			}
			if now := st.containers(); !sameContainers(before, now) {
				t.Errorf("containers changed: %v -> %v", before, now)
			}

			// The last good settings are in force: a container removed by hand comes back as they say,
			// and nothing else is removed.
			if err := st.cli.RemoveContainer(t.Context(), before[st.name("worker")].ID); err != nil {
				t.Fatal(err)
			}
			st.until("worker healed from the last good settings", func() error {
				c, ok := st.containers()[st.name("worker")]
				if !ok || !c.Running() || c.ID == before[st.name("worker")].ID {
					return errors.New("not back")
				}
				return nil
			})
			for _, w := range testdocker.Writes(st.proxy.Requests()) {
				if strings.HasPrefix(w, "DELETE ") {
					t.Errorf("the daemon removed something while the settings were %s: %s", c.name, w)
				}
			}
			if got := st.containers()[st.name("web")].ID; got != before[st.name("web")].ID {
				t.Error("web was replaced while the settings were bad")
			}

			st.write(good)
			st.waitReloadMetric(1)
			before = st.waitConverged()
			st.waitEnv(port, "GREETING", fmt.Sprintf("v%d", i))
		})
	}
}

// A cut event stream is reconnected; while it is down the daemon looks at the server at each reconnect
// attempt (events may have been missed), so a container removed while no events flow comes back, and
// once the stream is back, removals are healed through it again (the resync is an hour away).
func TestDaemonEventStreamCut(t *testing.T) {
	st := newDaemonStack(t)
	st.write(st.settings(app{name: "web"}, app{name: "worker"}))
	st.start()
	before := st.waitConverged()
	st.until("an event stream open", func() error {
		if st.proxy.EventStreams() == 0 {
			return errors.New("none")
		}
		return nil
	})

	st.proxy.Requests()
	st.proxy.CutEvents()
	// The daemon notices and tries again, and is refused.
	st.until("the daemon refused a new event stream", func() error {
		for _, r := range st.proxy.Requests() {
			if r == "GET /events" {
				return nil
			}
		}
		return errors.New("no attempt yet")
	})
	if len(logged(st.logs.String(), "event stream broken, reconnecting")) == 0 {
		t.Error("the broken stream was not logged")
	}
	web := st.name("web")
	if err := st.cli.RemoveContainer(t.Context(), before[web].ID); err != nil {
		t.Fatal(err)
	}
	after := st.waitConverged()
	if after[web].ID == before[web].ID {
		t.Fatal("web was not replaced")
	}
	if st.proxy.EventStreams() != 0 {
		t.Fatal("an event stream got through the cut")
	}

	st.proxy.RestoreEvents()
	st.until("the event stream back", func() error {
		if st.proxy.EventStreams() == 0 {
			return errors.New("none")
		}
		return nil
	})
	if err := st.cli.RemoveContainer(t.Context(), after[web].ID); err != nil {
		t.Fatal(err)
	}
	healed := st.waitConverged()
	if healed[web].ID == after[web].ID {
		t.Fatal("web was not replaced")
	}
	if healed[st.name("worker")].ID != before[st.name("worker")].ID {
		t.Error("worker was touched")
	}
}

// killStack is one application with a named volume and a published port on the machine's engine, reached
// through a proxy that can hold calls, for killing bee2d at a chosen point of a recreate.
type killStack struct {
	*daemonStack
	volume string
	port   int
	bin    string
}

func newKillStack(t *testing.T) *killStack {
	t.Helper()
	st := newDaemonStack(t)
	ks := &killStack{daemonStack: st, volume: st.prefix + "-data", port: freePort(t), bin: bee2dBinary(t)}
	testdocker.Cleanup(t, st.cli, st.prefix, ks.volume)
	return ks
}

// settings asks for web with greeting, the volume mounted at /data.
func (ks *killStack) settings(greeting string) string {
	return fmt.Sprintf(`servers:
  local: {docker: {host: %q}}
docker:
  prefix: %s
applications:
  web:
    server: local
    image: %s
    env: {greeting: %s, port: %d}
    ports: [%d]
    volumes: ["%s:/data"]
`, ks.proxy.Host, ks.prefix, ks.image, greeting, ks.port, ks.port, ks.volume)
}

// file reads /data/PATH through the running web container.
func (ks *killStack) volumeFile(path string) (string, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/file/data/%s", ks.port, path))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	return string(b), err
}

// killAtBoth runs bee2d with args as a process of its own, waits until the proxy holds its first call that
// matches method and path, and kills it with SIGKILL while that call is held: bee2d dies just before the
// engine hears of it. It returns the call held. For a step of two concurrent calls, alsoPath names the
// other's POST: it is held as well, and bee2d is killed only once both are held, so that neither reaches
// the engine.
func (ks *killStack) killAtBoth(method, path, alsoPath string, args ...string) string {
	var also *testdocker.Hold
	if alsoPath != "" {
		also = ks.proxy.Hold(http.MethodPost, alsoPath)
	}
	return ks.killWhenHeld(ks.proxy.Hold(method, path), also, method+" "+path, args...)
}

// killWhenHeld is killAtBoth with the holds made by the caller (HoldQuery, say); it releases them.
func (ks *killStack) killWhenHeld(hold, also *testdocker.Hold, what string, args ...string) string {
	t := ks.t
	t.Helper()
	defer ks.proxy.Release(hold)
	if also != nil {
		defer ks.proxy.Release(also)
	}
	cmd := exec.Command(ks.bin, args...)
	cmd.Stdout, cmd.Stderr = ks.logs, ks.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var held string
	select {
	case held = <-hold.Held():
	case err := <-exited:
		t.Fatalf("bee2d %v exited (%v) before calling %s", args, err, what)
	case <-time.After(eventually):
		cmd.Process.Kill()
		t.Fatalf("bee2d %v never called %s", args, what)
	}
	if also != nil {
		select {
		case <-also.Held():
		case <-time.After(eventually):
			cmd.Process.Kill()
			t.Fatalf("bee2d %v never called the other call held with %s", args, what)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	var ee *exec.ExitError
	if err := <-exited; !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("bee2d did not die of SIGKILL: %v", err)
	}
	// Released before the proxy has seen the connection close, the call would still reach the engine.
	for _, h := range []*testdocker.Hold{hold, also} {
		if h == nil {
			continue
		}
		select {
		case <-h.Dropped():
		case <-time.After(eventually):
			t.Fatalf("the proxy never saw bee2d's connection close during %s", held)
		}
	}
	return held
}

// SIGKILL at each step of a recreate (rename aside, stop while creating, start, remove the old one), by a one-shot
// apply, by the daemon and by Bee2's rebuild: the next apply, daemon or Bee2 build converges to exactly one
// container under the final name, removes the container left aside, and the named volume keeps its data.
func TestKilledDuringRecreate(t *testing.T) {
	const (
		rename = "/containers/[^/]+/rename"
		stop   = "/containers/[^/]+/stop"
		create = "/containers/create"
		start  = "/containers/[^/]+/start"
		remove = "/containers/[^/]+"
	)
	daemon := []string{"daemon", "--listen", "", "--resync", "1h", "--log-format", "json"}
	rebuild := []string{"-d", "local:rebuild:web"}

	// One stack for all the cases, one after the other: each starts from the converged state the one
	// before left (cases in parallel only make a loaded engine slower).
	ks := newKillStack(t)
	ks.write(ks.settings("v0"))
	if code, out, errOut := bee2dRun(t, "apply", "-c", ks.file); code != 0 {
		t.Fatalf("apply = %d\n%s%s", code, out, errOut)
	}
	ks.waitConverged()
	ks.waitEnv(ks.port, "GREETING", "v0")
	req, err := http.NewRequest(http.MethodPut, fmt.Sprintf("http://127.0.0.1:%d/file/data/keep", ks.port), strings.NewReader("precious"))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /file/data/keep: %d", resp.StatusCode)
	}
	version := 0
	for _, c := range []struct {
		name, method, path string
		// cmd is the command killed; the settings change first unless it rebuilds.
		cmd []string
		// then is what must converge afterwards: apply, daemon, or Bee2's build.
		then string
		// left is what the kill leaves: the final name's state ("" for missing) and whether a container
		// is aside.
		left  string
		aside bool
		// also is a call held besides the one the kill waits for, so that it never reaches the engine.
		also string
	}{
		{"apply before rename", http.MethodPost, rename, []string{"apply"}, "daemon", "running", false, ""},
		// The old container stops while the new one is created: cut before either, the old one still runs
		// aside, holding the port its replacement needs.
		{"apply after rename", http.MethodPost, stop, []string{"apply"}, "apply", "", true, create},
		{"apply during stop", http.MethodPost, create, []string{"apply"}, "apply", "", true, ""},
		{"apply after create", http.MethodPost, start, []string{"apply"}, "apply", "created", true, ""},
		{"apply after start", http.MethodDelete, remove, []string{"apply"}, "daemon", "running", true, ""},
		{"daemon after rename", http.MethodPost, create, daemon, "daemon", "", true, ""},
		{"rebuild after create", http.MethodPost, start, rebuild, "build", "created", true, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			old := ks.containers()[ks.name("web")]
			if c.cmd[0] != "-d" {
				version++
				ks.write(ks.settings(fmt.Sprintf("v%d", version)))
			}
			greeting := fmt.Sprintf("v%d", version)
			held := ks.killAtBoth(c.method, c.path, c.also, append(slices.Clone(c.cmd), "-c", ks.file)...)
			if c.method == http.MethodDelete && !strings.Contains(held, old.ID) {
				t.Fatalf("held %s; want the removal of the old container %s", held, old.ID[:12])
			}

			// The kill landed where it should: the engine shows the step half done.
			var aside []string
			final := ""
			for name, ct := range ks.containers() {
				switch {
				case name == ks.name("web"):
					final = ct.State
				case strings.HasPrefix(name, ks.name("web")+"-bee2d-old-"):
					aside = append(aside, name)
				default:
					t.Errorf("unexpected container %s", name)
				}
			}
			if final != c.left || (len(aside) == 1) != c.aside || len(aside) > 1 {
				t.Fatalf("after the kill: %s is %q, aside %v; want %q, aside %v", ks.name("web"), final, aside, c.left, c.aside)
			}

			switch c.then {
			case "apply":
				if code, out, errOut := bee2dRun(t, "apply", "-c", ks.file); code != 0 {
					t.Fatalf("apply after the kill = %d\n%s%s", code, out, errOut)
				}
			case "build":
				if code, out, errOut := bee2dRun(t, "-c", ks.file, "-d", "local:build"); code != 0 {
					t.Fatalf("-d local:build after the kill = %d\n%s%s", code, out, errOut)
				}
			case "daemon":
				runDaemon(t, ks.file)
			}
			now := ks.waitConverged()
			if len(now) != 1 {
				t.Errorf("containers: %v", keys(now))
			}
			if now[ks.name("web")].ID == old.ID {
				t.Error("web was not replaced")
			}
			ks.waitEnv(ks.port, "GREETING", greeting)
			if got, err := ks.volumeFile("keep"); err != nil || got != "precious" {
				t.Errorf("the volume's file reads %q, %v; want \"precious\"", got, err)
			}
		})
	}
}

// engineStack is a daemonStack on an engine of the test's own, which the test can stop and start again,
// reached through a proxy that can hold calls so that the engine stops at a known point of a converge.
func engineStack(t *testing.T) (*daemonStack, *testdocker.Engine) {
	t.Helper()
	e := testdocker.StartEngine(t, nil)
	cli := e.Client(t)
	st := &daemonStack{t: t, cli: cli, image: testdocker.Sleeper(t, cli), prefix: testdocker.UniquePrefix(t),
		proxy: testdocker.StartProxyTo(t, e.Host), file: filepath.Join(t.TempDir(), "settings.yml"), logs: &lockedBuffer{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", st.logs.String())
		}
	})
	return st, e
}

// noAside fails the test if a container of the stack is left under a name that is not its final one.
func (st *daemonStack) noAside() {
	st.t.Helper()
	want := st.desired()
	for name := range st.containers() {
		if _, ok := want[name]; !ok {
			st.t.Errorf("container %s left over", name)
		}
	}
}

// The engine stops in the middle of a converge, by a one-shot apply (between creating containers and
// starting them) and by the daemon (in the middle of a dozen recreates, the old containers renamed aside):
// the apply fails, the daemon says the server is down; once the engine is back, the next apply and the
// daemon converge to one container per application under its final name, nothing left aside.
func TestEngineRestartMidConverge(t *testing.T) {
	st, engine := engineStack(t)
	apps := func(gen int) []app {
		var out []app
		for i := range 12 {
			out = append(out, app{name: fmt.Sprintf("a%02d", i), env: []string{fmt.Sprintf("index: %d", i), fmt.Sprintf("gen: %d", gen)}})
		}
		return out
	}
	st.write(st.settings(apps(1)...))

	t.Run("apply", func(t *testing.T) {
		st.t = t
		hold := st.proxy.Hold(http.MethodPost, "/containers/[^/]+/start")
		done := make(chan int, 1)
		var out, errOut strings.Builder
		go func() { done <- run(t.Context(), []string{"apply", "-c", st.file}, &out, &errOut) }()
		select {
		case <-hold.Held():
		case <-time.After(eventually):
			t.Fatal("apply never started a container")
		}
		if err := engine.Stop(); err != nil {
			t.Fatal(err)
		}
		st.proxy.Release(hold)
		if code := <-done; code != exitError {
			t.Fatalf("apply with the engine stopped = %d, want %d\n%s%s", code, exitError, out.String(), errOut.String())
		}
		if err := engine.Start(); err != nil {
			t.Fatal(err)
		}
		if code, out, errOut := bee2dRun(t, "apply", "-c", st.file); code != 0 {
			t.Fatalf("apply once the engine is back = %d\n%s%s", code, out, errOut)
		}
		if err := st.converged(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("daemon", func(t *testing.T) {
		st.t = t
		st.write(st.settings(apps(2)...))
		hold := st.proxy.Hold(http.MethodPost, "/containers/create")
		// Not ready until its first pass is done, which the hold keeps from ending.
		st.listen, st.logs = runDaemon(t, st.file)
		up := func(want float64) func() error {
			return func() error {
				if v, ok := metric(t, st.listen, `bee2_server_up{server="local"}`); !ok || v != want {
					return fmt.Errorf("bee2_server_up = %v (present %v)", v, ok)
				}
				return nil
			}
		}
		select {
		case <-hold.Held():
		case <-time.After(eventually):
			t.Fatal("the daemon never created a container")
		}
		if err := engine.Stop(); err != nil {
			t.Fatal(err)
		}
		st.proxy.Release(hold)
		st.until("bee2_server_up 0 while the engine is stopped", up(0))
		if err := engine.Start(); err != nil {
			t.Fatal(err)
		}
		st.waitConverged()
		st.until("bee2_server_up 1 once the engine is back", up(1))
		st.noAside()
	})
}

// needRoot skips a test that needs root and a tool, or fails it under CI=true.
func needRoot(t *testing.T, tools ...string) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "needs root"
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			why = tool + " not found"
		}
	}
	if why != "" {
		testdocker.Need(t, why)
	}
}

// A scheduled backup in the daemon into a storage directory that is full, then read-only: the failure is
// logged naming the directory and why, counted on /metrics, the older archive stays whole, no partial file
// is left, the application stopped for the backup runs again, the daemon goes on converging, and it does
// not retry the backup at every pass (which would stop the application each time).
func TestDaemonBackupStorageFaults(t *testing.T) {
	needRoot(t, "mount", "umount")
	st := newStack(t)
	storage := filepath.Join(st.dir, "backups")
	if err := os.MkdirAll(storage, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", storage).CombinedOutput(); err != nil {
		testdocker.Need(t, fmt.Sprintf("cannot mount a tmpfs: %v: %s", err, out))
	}
	t.Cleanup(func() { exec.Command("umount", "-l", storage).Run() })
	st.write(strings.Replace(st.read(), "  prefix: "+st.prefix, "  prefix: "+st.prefix+`
  backup:
    local:
      storage_dir: `+storage+`
      volumes: [`+st.volume+`]
      schedule: "@every 1s"
      compression: zstd
      stop: [static]`, 1))
	st.mustApply()
	if code, out, errOut := bee2dRun(t, "backup", "-c", st.settings, "local"); code != 0 {
		t.Fatalf("backup = %d\n%s%s", code, out, errOut)
	}
	dir := filepath.Join(storage, "local")
	older, err := backup.List(dir)
	if err != nil || len(older) != 1 {
		t.Fatalf("archives %v, %v", older, err)
	}
	files := func() []string { return dirNames(t, dir) }
	want := files()

	for _, c := range []struct {
		name  string
		fault func()
		why   string
	}{
		{"full", func() {
			// Fill the file system: a file of zeros until it says no.
			f, err := os.Create(filepath.Join(storage, "filler"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			buf := make([]byte, 64<<10)
			for {
				if _, err := f.Write(buf); err != nil {
					if !errors.Is(err, syscall.ENOSPC) {
						t.Fatal(err)
					}
					break
				}
			}
		}, "storage directory " + dir + " is full"},
		{"read-only", func() {
			if err := os.Remove(filepath.Join(storage, "filler")); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("mount", "-o", "remount,ro", storage).CombinedOutput(); err != nil {
				t.Fatalf("remount read-only: %v: %s", err, out)
			}
			t.Cleanup(func() { exec.Command("mount", "-o", "remount,rw", storage).Run() })
		}, "storage directory " + dir + " is read-only"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.fault()
			addr, logs := runDaemon(t, st.settings)
			failures := func() float64 {
				v, _ := metric(t, addr, `bee2_backup_runs_total{result="failure",server="local"}`)
				return v
			}
			waitUntil(t, "a failed scheduled backup", func() bool { return failures() >= 1 })
			failed := 0
			for _, line := range strings.Split(logs.String(), "\n") {
				if strings.Contains(line, "scheduled backup failed") {
					failed++
					if !strings.Contains(line, c.why) {
						t.Errorf("logged as %s; want %q", line, c.why)
					}
				}
			}
			if failed == 0 {
				t.Errorf("no failure logged:\n%s", logs)
			}
			waitUntil(t, "static runs again after the failed backup", func() bool {
				return st.containers()[st.name("static")].Running()
			})
			// A pass after the failure (a container to heal) converges and does not try the backup again.
			front := st.containers()[st.name("front")]
			if err := st.cli.RemoveContainer(t.Context(), front.ID); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "front healed", func() bool {
				c := st.containers()[st.name("front")]
				return c.ID != front.ID && c.Running()
			})
			if n := failures(); n != 1 {
				t.Errorf("%v failed backups; want 1: a failed backup is retried after a delay, not at each pass", n)
			}
			if v, _ := metric(t, addr, `bee2_backup_runs_total{result="success",server="local"}`); v != 0 {
				t.Errorf("%v successful backups", v)
			}
			if got := files(); !slices.Equal(got, want) {
				t.Errorf("storage directory holds %v; want %v (no partial file)", got, want)
			}
			list, err := backup.List(dir)
			if err != nil || len(list) != 1 || list[0].Name != older[0].Name {
				t.Fatalf("archives %v, %v", list, err)
			}
			if _, err := backup.Verify(list[0], nil); err != nil {
				t.Errorf("the older archive: %v", err)
			}
		})
	}
}
