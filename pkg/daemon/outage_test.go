package daemon

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// outageServers is a daemon over three real engines: the machine's (web1), one of the test's own on a unix
// socket (web2) and one on TCP with mutual TLS (web3), each server running one application.
type outageServers struct {
	t        *testing.T
	path     string
	prefix   string
	dir      string
	web2     *testdocker.Engine
	web3Host string
	certs    *testdocker.EngineCerts
	clients  map[string]*dockerx.Client
	d        *Daemon
	logs     *observer.ObservedLogs
}

func (o *outageServers) write(version string) {
	o.t.Helper()
	yml := fmt.Sprintf(`servers:
  web1: {}
  web2:
    docker: {host: %q}
  web3:
    docker:
      host: %q
      tls: {ca: %s, cert: %s, key: %s}
docker:
  prefix: %s
  dockerfiles: %s
applications:
`, o.web2.Host, o.web3Host, o.certs.CAFile, o.certs.ClientCert, o.certs.ClientKey, o.prefix, filepath.Join(o.dir, "dockerfiles"))
	for n := 1; n <= 3; n++ {
		yml += fmt.Sprintf("  app%d: {server: web%d, build_dir: App, env: {version: %q}}\n", n, n, version)
	}
	if err := os.WriteFile(o.path, []byte(yml), 0o644); err != nil {
		o.t.Fatal(err)
	}
}

