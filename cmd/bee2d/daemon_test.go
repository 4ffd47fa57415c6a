package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/daemon"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/gitx"
	"github.com/bee2d/bee2d/pkg/labels"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// eventually is how long a daemon gets to converge after a change. It bounds the wait only; no test
// asserts how fast the daemon is (bench/daemon measures that).
const eventually = 60 * time.Second

// daemonStack is a server of sleeper applications for the daemon, in a temporary directory: its own
// prefix, the engine reached through a recording proxy, and the daemon's logs kept for the test.
type daemonStack struct {
	t      *testing.T
	cli    *dockerx.Client
	proxy  *testdocker.Proxy
	image  string
	prefix string
	file   string
	// listen is the daemon's /metrics address once started.
	listen string
	logs   *lockedBuffer
}

// daemonSleeperSource is testdocker's sleeper with a mark of its own. The engine's build cache gives every
// build of the same sleeper one image id, and a test that removes its sleeper image removes every
// container of that id, in any package; a daemon would then be seen healing containers nobody asked it to.
const daemonSleeperSource = testdocker.SleeperSource + `
func init() { os.Setenv("SLEEPER_FOR", "bee2d daemon tests") }
`

// app is one sleeper application. A port is published and given to the sleeper as PORT, so the test
// can ask the container for its environment.
type app struct {
	name string
	env  []string // "key: value"
	port int
}

func newDaemonStack(t *testing.T) *daemonStack {
	t.Helper()
	cli := testdocker.Require(t)
	st := &daemonStack{t: t, cli: cli, image: testdocker.BuildGoImage(t, cli, "daemon-sleeper", daemonSleeperSource),
		prefix: testdocker.UniquePrefix(t), logs: &lockedBuffer{}}
	// Registered before the daemon starts, so it runs after the daemon has stopped: a running daemon
	// would heal what the cleanup removes.
	testdocker.Cleanup(t, cli, st.prefix)
	st.proxy = testdocker.StartProxy(t)
	st.file = filepath.Join(t.TempDir(), "settings.yml")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", st.logs.String())
		}
	})
	return st
}

func (st *daemonStack) settings(apps ...app) string {
	var b strings.Builder
	fmt.Fprintf(&b, "servers:\n  local: {docker: {host: %q}}\ndocker:\n  prefix: %s\napplications:\n", st.proxy.Host, st.prefix)
	for _, a := range apps {
		fmt.Fprintf(&b, "  %s:\n    server: local\n    image: %s\n", a.name, st.image)
		env := a.env
		if a.port != 0 {
			env = append(slices.Clone(env), fmt.Sprintf("port: %d", a.port))
		}
		if len(env) > 0 {
			fmt.Fprintf(&b, "    env: {%s}\n", strings.Join(env, ", "))
		}
		if a.port != 0 {
			fmt.Fprintf(&b, "    ports: [%d]\n", a.port)
		}
	}
	return b.String()
}

// write changes the settings file in place, as `echo ... > settings.yml` does.
func (st *daemonStack) write(yml string) {
	st.t.Helper()
	if err := os.WriteFile(st.file, []byte(yml), 0o644); err != nil {
		st.t.Fatal(err)
	}
}

// replace renames a new file over the settings, as editors and `git checkout` do.
func (st *daemonStack) replace(yml string) {
	st.t.Helper()
	tmp := st.file + ".tmp"
	if err := os.WriteFile(tmp, []byte(yml), 0o644); err != nil {
		st.t.Fatal(err)
	}
	if err := os.Rename(tmp, st.file); err != nil {
		st.t.Fatal(err)
	}
}

func (st *daemonStack) name(app string) string {
	return config.ContainerName(st.prefix, config.KindApp, app)
}

// start runs `bee2d daemon` in process until the test ends, and waits for /readyz. The resync period is
// an hour, so whatever the daemon heals within a test it heals through events.
func (st *daemonStack) start(extra ...string) {
	st.t.Helper()
	st.listen = fmt.Sprintf("127.0.0.1:%d", freePort(st.t))
	args := append([]string{"daemon", "-c", st.file, "--listen", st.listen, "--resync", "1h", "--debounce", "50ms",
		"--log-format", "json", "--log-level", "debug"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, io.Discard, st.logs) }()
	st.t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				st.t.Errorf("daemon exited %d", code)
			}
		case <-time.After(eventually):
			st.t.Error("daemon did not stop")
		}
	})
	st.waitReady(done)
}

