package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/pki"
	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// threeServers is three Docker hosts on this machine: the machine's engine (web1), an engine of the test's
// own on a unix socket (web2), and one on tcp://127.0.0.1 with mutual TLS from certificates that
// `bee2d tls init` made (web3). Each server runs db<n> and app<n>, which links to it.
type threeServers struct {
	t        *testing.T
	dir      string
	settings string
	prefix   string
	engine2  *testdocker.Engine
	engine3  *testdocker.Engine
	clients  map[string]*dockerx.Client // by server, for the checks
}

func newThreeServers(t *testing.T) *threeServers {
	t.Helper()
	main := testdocker.Require(t)
	ts := &threeServers{t: t, dir: t.TempDir(), prefix: testdocker.UniquePrefix(t)}
	testdocker.Cleanup(t, main, ts.prefix)
	ts.settings = filepath.Join(ts.dir, "settings.yml")
	testdocker.GoBuildDir(t, filepath.Join(ts.dir, "dockerfiles", "App"), testdocker.SleeperSource)
	ts.engine2 = testdocker.StartEngine(t, nil)

	// tls init needs web3 in the settings; its port is known once its engine runs.
	ts.write("tcp://127.0.0.1:1", nil, nil)
	if code, out, errOut := ts.bee2d("tls", "init", "web3", "--ip", "127.0.0.1", "-c", ts.settings); code != 0 {
		t.Fatalf("tls init = %d\n%s%s", code, out, errOut)
	}
	certs := filepath.Join(ts.dir, "conf", "docker", "web3")
	ts.engine3 = testdocker.StartEngine(t, &testdocker.EngineTLS{CA: filepath.Join(certs, "ca.pem"),
		Cert: filepath.Join(certs, "docker-server.crt"), Key: filepath.Join(certs, "docker-server.pem")})
	ts.write(ts.engine3.TCPHost, nil, nil)
	ts.clients = map[string]*dockerx.Client{"web1": main, "web2": ts.engine2.Client(t), "web3": ts.engine3.Client(t)}
	return ts
}

// write stores the settings: web3 reached at host with tls (nil: the files tls init wrote), and env
// values for the db applications (nil: none).
func (ts *threeServers) write(host string, tls map[string]string, env map[string]string) {
	ts.t.Helper()
	d := filepath.Join("conf", "docker", "web3")
	files := map[string]string{"ca": filepath.Join(d, "ca.pem"), "cert": filepath.Join(d, "docker-client.crt"), "key": filepath.Join(d, "docker-client.pem")}
	for k, v := range tls {
		files[k] = v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "servers:\n  web1: {}\n  web2:\n    docker: {host: %q}\n", ts.engine2Host())
	fmt.Fprintf(&b, "  web3:\n    docker:\n      host: %q\n      tls: {ca: %s, cert: %s, key: %s}\n", host, files["ca"], files["cert"], files["key"])
	fmt.Fprintf(&b, "docker:\n  prefix: %s\napplications:\n", ts.prefix)
	for n := 1; n <= 3; n++ {
		fmt.Fprintf(&b, "  db%d:\n    server: web%d\n    build_dir: App\n    env: {role: db, version: %q}\n", n, n, env[fmt.Sprint(n)])
		fmt.Fprintf(&b, "  app%d:\n    server: web%d\n    build_dir: App\n    link: [db%d]\n    env: {backend: $db%d}\n", n, n, n, n)
	}
	if err := os.WriteFile(ts.settings, []byte(b.String()), 0o644); err != nil {
		ts.t.Fatal(err)
	}
}

func (ts *threeServers) engine2Host() string {
	if ts.engine2 == nil {
		return "unix:///nonexistent.sock"
	}
	return ts.engine2.Host
}

