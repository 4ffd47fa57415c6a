package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// zdDomain is the site of the zero-downtime test; HAProxy routes it to the web application.
const zdDomain = "zd.example.com"

// zdSettings is one server with bee2d's HAProxy (published on a free port of the loopback, so the test
// needs neither 80 nor 443) in front of the test's web application, which has a health check run by its
// own binary and a deploy mode.
const zdSettings = `servers:
  local: {}
docker:
  prefix: %[1]s
applications:
  web:
    server: local
    image: %[2]s
    env: {version: %[3]s, healthy: "%[4]s", domains: [%[5]s]}
    healthcheck:
      test: [%[6]s]
      interval: 200ms
      timeout: 3s
      retries: 3
    deploy: %[7]s
  haproxy:
    server: local
    build_dir: HAProxy
    build_args: {BASE: "%[8]s"}
    env: {domains: all}
    ports: ["127.0.0.1:%[9]d:443"]
`

// The load of a phase: zdWorkers clients GETting / back to back over HTTPS through HAProxy, for at least
// zdLoadFor and until the phase's zdRedeploys deploys are done.
const (
	zdWorkers   = 4
	zdLoadFor   = 20 * time.Second
	zdRedeploys = 5
)

// TestZeroDowntimeDeploy redeploys a web application behind bee2d's HAProxy with bee2d apply while clients
// ask for the site without pause. With deploy: start-first no request fails and every version is served;
// stop-first, for contrast, is measured the same way. A version that never becomes healthy is rolled back
// under the same load: no request fails and none is answered by the failing version, the failed one is
// kept stopped under <container>.failed-<hash12>, plan says the version is held, and a new version in the
// settings releases it. The phases run in turn on one stack, each from the state the one before left.
func TestZeroDowntimeDeploy(t *testing.T) {
	if testing.Short() {
		testdocker.Need(t, "end-to-end test under -short")
	}
	cli := testdocker.Require(t)
	z := newZDStack(t, cli)

	// The first version, and the site answering with it through HAProxy.
	z.apply(t, z.settings("v0", "yes", config.StartFirst), 0)
	z.serves(t, "v0")

	var startFirst, stopFirst, bad loadResult
	t.Run("start-first", func(t *testing.T) {
		startFirst = z.redeployUnderLoad(t, config.StartFirst, "s")
		if startFirst.failed != 0 {
			t.Errorf("%d of %d requests failed; want none:\n%s", startFirst.failed, startFirst.total(), startFirst.why())
		}
		for i := 1; i <= zdRedeploys; i++ {
			if v := fmt.Sprintf("s%d", i); startFirst.versions[v] == 0 {
				t.Errorf("version %s was never served: %v", v, startFirst.versions)
			}
		}
	})
	t.Run("stop-first", func(t *testing.T) {
		stopFirst = z.redeployUnderLoad(t, config.StopFirst, "p")
		if stopFirst.failed > 0 {
			t.Logf("the failures, for contrast:\n%s", stopFirst.why())
		}
		// The site is down between the versions, so some may never be served; the redeploys happened all
		// the same when some of them were.
		served := 0
		for i := 1; i <= zdRedeploys; i++ {
			if stopFirst.versions[fmt.Sprintf("p%d", i)] > 0 {
				served++
			}
		}
		if served == 0 {
			t.Errorf("none of the new versions was served: %v", stopFirst.versions)
		}
	})
	t.Run("bad version start-first", func(t *testing.T) {
		bad = z.badVersionUnderLoad(t)
	})
	t.Logf("zero-downtime: start-first %d redeploys, %s; stop-first %d redeploys, %s; bad version start-first: %s, %d answered by the failing version",
		zdRedeploys, startFirst, zdRedeploys, stopFirst, bad, bad.versions["bad"])
}