func (st *daemonStack) waitReady(done <-chan int) {
	st.t.Helper()
	st.until("/readyz answers 200", func() error {
		select {
		case code := <-done:
			st.t.Fatalf("daemon exited %d before it was ready", code)
		default:
		}
		if code, body := st.get("/readyz"); code != http.StatusOK {
			return fmt.Errorf("%d %s", code, body)
		}
		return nil
	})
}

// get fetches a path from the daemon's listener.
func (st *daemonStack) get(path string) (int, string) {
	resp, err := http.Get("http://" + st.listen + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// until polls check until it returns nil, failing the test after eventually.
func (st *daemonStack) until(what string, check func() error) {
	st.t.Helper()
	deadline := time.Now().Add(eventually)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			st.t.Fatalf("not %s after %v: %v", what, eventually, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// containers maps the stack's container names to what the engine says of them.
func (st *daemonStack) containers() map[string]dockerx.Container {
	st.t.Helper()
	list, err := st.cli.ListContainers(context.Background())
	if err != nil {
		st.t.Fatal(err)
	}
	out := map[string]dockerx.Container{}
	for _, c := range list {
		if strings.HasPrefix(c.Name, st.prefix+"-") {
			out[c.Name] = c
		}
	}
	return out
}

// desired maps each container the settings file asks for to its spec hash.
func (st *daemonStack) desired() map[string]string {
	st.t.Helper()
	s, err := config.Load(st.file)
	if err != nil {
		st.t.Fatal(err)
	}
	d, err := reconcile.DesireFrom(s, "local", reconcile.Sources{Digest: dockerx.ContextDigest, Head: gitx.Heads(st.t.Context())})
	if err != nil {
		st.t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range d.Containers {
		out[c.Name] = c.Hash
	}
	return out
}

// converged tells what differs between the engine and the settings file, nil when nothing does: every
// container of the settings running with bee2d's labels and the settings' spec hash, and no other.
func (st *daemonStack) converged() error {
	want := st.desired()
	have := st.containers()
	var diffs []string
	for name, hash := range want {
		c, ok := have[name]
		switch {
		case !ok:
			diffs = append(diffs, name+" missing")
		case !c.Running():
			diffs = append(diffs, name+" "+c.State)
		case c.Labels[labels.SpecHash] != hash:
			diffs = append(diffs, name+" has spec hash "+c.Labels[labels.SpecHash]+", want "+hash)
		}
	}
	for name := range have {
		if _, ok := want[name]; !ok {
			diffs = append(diffs, name+" should not exist")
		}
	}
	if len(diffs) > 0 {
		slices.Sort(diffs)
		return errors.New(strings.Join(diffs, "; "))
	}
	return nil
}

func (st *daemonStack) waitConverged() map[string]dockerx.Container {
	st.t.Helper()
	st.until("converged", st.converged)
	return st.containers()
}

// env asks the sleeper published on port for one variable.
func env(port int, name string) (string, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/env/%s", port, name))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// waitEnv waits until the container on port answers that name is want. A wrong answer is retried too,
// for the container may yet be replaced; a test asserting that nothing changes checks the containers
// themselves.
func (st *daemonStack) waitEnv(port int, name, want string) {
	st.t.Helper()
	st.until(fmt.Sprintf("%s=%s in the container on :%d", name, want, port), func() error {
		got, err := env(port, name)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s=%q", name, got)
		}
		return nil
	})
}

// kill sends SIGKILL to a container through the engine API, as `docker kill` does.
func (st *daemonStack) kill(id string) {
	st.t.Helper()
	sock := strings.TrimPrefix(st.proxy.Host, "unix://")
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Post("http://docker/containers/"+id+"/kill?signal=KILL", "", nil)
	if err != nil {
		st.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		b, _ := io.ReadAll(resp.Body)
		st.t.Fatalf("kill %s: %d %s", id[:12], resp.StatusCode, b)
	}
}

// lockedBuffer collects the daemon's log lines from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logged returns the daemon's JSON log entries with message msg.
func logged(logs string, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(logs, "\n") {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && e["msg"] == msg {
			out = append(out, e)
		}
	}
	return out
}

// Settings edits reach the engine whether the file is written in place or replaced by a rename; an
// invalid edit changes nothing on the engine and says so on /metrics until it is fixed.
func TestDaemonFollowsSettingsEdits(t *testing.T) {
	st := newDaemonStack(t)
	port := freePort(t)
	web := func(greeting string) app { return app{name: "web", env: []string{"greeting: " + greeting}, port: port} }
	worker := app{name: "worker", env: []string{"index: 1"}}
	st.write(st.settings(web("hello"), worker))
	st.start()
	before := st.waitConverged()
	st.waitEnv(port, "GREETING", "hello")

	t.Run("written in place", func(t *testing.T) {
		st.write(st.settings(web("bonjour"), worker))
		after := st.waitConverged()
		st.waitEnv(port, "GREETING", "bonjour")
		if after[st.name("web")].ID == before[st.name("web")].ID {
			t.Error("web has the new spec hash but the same container")
		}
		if after[st.name("worker")].ID != before[st.name("worker")].ID {
			t.Error("worker was recreated although it did not change")
		}
		before = after
	})

	t.Run("replaced by rename", func(t *testing.T) {
		st.replace(st.settings(web("hallo"), worker))
		after := st.waitConverged()
		st.waitEnv(port, "GREETING", "hallo")
		if after[st.name("worker")].ID != before[st.name("worker")].ID {
			t.Error("worker was recreated although it did not change")
		}
		before = after
	})

	t.Run("invalid edit changes nothing until fixed", func(t *testing.T) {
		reload := func(want float64) func() error {
			return func() error {
				code, body := st.get("/metrics")
				if code != http.StatusOK {
					return fmt.Errorf("/metrics: %d", code)
				}
				m, err := parseMetrics(body)
				if err != nil {
					return err
				}
				if got, ok := m.value("bee2_config_last_reload_successful", nil); !ok || got != want {
					return fmt.Errorf("bee2_config_last_reload_successful = %v (present %v), want %v", got, ok, want)
				}
				return nil
			}
		}
		st.proxy.Requests()
		bad := strings.Replace(st.settings(web("hola"), worker), "    server: local\n", "    server: local\n    link: [wrker]\n", 1)
		st.write(bad)
		st.until("reload metric 0", reload(0))
		if rejected := logged(st.logs.String(), "settings rejected, keeping the last good settings"); len(rejected) != 1 ||
			!strings.Contains(fmt.Sprint(rejected[0]["error"]), `did you mean "worker"`) {
			t.Errorf("rejection logged as %v", rejected)
		}
		if w := testdocker.Writes(st.proxy.Requests()); len(w) > 0 {
			t.Errorf("an invalid edit made write calls: %v", w)
		}
		if now := st.containers(); !sameContainers(before, now) {
			t.Errorf("containers changed after an invalid edit: %v -> %v", before, now)
		}
		st.waitEnv(port, "GREETING", "hallo")

		st.write(st.settings(web("hola"), worker))
		st.until("reload metric 1", reload(1))
		st.waitConverged()
		st.waitEnv(port, "GREETING", "hola")
	})
}

// A managed container removed or killed by hand comes back through the event stream (the periodic
// resync is an hour away).
func TestDaemonHealsRemovedAndKilledContainers(t *testing.T) {
	st := newDaemonStack(t)
	port := freePort(t)
	st.write(st.settings(app{name: "web", env: []string{"greeting: hi"}, port: port}, app{name: "worker"}))
	st.start()
	before := st.waitConverged()
	web := st.name("web")

	t.Run("rm -f", func(t *testing.T) {
		if err := st.cli.RemoveContainer(t.Context(), before[web].ID); err != nil {
			t.Fatal(err)
		}
		after := st.waitConverged()
		if after[web].ID == before[web].ID {
			t.Fatal("the removed container is listed again")
		}
		st.waitEnv(port, "GREETING", "hi")
		before = after
	})

	t.Run("kill", func(t *testing.T) {
		st.kill(before[web].ID)
		after := st.waitConverged()
		st.waitEnv(port, "GREETING", "hi")
		// The engine's restart policy or bee2d may have brought it back; either way nothing else moved.
		if after[st.name("worker")].ID != before[st.name("worker")].ID {
			t.Error("worker was touched")
		}
	})
}

// After the settings change the prefix, the containers made under the new one are healed through
// events too: the event stream follows the settings.
func TestDaemonHealsAfterAPrefixChange(t *testing.T) {
	st := newDaemonStack(t)
	st.write(st.settings(app{name: "web"}))
	st.start()
	st.waitConverged()

	old := st.prefix
	st.prefix += "b" // still under the prefix testdocker.Cleanup removes
	st.replace(st.settings(app{name: "web"}))
	// The old prefix's container is no longer the settings' and is left alone, as bee2d leaves any
	// container it does not own under the current prefix.
	st.until("converged under the new prefix", func() error {
		want := st.desired()
		have := st.containers()
		for name, hash := range want {
			if c := have[name]; !c.Running() || c.Labels[labels.SpecHash] != hash {
				return fmt.Errorf("%s: %s", name, c.State)
			}
		}
		return nil
	})
	web := st.containers()[st.name("web")]
	if err := st.cli.RemoveContainer(t.Context(), web.ID); err != nil {
		t.Fatal(err)
	}
	st.until("the removed container back", func() error {
		c, ok := st.containers()[st.name("web")]
		if !ok || c.ID == web.ID || !c.Running() {
			return fmt.Errorf("%s not back (old prefix %s)", st.name("web"), old)
		}
		return nil
	})
}

// gatedConn lets a test hold the daemon's next container list, so a change by hand lands between two of
// the daemon's observations however fast its event path is.
type gatedConn struct {
	*dockerx.Client
	gate *sync.RWMutex
}

func (c gatedConn) ListContainers(ctx context.Context) ([]dockerx.Container, error) {
	c.gate.RLock()
	defer c.gate.RUnlock()
	return c.Client.ListContainers(ctx)
}

func (c gatedConn) ListContainersLabelled(ctx context.Context, labels map[string]string) ([]dockerx.Container, error) {
	c.gate.RLock()
	defer c.gate.RUnlock()
	return c.Client.ListContainersLabelled(ctx, labels)
}

// A managed container replaced by hand with another configuration, bee2d's labels copied but for the
// spec hash, is seen out of sync and replaced by one made from the settings.
func TestDaemonReplacesAHandMadeContainer(t *testing.T) {
	st := newDaemonStack(t)
	port := freePort(t)
	st.write(st.settings(app{name: "web", env: []string{"greeting: from-settings"}, port: port}))

	gate := &sync.RWMutex{}
	core, logs := observer.New(zapcore.DebugLevel)
	m := metrics.New()
	d := &daemon.Daemon{Path: st.file, Log: zap.New(core), Metrics: m, Resync: time.Hour, Debounce: 50 * time.Millisecond,
		Parallel: 4, Grace: 30 * time.Second,
		Connect: func(ctx context.Context, ep dockerx.Endpoint) (daemon.Conn, error) {
			c, err := dockerx.Connect(ctx, ep)
			if err != nil {
				return nil, err
			}
			return gatedConn{Client: c, gate: gate}, nil
		}}
	if err := d.LoadInitial(); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: httpHandler(d, m, nil)}
	go srv.Serve(ln)
	st.listen = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		code := 0
		if err := d.Run(ctx); err != nil {
			code = 1
		}
		done <- code
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		srv.Close()
	})
	st.waitReady(done)
	orig := st.waitConverged()[st.name("web")]

	gate.Lock()
	if err := st.cli.RemoveContainer(t.Context(), orig.ID); err != nil {
		gate.Unlock()
		t.Fatal(err)
	}
	forged := maps.Clone(orig.Labels)
	forged[labels.SpecHash] = "0000000000000000"
	id, err := st.cli.CreateContainer(t.Context(), dockerx.ContainerSpec{Name: orig.Name, Image: st.image,
		Env: []string{"GREETING=by-hand", "PORT=" + strconv.Itoa(port)}, Ports: []dockerx.PortSpec{{HostPort: port, ContainerPort: port}}, RestartPolicy: "unless-stopped",
		Network: config.NetworkName(st.prefix), Labels: forged})
	if err == nil {
		err = st.cli.StartContainer(t.Context(), id)
	}
	gate.Unlock()
	if err != nil {
		t.Fatal(err)
	}

	after := st.waitConverged()[st.name("web")]
	if after.ID == id || after.ID == orig.ID {
		t.Errorf("web is %s; want a new container, not the hand-made %s or the removed %s", after.ID[:12], id[:12], orig.ID[:12])
	}
	st.waitEnv(port, "GREETING", "from-settings")
	recreated := logs.FilterMessage("action applied").Filter(func(e observer.LoggedEntry) bool {
		f := e.ContextMap()
		return f["action"] == string(reconcile.OpRecreateContainer) && f["name"] == orig.Name
	})
	if recreated.Len() != 1 {
		t.Errorf("want one recreate of %s logged, got %d: %v", orig.Name, recreated.Len(), recreated.All())
	}
}

// Metrics scraped from a running daemon match the engine, pass `promtool check metrics`, and lose the
// series of an application that leaves the settings.
func TestDaemonMetrics(t *testing.T) {
	st := newDaemonStack(t)
	apps := []app{{name: "one"}, {name: "two", env: []string{"index: 2"}}, {name: "three"}}
	st.write(st.settings(apps...))
	st.start()
	st.waitConverged()

	if code, _ := st.get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d", code)
	}
	if code, _ := st.get("/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d after the first pass", code)
	}

	scrape := func() (string, metricSet) {
		t.Helper()
		code, body := st.get("/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics = %d: %s", code, body)
		}
		m, err := parseMetrics(body)
		if err != nil {
			t.Fatalf("parse /metrics: %v\n%s", err, body)
		}
		return body, m
	}
	// inSync compares the in-sync series with the engine: one per managed container, 1 when it runs.
	inSync := func() error {
		_, m := scrape()
		want := map[string]float64{}
		for name, c := range st.containers() {
			if c.Labels[labels.Owner] == labels.Bee2d {
				want[name] = 0
				if c.Running() {
					want[name] = 1
				}
			}
		}
		got := map[string]float64{}
		for _, s := range m.series("bee2_resource_in_sync") {
			if s.labels["server"] == "local" && s.labels["kind"] == "container" {
				got[s.labels["name"]] = s.value
			}
		}
		if !maps.Equal(got, want) {
			return fmt.Errorf("bee2_resource_in_sync %v, engine %v", got, want)
		}
		return nil
	}

	body, m := scrape()
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"bee2_server_up", map[string]string{"server": "local"}, 1},
		{"bee2_config_last_reload_successful", nil, 1},
		{"bee2_reconcile_errors_total", map[string]string{"server": "local"}, 0},
		{"bee2_reconcile_actions_total", map[string]string{"server": "local", "action": "create_container", "result": "success"}, 3},
		{"bee2_reconcile_actions_total", map[string]string{"server": "local", "action": "start_container", "result": "failure"}, 0},
	} {
		if got, ok := m.value(c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	st.until("in-sync series match the engine", inSync)

	t.Run("promtool check metrics", func(t *testing.T) {
		promtool, err := exec.LookPath("promtool")
		if err != nil {
			testdocker.Need(t, "promtool not found (apt-get install prometheus)")
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out)
		}
	})

	t.Run("an application removed from the settings loses its series", func(t *testing.T) {
		st.replace(st.settings(apps[0], apps[1]))
		st.waitConverged()
		st.until("in-sync series match the engine", inSync)
		_, m := scrape()
		if _, ok := m.value("bee2_resource_in_sync", map[string]string{"name": st.name("three")}); ok {
			t.Error("the removed application still has a series")
		}
	})
}