func (ts *threeServers) bee2d(args ...string) (int, string, string) {
	ts.t.Helper()
	var out, errOut bytes.Buffer
	code := run(ts.t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func (ts *threeServers) name(app string) string { return ts.prefix + "-app-" + app }

// containers lists the test's containers on a server by name.
func (ts *threeServers) containers(server string) map[string]dockerx.Container {
	ts.t.Helper()
	list, err := ts.clients[server].ListContainers(ts.t.Context())
	if err != nil {
		ts.t.Fatal(err)
	}
	out := map[string]dockerx.Container{}
	for _, c := range list {
		if strings.HasPrefix(c.Name, ts.prefix) {
			out[c.Name] = c
		}
	}
	return out
}

// eventLog records the create and start events of bee2d's containers on one engine, in the engine's order.
type eventLog struct {
	mu     sync.Mutex
	events []string // "create NAME", "start NAME"
}

func (ts *threeServers) recordEvents(server string) *eventLog {
	ctx, cancel := context.WithCancel(context.Background())
	ts.t.Cleanup(cancel)
	evs, _ := ts.clients[server].Events(ctx, map[string]string{labels.Prefix: ts.prefix})
	l := &eventLog{}
	go func() {
		for ev := range evs {
			if ev.Action == "create" || ev.Action == "start" {
				l.mu.Lock()
				l.events = append(l.events, ev.Action+" "+ev.Name)
				l.mu.Unlock()
			}
		}
	}()
	return l
}

func (l *eventLog) index(ev string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, e := range l.events {
		if e == ev {
			return i
		}
	}
	return -1
}

// TestThreeServers converges three servers at once, reached three ways, then shows that a server whose TLS
// peer cannot be trusted is named in the error and left untouched while the other two converge.
func TestThreeServers(t *testing.T) {
	ts := newThreeServers(t)
	logs := map[string]*eventLog{}
	for _, s := range []string{"web1", "web2", "web3"} {
		logs[s] = ts.recordEvents(s)
	}
	time.Sleep(time.Second) // the event streams are open before anything happens

	code, out, errOut := ts.bee2d("apply", "-c", ts.settings)
	if code != 0 {
		t.Fatalf("apply = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	for n := 1; n <= 3; n++ {
		server := fmt.Sprintf("web%d", n)
		if !strings.Contains(out, "server "+server+": ") {
			t.Errorf("apply output lacks %s:\n%s", server, out)
		}
		got := ts.containers(server)
		for _, app := range []string{fmt.Sprintf("db%d", n), fmt.Sprintf("app%d", n)} {
			if c, ok := got[ts.name(app)]; !ok || !c.Running() {
				t.Errorf("%s: %s not running: %+v", server, app, c)
			}
		}
	}

	t.Run("links start first on every server", func(t *testing.T) {
		deadline := time.Now().Add(10 * time.Second)
		for n := 1; n <= 3; n++ {
			l := logs[fmt.Sprintf("web%d", n)]
			started, created := "start "+ts.name(fmt.Sprintf("db%d", n)), "create "+ts.name(fmt.Sprintf("app%d", n))
			for l.index(created) < 0 && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if s, c := l.index(started), l.index(created); s < 0 || c < 0 || s > c {
				t.Errorf("web%d: want %q before %q; events: %v", n, started, created, l.events)
			}
		}
	})

	t.Run("status shows each server", func(t *testing.T) {
		code, out, errOut := ts.bee2d("status", "-c", ts.settings)
		if code != 0 {
			t.Fatalf("status = %d: %s", code, errOut)
		}
		for n := 1; n <= 3; n++ {
			for _, want := range []string{
				fmt.Sprintf(`web%d\s+network\s+%s-network\s+present\s+in sync`, n, ts.prefix),
				fmt.Sprintf(`web%d\s+container\s+%s\s+running\s+in sync`, n, ts.name(fmt.Sprintf("db%d", n))),
				fmt.Sprintf(`web%d\s+container\s+%s\s+running\s+in sync`, n, ts.name(fmt.Sprintf("app%d", n))),
			} {
				if !regexp.MustCompile(want).MatchString(out) {
					t.Errorf("status lacks %s:\n%s", want, out)
				}
			}
		}
	})

	t.Run("second apply changes nothing", func(t *testing.T) {
		code, out, errOut := ts.bee2d("apply", "-c", ts.settings)
		if code != 0 || strings.Count(out, ": no changes") != 3 {
			t.Fatalf("apply = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})

	// Certificates that web3 must not accept, from the CA tls init made and from another one.
	confDir := filepath.Join(ts.dir, "conf", "docker")
	ca, err := pki.Load(filepath.Join(confDir, "ca.pem"), filepath.Join(confDir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := ca.Issue(pki.Template{Usage: pki.Client, CommonName: "bee2d",
		NotBefore: time.Now().Add(-72 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if err := expired.Save(filepath.Join(ts.dir, "expired.crt"), filepath.Join(ts.dir, "expired.pem")); err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("another CA", time.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFile(filepath.Join(ts.dir, "other-ca.pem"), other.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	port := strings.TrimPrefix(ts.engine3.TCPHost, "tcp://127.0.0.1:")

	for i, c := range []struct {
		name string
		host string
		tls  map[string]string
		want string
	}{
		{"wrong CA", ts.engine3.TCPHost, map[string]string{"ca": "other-ca.pem"},
			"server web3: docker engine at " + ts.engine3.TCPHost + ": TLS: the engine's certificate is not signed by the CA in " + filepath.Join(ts.dir, "other-ca.pem")},
		{"expired certificate", ts.engine3.TCPHost, map[string]string{"cert": "expired.crt", "key": "expired.pem"},
			"server web3: docker host " + ts.engine3.TCPHost + ": TLS client certificate " + filepath.Join(ts.dir, "expired.crt") + " expired on"},
		{"wrong name", "tcp://localhost:" + port, nil,
			"server web3: docker engine at tcp://localhost:" + port + ": TLS: the engine's certificate is for 127.0.0.1, not localhost"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := map[string]map[string]dockerx.Container{}
			for _, s := range []string{"web1", "web2", "web3"} {
				before[s] = ts.containers(s)
			}
			// Every server's db gets a new env value: web1 and web2 must apply it, web3 must not be touched.
			version := fmt.Sprint(i + 1)
			ts.write(c.host, c.tls, map[string]string{"1": version, "2": version, "3": version})
			code, out, errOut := ts.bee2d("apply", "-c", ts.settings)
			if code != exitError {
				t.Fatalf("apply = %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitError, out, errOut)
			}
			if !strings.Contains(errOut, c.want) {
				t.Errorf("stderr lacks %q:\n%s", c.want, errOut)
			}
			for _, s := range []string{"web1", "web2"} {
				db := ts.name("db" + strings.TrimPrefix(s, "web"))
				if ts.containers(s)[db].ID == before[s][db].ID {
					t.Errorf("%s: %s was not recreated while web3 failed\nstdout:\n%s", s, db, out)
				}
			}
			if !sameContainers(ts.containers("web3"), before["web3"]) {
				t.Errorf("web3 changed although bee2d could not trust it")
			}
		})
	}

	t.Run("good settings again converge web3", func(t *testing.T) {
		ts.write(ts.engine3.TCPHost, nil, map[string]string{"1": "3", "2": "3", "3": "3"})
		code, out, errOut := ts.bee2d("apply", "-c", ts.settings)
		if code != 0 || !strings.Contains(out, "server web3: 1 applied, 0 failed") {
			t.Fatalf("apply = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})
}

// TestApplyOverSSH converges a server reached through sshd to the socket of an engine of the test's own:
// twenty containers, sixteen actions at a time, through one SSH login per bee2d run.
func TestApplyOverSSH(t *testing.T) {
	engine := testdocker.StartEngine(t, nil)
	cli := engine.Client(t)
	sshd := testdocker.StartSSHD(t)
	dir := t.TempDir()
	prefix := testdocker.UniquePrefix(t)
	build := filepath.Join(dir, "dockerfiles", "Sleeper")
	testdocker.GoBuildDir(t, build, testdocker.SleeperSource)
	image := prefix + "/sleeper:1"
	if _, err := cli.BuildImage(t.Context(), dockerx.BuildRequest{ContextDir: build, Tags: []string{image}}); err != nil {
		t.Fatal(err)
	}
	socket := strings.TrimPrefix(engine.Host, "unix://")
	var b strings.Builder
	fmt.Fprintf(&b, "servers:\n  web1:\n    docker:\n      host: \"ssh://%s@%s%s\"\n      ssh: {known_hosts: %s, identity: %s}\n",
		sshd.User, sshd.Addr, socket, sshd.KnownHosts, sshd.Identity)
	fmt.Fprintf(&b, "docker: {prefix: %s}\napplications:\n", prefix)
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&b, "  app%02d: {server: web1, image: %q, env: {index: %d}}\n", i, image, i)
	}
	settings := filepath.Join(dir, "settings.yml")
	if err := os.WriteFile(settings, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSH_AUTH_SOCK", "")

	code, out, errOut := bee2dRun(t, "apply", "-c", settings)
	if code != 0 || !strings.Contains(out, "server web1: 21 applied, 0 failed") {
		t.Fatalf("apply = %d\nstdout:\n%s\nstderr:\n%s\nsshd:\n%s", code, out, errOut, sshd.Log())
	}
	list, err := cli.ListContainers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, c := range list {
		if strings.HasPrefix(c.Name, prefix) && c.Running() {
			running++
		}
	}
	if running != 20 {
		t.Errorf("%d containers running, want 20", running)
	}
	if n := sshd.Logins(); n != 1 {
		t.Errorf("%d SSH logins for one apply, want 1", n)
	}
	if code, out, errOut := bee2dRun(t, "apply", "-c", settings); code != 0 || !strings.Contains(out, "server web1: no changes") {
		t.Fatalf("second apply = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
}
