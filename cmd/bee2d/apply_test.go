package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// stack is a copy of examples/ in a temporary directory, renamed so that it cannot meet a stack started
// with `make run`: its own prefix, volume and port, and the engine reached through a recording proxy.
type stack struct {
	t        *testing.T
	dir      string
	settings string
	prefix   string
	volume   string
	port     int
	proxy    *testdocker.Proxy
	cli      *dockerx.Client
}

func newStack(t *testing.T) *stack {
	t.Helper()
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	st := &stack{t: t, dir: t.TempDir(), prefix: prefix, volume: prefix + "-site", port: freePort(t), cli: cli}
	testdocker.Cleanup(t, cli, prefix, st.volume)
	st.proxy = testdocker.StartProxy(t)

	for _, prog := range []string{"static", "front"} {
		dir := filepath.Join(st.dir, "dockerfiles", strings.ToUpper(prog[:1])+prog[1:])
		copyDir(t, filepath.Join("..", "..", "examples", "dockerfiles", filepath.Base(dir)), dir)
		build := exec.Command("go", "build", "-trimpath", "-ldflags=-s", "-o", filepath.Join(dir, prog), "./examples/cmd/"+prog)
		build.Dir = filepath.Join("..", "..")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("build %s: %v\n%s", prog, err, out)
		}
	}
	example, err := os.ReadFile(filepath.Join("..", "..", "examples", "settings.yml"))
	if err != nil {
		t.Fatal(err)
	}
	st.settings = filepath.Join(st.dir, "settings.yml")
	st.write(string(example))
	return st
}

// write stores the settings after renaming the example's prefix, volume and port to the stack's own and
// pointing the server at the proxy.
func (st *stack) write(yml string) {
	st.t.Helper()
	yml = strings.ReplaceAll(yml, "bee2ex-site", st.volume)
	yml = strings.ReplaceAll(yml, "prefix: bee2ex", "prefix: "+st.prefix)
	yml = strings.ReplaceAll(yml, "8480", fmt.Sprint(st.port))
	yml = strings.Replace(yml, "local: {}", "local: {docker: {host: \""+st.proxy.Host+"\"}}", 1)
	if err := os.WriteFile(st.settings, []byte(yml), 0o644); err != nil {
		st.t.Fatal(err)
	}
}

func (st *stack) read() string {
	b, err := os.ReadFile(st.settings)
	if err != nil {
		st.t.Fatal(err)
	}
	return string(b)
}