// SIGTERM in the middle of a converge lets the actions in flight finish and exits 0: no container is
// left half-made under its final name, and the next start converges the rest.
func TestDaemonSIGTERMDuringConverge(t *testing.T) {
	st := newDaemonStack(t)
	bin := buildBee2d(t)
	const n = 12
	var apps []app
	for i := range n {
		apps = append(apps, app{name: fmt.Sprintf("a%02d", i), env: []string{fmt.Sprintf("index: %d", i)}})
	}
	st.write(st.settings(apps...))

	// daemon starts the binary, sends SIGTERM once the first line matching at shows on stderr, and
	// returns the exit code.
	daemon := func(at func(map[string]any) bool, extra ...string) int {
		t.Helper()
		args := append([]string{"daemon", "-c", st.file, "--listen", "", "--resync", "1h", "--grace", "30s", "--log-format", "json"}, extra...)
		cmd := exec.Command(bin, args...)
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill() })
		signalled := make(chan struct{})
		read := make(chan struct{})
		go func() {
			defer close(read)
			sc := bufio.NewScanner(stderr)
			sent := false
			for sc.Scan() {
				line := sc.Text()
				st.logs.Write([]byte(line + "\n"))
				var e map[string]any
				if !sent && json.Unmarshal([]byte(line), &e) == nil && at(e) {
					sent = true
					cmd.Process.Signal(syscall.SIGTERM)
					close(signalled)
				}
			}
		}()
		select {
		case <-signalled:
		case <-time.After(eventually):
			t.Fatal("the line to stop at never came")
		}
		exited := make(chan error, 1)
		go func() {
			// Wait closes stderr once the process has exited: its last lines ("daemon stopped") must have
			// been read first.
			<-read
			exited <- cmd.Wait()
		}()
		select {
		case err := <-exited:
			if err != nil {
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					return ee.ExitCode()
				}
				t.Fatal(err)
			}
			return 0
		case <-time.After(eventually):
			t.Fatal("the daemon did not exit after SIGTERM")
		}
		return -1
	}

	firstCreate := func(e map[string]any) bool {
		return e["msg"] == "action applied" && e["action"] == string(reconcile.OpCreateContainer)
	}
	// One container at a time, so that SIGTERM lands with most of them still to make.
	if code := daemon(firstCreate, "--parallel", "1"); code != 0 {
		t.Fatalf("SIGTERM during a converge: exit %d, want 0", code)
	}
	if len(logged(st.logs.String(), "daemon stopped")) != 1 {
		t.Error("no \"daemon stopped\" line")
	}
	want := st.desired()
	made := 0
	for name, c := range st.containers() {
		hash, ok := want[name]
		switch {
		case !ok:
			t.Errorf("unexpected container %s", name)
		case !c.Running() || c.Labels[labels.Owner] != labels.Bee2d || c.Labels[labels.SpecHash] != hash:
			t.Errorf("%s left half-made: state %s, labels %v", name, c.State, c.Labels)
		default:
			made++
		}
	}
	if made == 0 || made == n {
		t.Errorf("%d of %d containers made: SIGTERM did not land during the converge", made, n)
	}

	// The next start converges everything; stopped once converged, it exits 0 too.
	ready := func(e map[string]any) bool { return e["msg"] == "first pass done on every server" }
	if code := daemon(ready); code != 0 {
		t.Fatalf("second run: exit %d, want 0", code)
	}
	if err := st.converged(); err != nil {
		t.Errorf("after the second run: %v", err)
	}
}