// badVersionUnderLoad deploys, start-first and under load, a version that never becomes healthy, and checks
// the rollback, the failed version kept, the hold and its release by a change of the settings.
func (z *zdStack) badVersionUnderLoad(t *testing.T) loadResult {
	t.Helper()
	old := fmt.Sprintf("p%d", zdRedeploys)
	z.apply(t, z.settings(old, "yes", config.StartFirst), 0) // the mode alone, before the bad version
	z.serves(t, old)
	before := container(t, z.cli, z.web)
	var code int
	var out string
	bad := z.underLoad(t, func() {
		code, out = z.run(t, "apply", "-c", z.settingsFile, "--log-level", "info")
	}, z.settings("bad", "no", config.StartFirst))
	t.Logf("%s, versions served %v; apply exited %d:\n%s", bad, bad.versions, code, out)
	if code != 1 || !strings.Contains(out, "failed its health check") {
		t.Errorf("apply exited %d; want 1, saying that the version failed its health check", code)
	}
	if bad.failed != 0 {
		t.Errorf("%d of %d requests failed; want none:\n%s", bad.failed, bad.total(), bad.why())
	}
	if n := bad.versions["bad"]; n > 0 {
		t.Errorf("%d of %d requests were answered by the version that failed its health check; want the old version %s to answer all",
			n, bad.total(), old)
	}
	if after := container(t, z.cli, z.web); after.ID != before.ID || !after.Running() {
		t.Errorf("%s is %.12s (%s), want the old %.12s still running", z.web, after.ID, after.State, before.ID)
	}
	z.serves(t, old)
	failed := z.failedContainers(t)
	if len(failed) != 1 {
		t.Fatalf("want one %s.failed-<hash12> container, have %v", z.web, names(failed))
	}
	hash12 := strings.TrimPrefix(failed[0].Name, z.web+".failed-")
	if failed[0].Running() {
		t.Errorf("%s runs; want it kept stopped", failed[0].Name)
	}
	if logs := testdocker.Logs("", failed[0].Name); !strings.Contains(logs, "version bad:") {
		t.Errorf("the failed container's log is not the bad version's:\n%s", logs)
	}

	// The version is held: plan says so, and another apply leaves things as they are.
	plan := z.plan(t)
	if !strings.Contains(plan, "held: version "+hash12) || !strings.Contains(plan, "docker logs "+failed[0].Name) {
		t.Errorf("plan does not say that version %s is held, with the log of %s:\n%s", hash12, failed[0].Name, plan)
	}
	// It says so again, and exits 1 for it; what matters is that it changes nothing.
	code, out = z.run(t, "apply", "-c", z.settingsFile, "--log-level", "info")
	if !strings.Contains(out, "held: version "+hash12) {
		t.Errorf("apply of the held settings (exit %d) does not say that version %s is held:\n%s", code, hash12, out)
	}
	if again := container(t, z.cli, z.web); again.ID != before.ID || !again.Running() {
		t.Errorf("an apply of the held settings replaced or stopped %s: %.12s %s", z.web, again.ID, again.State)
	}
	if f := z.failedContainers(t); len(f) != 1 || f[0].ID != failed[0].ID {
		t.Errorf("an apply of the held settings tried the held version again: failed containers %v", names(f))
	}

	// A change of the settings releases it.
	z.apply(t, z.settings("good", "yes", config.StartFirst), 0)
	z.serves(t, "good")
	if plan := z.plan(t); strings.Contains(plan, "held:") {
		t.Errorf("plan still holds a version after the settings changed:\n%s", plan)
	}
	return bad
}

// zdStack is the test's settings, binary and names.
type zdStack struct {
	cli          *dockerx.Client
	dir          string
	prefix       string
	web          string // the web application's container
	image        string
	base         string
	port         int // HAProxy's 443 on the loopback
	bee2d        string
	settingsFile string
}

func newZDStack(t *testing.T, cli *dockerx.Client) *zdStack {
	t.Helper()
	z := &zdStack{cli: cli, dir: t.TempDir(), prefix: testdocker.UniquePrefix(t)}
	z.web = z.prefix + "-app-web"
	z.base = baseImage(t, cli)
	z.image = testdocker.WebApp(t, cli)
	testdocker.Cleanup(t, cli, z.prefix)
	copyDir(t, filepath.Join("..", "dockerfiles", "HAProxy"), filepath.Join(z.dir, "dockerfiles", "HAProxy"))
	z.bee2d = bee2dBinary(t, z.dir)
	z.port = freePort(t, "127.0.0.1")
	z.settingsFile = filepath.Join(z.dir, "settings.yml")
	t.Cleanup(func() {
		if !t.Failed() && os.Getenv("E2E_LOGS") == "" {
			return
		}
		list, err := cli.ListContainers(context.Background())
		if err != nil {
			return
		}
		for _, c := range list {
			if strings.HasPrefix(c.Name, z.prefix) {
				t.Logf("--- %s (%s) log (end):\n%s", c.Name, c.State, logEnd(testdocker.Logs("", c.Name)))
			}
		}
	})
	return z
}