// serverUp reads bee2_server_up for a server.
func (o *outageServers) serverUp(server string) (float64, bool) {
	families, err := o.d.Metrics.Registry().Gather()
	if err != nil {
		o.t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "bee2_server_up" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "server" && l.GetValue() == server {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// app is the server's application container, if any.
func (o *outageServers) app(server string) (dockerx.Container, bool) {
	list, err := o.clients[server].ListContainers(o.t.Context())
	if err != nil {
		return dockerx.Container{}, false
	}
	name := o.prefix + "-app-app" + strings.TrimPrefix(server, "web")
	for _, c := range list {
		if c.Name == name {
			return c, true
		}
	}
	return dockerx.Container{}, false
}

// converged tells whether the daemon has loaded the settings of this version and the server runs its
// application as they say.
func (o *outageServers) converged(server, version string) bool {
	settings := o.d.Settings()
	app := settings.Application("app" + strings.TrimPrefix(server, "web"))
	if app == nil || len(app.Env) == 0 || app.Env[0].Value.Text != version {
		return false
	}
	c, ok := o.app(server)
	if !ok || !c.Running() {
		return false
	}
	if up, _ := o.serverUp(server); up != 1 {
		return false
	}
	d, err := reconcile.DesireFrom(settings, server, reconcile.Sources{Digest: o.d.digest(), Head: o.d.head(o.t.Context())})
	if err != nil {
		return false
	}
	for _, want := range d.Containers {
		if want.Name == c.Name {
			return c.Labels[labels.SpecHash] == want.Hash
		}
	}
	return false
}

// failures is the length of the server's failing streak.
func (o *outageServers) failures(server string) int {
	o.d.mu.Lock()
	w := o.d.workers[server]
	o.d.mu.Unlock()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pass.failures
}

func (o *outageServers) waitFor(what string, timeout time.Duration, ok func() bool) {
	o.t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			o.t.Fatalf("waited %s for %s\nlogs:\n%s", timeout, what, o.logText())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (o *outageServers) logText() string {
	var b strings.Builder
	for _, e := range o.logs.All() {
		fmt.Fprintf(&b, "%s %s", e.Level, e.Message)
		for _, f := range e.Context {
			if f.Type == zapcore.StringType {
				fmt.Fprintf(&b, " %s=%s", f.Key, f.String)
			} else if f.Interface != nil {
				fmt.Fprintf(&b, " %s=%v", f.Key, f.Interface)
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}

// count is how many entries with msg were logged for server.
func (o *outageServers) count(msg, server string) int {
	return o.logs.FilterMessage(msg).FilterField(zap.String("server", server)).Len()
}

// TestDaemonServerOutage stops one of three engines under a running daemon: the two others keep converging,
// bee2_server_up says 0 for the one down, and its outage and its recovery are each logged once; started
// again, it converges to settings that changed while it was down.
func TestDaemonServerOutage(t *testing.T) {
	main := testdocker.Require(t)
	o := &outageServers{t: t, dir: t.TempDir(), prefix: testdocker.UniquePrefix(t)}
	testdocker.Cleanup(t, main, o.prefix)
	o.path = filepath.Join(o.dir, "settings.yml")
	testdocker.GoBuildDir(t, filepath.Join(o.dir, "dockerfiles", "App"), testdocker.SleeperSource)
	o.web2 = testdocker.StartEngine(t, nil)
	web3, certs := testdocker.StartTLSEngine(t)
	o.web3Host, o.certs = web3.TCPHost, certs
	o.clients = map[string]*dockerx.Client{"web1": main, "web2": o.web2.Client(t), "web3": web3.Client(t)}
	o.write("1")

	core, logs := observer.New(zapcore.DebugLevel)
	o.logs = logs
	// A short cap, so that the outage outlasts it within the test; the default is a minute.
	const retryMax = 3 * time.Second
	o.d = &Daemon{Path: o.path, Log: zap.New(core), Metrics: metrics.New(), Resync: time.Second,
		Debounce: 50 * time.Millisecond, Parallel: 4, StopTimeout: 2 * time.Second, Grace: 10 * time.Second,
		RetryMax: retryMax}
	if err := o.d.LoadInitial(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	servers := []string{"web1", "web2", "web3"}
	o.waitFor("all three servers converged", 2*time.Minute, func() bool {
		for _, s := range servers {
			if !o.converged(s, "1") {
				return false
			}
		}
		return true
	})

	if err := o.web2.Stop(); err != nil {
		t.Fatal(err)
	}
	o.waitFor("bee2_server_up{server=web2} = 0", time.Minute, func() bool {
		up, ok := o.serverUp("web2")
		return ok && up == 0
	})

	// While web2 is down the others still converge: the settings change for every server, and a container
	// removed by hand comes back.
	// The hand removal comes first: removing a container while the daemon recreates it for the edit races
	// inside Docker 20.10 itself ("unable to remove filesystem ... directory not empty"), which is the
	// engine's failure, not the one under test.
	if err := o.clients["web3"].RemoveContainer(t.Context(), o.prefix+"-app-app3"); err != nil {
		t.Fatal(err)
	}
	o.write("2")
	o.waitFor("web1 and web3 converged while web2 is down", time.Minute, func() bool {
		return o.converged("web1", "2") && o.converged("web3", "2")
	})
	if up, _ := o.serverUp("web2"); up != 0 {
		t.Errorf("bee2_server_up{server=web2} = %v while its engine is stopped", up)
	}
	// Let web2 fail passes until its back-off has reached the cap and stayed there (1s, 2s, then 3s twice),
	// so that "logged once" means something too.
	o.waitFor("web2 to fail five passes", 2*time.Minute, func() bool { return o.failures("web2") >= 5 })
	var retries []time.Duration
	for _, e := range o.logs.FilterField(zap.String("server", "web2")).All() {
		if e.Message == "server pass failing" || e.Message == "server pass still failing" {
			retries = append(retries, e.ContextMap()["retry_in"].(time.Duration))
		}
	}
	atCap := 0
	for _, r := range retries {
		if r > retryMax {
			t.Errorf("web2 retried in %v, beyond the cap %v", r, retryMax)
		}
		if r == retryMax {
			atCap++
		}
	}
	if atCap < 2 {
		t.Errorf("web2's back-off did not stay at its cap: %v", retries)
	}

	if err := o.web2.Start(); err != nil {
		t.Fatal(err)
	}
	failedBefore := o.count("server pass still failing", "web2")
	o.waitFor("web2 converged after its engine came back", 2*time.Minute, func() bool { return o.converged("web2", "2") })
	// Recovered by the first pass after the engine was back, within one capped back-off: at most the pass
	// in flight while it started failed.
	if n := o.count("server pass still failing", "web2") - failedBefore; n > 1 {
		t.Errorf("web2 failed %d passes after its engine was back; want at most the one in flight\n%s", n, o.logText())
	}

	if n := o.count("server pass failing", "web2"); n != 1 {
		t.Errorf("web2's outage logged %d times at error level, want once\n%s", n, o.logText())
	}
	// Recovered once after the outage began (failing actions while dockerd shut down may have had their own).
	recovered, down := 0, false
	for _, e := range o.logs.FilterField(zap.String("server", "web2")).All() {
		switch {
		case e.Message == "server pass failing":
			down = true
		case e.Message == "server pass recovered" && down:
			recovered++
		}
	}
	if recovered != 1 {
		t.Errorf("web2's recovery logged %d times, want once\n%s", recovered, o.logText())
	}
	for _, s := range []string{"web1", "web3"} {
		if n := o.count("server pass failing", s); n != 0 {
			t.Errorf("%s logged as failing %d times; only web2 was down\n%s", s, n, o.logText())
		}
	}
}