// buildBee2d compiles this command into a temporary directory, for tests that need the daemon as a
// process of its own: signals, exit codes, or its own memory and goroutines on /metrics.
func buildBee2d(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bee2d")
	// Static, as `make build` makes it.
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// metricSet is a parsed Prometheus text exposition.
type metricSet []sample

type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// series returns the samples of one metric.
func (m metricSet) series(name string) []sample {
	var out []sample
	for _, s := range m {
		if s.name == name {
			out = append(out, s)
		}
	}
	return out
}

// value returns the first sample of name whose labels include labels.
func (m metricSet) value(name string, labels map[string]string) (float64, bool) {
	for _, s := range m.series(name) {
		match := true
		for k, v := range labels {
			match = match && s.labels[k] == v
		}
		if match {
			return s.value, true
		}
	}
	return 0, false
}

// parseMetrics reads the Prometheus text format: `name{k="v",...} value` lines, comments skipped.
func parseMetrics(text string) (metricSet, error) {
	var out metricSet
	for i, line := range strings.Split(text, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if j := strings.IndexAny(rest, "{ "); j < 0 {
			return nil, fmt.Errorf("line %d: %q", i+1, line)
		} else {
			s.name, rest = rest[:j], rest[j:]
		}
		if strings.HasPrefix(rest, "{") {
			rest = rest[1:]
			for !strings.HasPrefix(rest, "}") {
				eq := strings.Index(rest, `="`)
				if eq < 0 {
					return nil, fmt.Errorf("line %d: bad labels: %q", i+1, line)
				}
				key := strings.TrimPrefix(rest[:eq], ",")
				rest = rest[eq+2:]
				var val strings.Builder
				for {
					if rest == "" {
						return nil, fmt.Errorf("line %d: unterminated label value: %q", i+1, line)
					}
					c := rest[0]
					rest = rest[1:]
					if c == '"' {
						break
					}
					if c == '\\' && rest != "" {
						switch rest[0] {
						case 'n':
							val.WriteByte('\n')
						default:
							val.WriteByte(rest[0])
						}
						rest = rest[1:]
						continue
					}
					val.WriteByte(c)
				}
				s.labels[key] = val.String()
				rest = strings.TrimPrefix(rest, ",")
			}
			rest = rest[1:]
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("line %d: no value: %q", i+1, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", i+1, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, nil
}