// logEnd is the end of a container's log. HAProxy logs every request, which would hide what explains a
// failure: its servers going down and up and changing address. Those lines are all kept, with the last
// few requests and how many were left out.
func logEnd(log string) string {
	var events, requests []string
	for _, line := range strings.Split(strings.TrimRight(log, "\n"), "\n") {
		if strings.Contains(line, " https~ ") || strings.Contains(line, " http ") {
			requests = append(requests, line)
		} else {
			events = append(events, line)
		}
	}
	events = events[max(0, len(events)-80):]
	if len(requests) > 10 {
		events = append(events, fmt.Sprintf("(%d requests logged, the last 10:)", len(requests)))
		requests = requests[len(requests)-10:]
	}
	return strings.Join(append(events, requests...), "\n")
}

func (z *zdStack) settings(version, healthy, deploy string) string {
	test := make([]string, len(testdocker.WebAppProbe))
	for i, a := range testdocker.WebAppProbe {
		test[i] = fmt.Sprintf("%q", a)
	}
	return fmt.Sprintf(zdSettings, z.prefix, z.image, version, healthy, zdDomain, strings.Join(test, ", "), deploy, z.base, z.port)
}

// write replaces the settings file by a rename, as an editor does; only its owner reads it, as bee2d asks.
func (z *zdStack) write(t *testing.T, text string) {
	t.Helper()
	tmp := z.settingsFile + ".new"
	if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, z.settingsFile); err != nil {
		t.Fatal(err)
	}
}