// bee2d runs the command line in process and returns its exit code and output.
func (st *stack) bee2d(args ...string) (int, string, string) {
	st.t.Helper()
	var out, errOut bytes.Buffer
	code := run(st.t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func (st *stack) mustApply() string {
	st.t.Helper()
	code, out, errOut := st.bee2d("apply", "-c", st.settings)
	if code != 0 {
		st.t.Fatalf("apply exited %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	return out
}

// containers maps the stack's container names to their id and state.
func (st *stack) containers() map[string]dockerx.Container {
	st.t.Helper()
	list, err := st.cli.ListContainers(st.t.Context())
	if err != nil {
		st.t.Fatal(err)
	}
	out := map[string]dockerx.Container{}
	for _, c := range list {
		if strings.HasPrefix(c.Name, st.prefix) {
			out[c.Name] = c
		}
	}
	return out
}

func (st *stack) name(app string) string { return st.prefix + "-app-" + app }

// get fetches the front page, retrying while the containers start.
func (st *stack) get() (string, http.Header) {
	st.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", st.port))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(body), resp.Header
			}
			last = fmt.Errorf("status %d: %s", resp.StatusCode, body)
		} else {
			last = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	st.t.Fatalf("front never answered: %v", last)
	return "", nil
}

func TestApplyExampleEndToEnd(t *testing.T) {
	st := newStack(t)

	// A fresh apply brings the stack up; the front reaches the static server by container name and
	// returns the page the static server keeps in the volume.
	st.mustApply()
	body, hdr := st.get()
	page := "Hello from the " + st.volume + " volume" // the example's seed text, renamed with the volume
	if !strings.Contains(body, page) {
		t.Fatalf("front returned %q, want the page from the volume", body)
	}
	before := st.containers()
	static, front := before[st.name("static")], before[st.name("front")]
	if !static.Running() || !front.Running() {
		t.Fatalf("containers not running: %+v", before)
	}
	if got := hdr.Get("X-Bee2ex-Static"); !strings.HasPrefix(static.ID, got) || got == "" {
		t.Errorf("response came from static %q, want container %s", got, static.ID[:12])
	}

	t.Run("status shows every resource in sync", func(t *testing.T) {
		code, out, errOut := st.bee2d("status", "-c", st.settings)
		if code != 0 {
			t.Fatalf("status = %d: %s", code, errOut)
		}
		for _, want := range []string{
			`local\s+network\s+` + st.prefix + `-network\s+present\s+in sync`,
			`local\s+volume\s+` + st.volume + `\s+present\s+in sync`,
			`local\s+container\s+` + st.name("static") + `\s+running\s+in sync`,
			`local\s+container\s+` + st.name("front") + `\s+running\s+in sync`,
		} {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("status lacks %s:\n%s", want, out)
			}
		}
	})

	t.Run("second apply makes no write call and lists containers once", func(t *testing.T) {
		st.proxy.Requests()
		out := st.mustApply()
		reqs := st.proxy.Requests()
		if w := testdocker.Writes(reqs); len(w) > 0 {
			t.Errorf("no-change apply made write calls: %v", w)
		}
		lists := 0
		for _, r := range reqs {
			if strings.HasPrefix(r, "GET /containers/json") {
				lists++
			} else if !strings.HasSuffix(r, "/_ping") {
				t.Errorf("unexpected call in a no-change apply: %s", r)
			}
		}
		if lists != 1 {
			t.Errorf("container list calls = %d, want 1 (%v)", lists, reqs)
		}
		if !strings.Contains(out, "no changes") {
			t.Errorf("apply output %q does not say no changes", out)
		}
		if code, out, _ := st.bee2d("plan", "-c", st.settings, "--detailed-exitcode"); code != 0 {
			t.Errorf("plan --detailed-exitcode = %d, want 0\n%s", code, out)
		}
	})

	t.Run("an env change recreates only that container", func(t *testing.T) {
		st.write(strings.Replace(st.read(), "root: /www", "root: /www\n      cache_seconds: 60", 1))
		code, out, _ := st.bee2d("plan", "-c", st.settings, "--detailed-exitcode")
		if code != 2 || !strings.Contains(out, "recreate container "+st.name("static")+": env CACHE_SECONDS added") {
			t.Fatalf("plan = %d:\n%s", code, out)
		}
		st.mustApply()
		after := st.containers()
		if after[st.name("static")].ID == static.ID {
			t.Errorf("static was not recreated")
		}
		if after[st.name("front")].ID != front.ID {
			t.Errorf("front was recreated although it did not change")
		}
		if body, _ := st.get(); !strings.Contains(body, page) {
			t.Errorf("after the recreate the page is %q", body)
		}
		if len(after) != 2 {
			t.Errorf("containers after recreate: %v", keys(after))
		}
		static = after[st.name("static")]
	})

	t.Run("a container stopped by hand is started again", func(t *testing.T) {
		if err := st.cli.StopContainer(t.Context(), front.ID, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		st.mustApply()
		c := st.containers()[st.name("front")]
		if c.ID != front.ID || !c.Running() {
			t.Errorf("front after apply: id %s (was %s), state %s", c.ID, front.ID, c.State)
		}
	})

	t.Run("an unmanaged container named like a managed one is left alone", func(t *testing.T) {
		intruder, err := st.cli.CreateContainer(t.Context(), dockerx.ContainerSpec{Name: st.name("extra"), Image: static.Image, Env: []string{"PORT=8080", "ROOT=/tmp"}})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.cli.StartContainer(t.Context(), intruder); err != nil {
			t.Fatal(err)
		}
		st.write(st.read() + "  extra:\n    server: local\n    image: " + static.Image + "\n")
		code, _, errOut := st.bee2d("apply", "-c", st.settings)
		if code != 1 || !strings.Contains(errOut, "did not create") {
			t.Errorf("apply = %d, want 1 naming the foreign container; stderr:\n%s", code, errOut)
		}
		c := st.containers()[st.name("extra")]
		if c.ID != intruder || !c.Running() || c.Labels[labels.Owner] != "" {
			t.Errorf("the foreign container was touched: %+v", c)
		}
		if err := st.cli.RemoveContainer(t.Context(), intruder); err != nil {
			t.Fatal(err)
		}
		st.write(strings.TrimSuffix(st.read(), "  extra:\n    server: local\n    image: "+static.Image+"\n"))
	})

	t.Run("invalid settings change nothing", func(t *testing.T) {
		good := st.read()
		defer st.write(good)
		st.write(strings.Replace(good, "link: [static]", "link: [statik]", 1))
		st.proxy.Requests()
		beforeBad := st.containers()
		code, _, errOut := st.bee2d("apply", "-c", st.settings)
		if code != 1 {
			t.Errorf("apply of invalid settings = %d, want 1", code)
		}
		if !regexp.MustCompile(`settings\.yml:\d+:\d+: applications\.front\.link\[0\]: .*"statik".*did you mean "static"`).MatchString(errOut) {
			t.Errorf("error does not name the place:\n%s", errOut)
		}
		if reqs := st.proxy.Requests(); len(reqs) > 0 {
			t.Errorf("invalid settings reached the engine: %v", reqs)
		}
		if after := st.containers(); !sameContainers(beforeBad, after) {
			t.Errorf("containers changed: %v -> %v", beforeBad, after)
		}
	})

	t.Run("an application removed from the settings loses its container, not its volume", func(t *testing.T) {
		yml := st.read()
		i := strings.Index(yml, "  front:")
		st.write(yml[:i])
		st.mustApply()
		after := st.containers()
		if _, ok := after[st.name("front")]; ok {
			t.Errorf("front still exists")
		}
		if after[st.name("static")].ID != static.ID {
			t.Errorf("static was touched")
		}
		vols, err := st.cli.ListVolumes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(vols, func(v dockerx.Volume) bool { return v.Name == st.volume }) {
			t.Errorf("volume %s was removed", st.volume)
		}
	})
}

func sameContainers(a, b map[string]dockerx.Container) bool {
	if len(a) != len(b) {
		return false
	}
	for n, c := range a {
		if b[n].ID != c.ID || b[n].State != c.State {
			return false
		}
	}
	return true
}

func keys(m map[string]dockerx.Container) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if d.Name() == "static" || d.Name() == "front" {
			return nil // built binaries are rebuilt by the test
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Bee2's -d commands keep their meaning: build creates what is missing and leaves the rest; rebuild:APP
// replaces one application with a fresh image; rebuild replaces all of the server's applications.
func TestBee2BuildAndRebuild(t *testing.T) {
	st := newStack(t)
	bee2 := func(cmd string) {
		t.Helper()
		if code, out, errOut := st.bee2d("-c", st.settings, "-d", cmd); code != 0 {
			t.Fatalf("-d %s exited %d\n%s%s", cmd, code, out, errOut)
		}
	}
	bee2("local:build:static")
	only := st.containers()
	if got := keys(only); !slices.Equal(got, []string{st.name("static")}) {
		t.Fatalf("build:static made %v", got)
	}
	bee2("local:build")
	first := st.containers()
	if len(first) != 2 || first[st.name("static")].ID != only[st.name("static")].ID {
		t.Fatalf("build made %v and must keep static as it was", keys(first))
	}
	page := "Hello from the " + st.volume + " volume"
	if body, _ := st.get(); !strings.Contains(body, page) {
		t.Fatalf("page %q", body)
	}

	// A changed setting is not applied by build: the container exists, so it stays as it is.
	st.write(strings.Replace(st.read(), "root: /www", "root: /www\n      cache_seconds: 5", 1))
	bee2("local:build")
	if now := st.containers(); !sameContainers(first, now) {
		t.Fatalf("build touched existing containers")
	}

	bee2("local:rebuild:static")
	second := st.containers()
	if second[st.name("static")].ID == first[st.name("static")].ID || second[st.name("front")].ID != first[st.name("front")].ID {
		t.Fatalf("rebuild:static: static %s→%s, front %s→%s", first[st.name("static")].ID[:12], second[st.name("static")].ID[:12],
			first[st.name("front")].ID[:12], second[st.name("front")].ID[:12])
	}
	if body, _ := st.get(); !strings.Contains(body, page) {
		t.Fatalf("after rebuild the volume's page is gone: %q", body)
	}

	bee2("local:rebuild")
	third := st.containers()
	for _, app := range []string{"static", "front"} {
		if third[st.name(app)].ID == second[st.name(app)].ID || !third[st.name(app)].Running() {
			t.Errorf("rebuild did not replace %s", app)
		}
	}
	if code, out, _ := st.bee2d("plan", "-c", st.settings, "--detailed-exitcode"); code != 0 {
		t.Errorf("after rebuild the plan is not empty (%d):\n%s", code, out)
	}
}