// run runs the bee2d binary and returns its exit code and output; it fails the test only when bee2d could
// not run or did not exit by itself.
func (z *zdStack) run(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, z.bee2d, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil && (cmd.ProcessState == nil || cmd.ProcessState.ExitCode() < 0) {
		t.Fatalf("bee2d %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return cmd.ProcessState.ExitCode(), out.String()
}

// apply writes the settings and converges once, wanting exit code want.
func (z *zdStack) apply(t *testing.T, text string, want int) string {
	t.Helper()
	z.write(t, text)
	code, out := z.run(t, "apply", "-c", z.settingsFile, "--log-level", "info")
	if code != want {
		t.Fatalf("bee2d apply exited %d, want %d:\n%s", code, want, out)
	}
	return out
}

func (z *zdStack) plan(t *testing.T) string {
	t.Helper()
	_, out := z.run(t, "plan", "-c", z.settingsFile)
	return out
}

// client asks for the site at HAProxy's published port over HTTPS with the site's name as SNI and Host.
// HAProxy serves its self-signed placeholder certificate, as it does before CertBot has a real one. Each
// client keeps its connection to HAProxy, as a browser does.
func (z *zdStack) client() *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	addr := fmt.Sprintf("127.0.0.1:%d", z.port)
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return dialer.DialContext(ctx, network, addr)
			},
			TLSClientConfig: &tls.Config{ServerName: zdDomain, InsecureSkipVerify: true},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (z *zdStack) get(c *http.Client) (int, string, error) {
	resp, err := c.Get("https://" + zdDomain + "/")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// redeployUnderLoad switches the application to a deploy mode and then, under load, applies zdRedeploys
// new versions named <tag>1... in turn, spread over the load's time. Every apply must succeed, the container
// be replaced, and the site serve the last version at the end; the caller judges the requests.
func (z *zdStack) redeployUnderLoad(t *testing.T, mode, tag string) loadResult {
	t.Helper()
	// The mode alone first, with the version already running, so the load measures only the redeploys.
	current := container(t, z.cli, z.web)
	z.apply(t, z.settings(strings.TrimPrefix(containerVersion(t, current.Name), "VERSION="), "yes", mode), 0)
	first := container(t, z.cli, z.web)
	var applied []string
	res := z.underLoad(t, func() {
		start := time.Now()
		for i := 1; i <= zdRedeploys; i++ {
			// Spread over the load's time, so each version serves a while before the next one comes.
			time.Sleep(time.Until(start.Add(time.Duration(i-1) * zdLoadFor / zdRedeploys)))
			v := fmt.Sprintf("%s%d", tag, i)
			z.write(t, z.settings(v, "yes", mode))
			code, out := z.run(t, "apply", "-c", z.settingsFile, "--log-level", "info")
			if code != 0 {
				t.Errorf("apply of %s exited %d:\n%s", v, code, out)
				return
			}
			applied = append(applied, v)
		}
	}, "")
	t.Logf("%s, versions served %v", res, res.versions)
	if len(applied) != zdRedeploys {
		t.Fatalf("%d of %d redeploys applied", len(applied), zdRedeploys)
	}
	if last := container(t, z.cli, z.web); last.ID == first.ID {
		t.Errorf("%s is still the container from before the redeploys", z.web)
	}
	z.serves(t, applied[len(applied)-1])
	return res
}

// serves waits until the site answers with version through HAProxy.
func (z *zdStack) serves(t *testing.T, version string) {
	t.Helper()
	c := z.client()
	defer c.CloseIdleConnections()
	err := eventually(t.Context(), 2*time.Minute, func() error {
		code, body, err := z.get(c)
		if err != nil {
			return err
		}
		if code != 200 || body != version {
			return fmt.Errorf("status %d: %q", code, body)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the site never served %s through HAProxy: %v", version, err)
	}
}

// underLoad runs deploy while zdWorkers clients ask for the site back to back, for at least zdLoadFor and
// until deploy has returned and a second more; settings, if not empty, are written first.
func (z *zdStack) underLoad(t *testing.T, deploy func(), settings string) loadResult {
	t.Helper()
	if settings != "" {
		z.write(t, settings)
	}
	res := loadResult{versions: map[string]int{}, reasons: map[string]int{}}
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range zdWorkers {
		c := z.client()
		wg.Go(func() {
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				t0 := time.Now()
				code, body, err := z.get(c)
				took := time.Since(t0)
				mu.Lock()
				res.slowest = max(res.slowest, took)
				if took > time.Second {
					res.slow++
				}
				switch {
				case err != nil:
					res.failed++
					res.reasons[shortReason(err.Error())]++
				case code != 200:
					res.failed++
					res.reasons[fmt.Sprintf("%d %s", code, shortReason(body))]++
				default:
					res.versions[body]++
				}
				mu.Unlock()
			}
		})
	}
	start := time.Now()
	time.Sleep(time.Second) // the clients are connected and answered before anything changes
	deploy()
	time.Sleep(max(time.Second, time.Until(start.Add(zdLoadFor))))
	close(stop)
	wg.Wait()
	return res
}

// loadResult counts the answers of a phase: the versions that answered 200, and the failures by reason;
// and how long the slowest request took, and how many took over a second (a retry behind HAProxy, say).
type loadResult struct {
	versions map[string]int
	failed   int
	reasons  map[string]int
	slowest  time.Duration
	slow     int
}

// String is the phase in a few greppable words.
func (r loadResult) String() string {
	return fmt.Sprintf("%d requests, %d failed, %d over 1s (slowest %v)", r.total(), r.failed, r.slow, r.slowest.Round(time.Millisecond))
}

func (r loadResult) total() int {
	n := r.failed
	for _, c := range r.versions {
		n += c
	}
	return n
}

func (r loadResult) why() string {
	var lines []string
	for _, k := range slices.Sorted(maps.Keys(r.reasons)) {
		lines = append(lines, fmt.Sprintf("  %5d  %s", r.reasons[k], k))
	}
	return strings.Join(lines, "\n")
}

// shortReason keeps failure reasons few and short enough to count: one line, no addresses' ports.
func shortReason(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// failedContainers are the containers kept from versions of the web application that failed their check.
func (z *zdStack) failedContainers(t *testing.T) []dockerx.Container {
	t.Helper()
	list, err := z.cli.ListContainers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var out []dockerx.Container
	for _, c := range list {
		if strings.HasPrefix(c.Name, z.web+".failed-") {
			out = append(out, c)
		}
	}
	return out
}

// containerVersion is the VERSION=... of a container's environment.
func containerVersion(t *testing.T, name string) string {
	t.Helper()
	c, err := testdocker.Inspect("", name)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range c.Config.Env {
		if strings.HasPrefix(e, "VERSION=") {
			return e
		}
	}
	t.Fatalf("%s has no VERSION in its environment", name)
	return ""
}

func names(cs []dockerx.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}
