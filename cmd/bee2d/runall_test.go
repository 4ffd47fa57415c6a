package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/config"
)

// stepSource is an application or a job, as its environment says: SERVE=1 serves (sleeps until stopped);
// otherwise it prints its NAME and exits with EXIT.
const stepSource = `package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	if os.Getenv("SERVE") != "" {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		return
	}
	code, _ := strconv.Atoi(os.Getenv("EXIT"))
	fmt.Printf("step %s exits %d\n", os.Getenv("NAME"), code)
	os.Exit(code)
}
`

// TestRunAllJobs: -d S:run without a job runs every job of the server one after the other in file order,
// stops at the first that fails (its exit code is bee2d's), and touches no application. Bee2 removed every
// container of the prefix first, applications included.
func TestRunAllJobs(t *testing.T) {
	cli := testdocker.Require(t)
	image := testdocker.BuildGoImage(t, cli, "run-all-step", stepSource)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	proxy := testdocker.StartProxy(t)
	file := filepath.Join(t.TempDir(), "settings.yml")

	// File order is not name order: zulu, alpha, mike. mike would succeed, but comes after alpha's failure.
	job := func(name string, code int) string {
		return fmt.Sprintf("  %s:\n    server: local\n    image: %s\n    env: {name: %s, exit: %d}\n", name, image, name, code)
	}
	settings := func(alphaExit int) string {
		return fmt.Sprintf("servers:\n  local: {docker: {host: %q}}\ndocker:\n  prefix: %s\n", proxy.Host, prefix) +
			fmt.Sprintf("applications:\n  web:\n    server: local\n    image: %s\n    env: {serve: 1}\n", image) +
			"jobs:\n" + job("zulu", 0) + job("alpha", alphaExit) + job("mike", 0)
	}
	write := func(yml string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	containers := func() map[string]struct{ id, state, status string } {
		t.Helper()
		list, err := cli.ListContainers(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]struct{ id, state, status string }{}
		for _, c := range list {
			if strings.HasPrefix(c.Name, prefix+"-") {
				out[c.Name] = struct{ id, state, status string }{c.ID, c.State, c.Status}
			}
		}
		return out
	}
	webName := config.ContainerName(prefix, config.KindApp, "web")
	jobName := func(j string) string { return config.ContainerName(prefix, config.KindJob, j) }

	// The application runs first, created by build (which runs no job).
	write(settings(7))
	if code, out, errOut := runBee2d(t, "-c", file, "-d", "local:build"); code != 0 {
		t.Fatalf("build exited %d\n%s%s", code, out, errOut)
	}
	web := containers()[webName]
	if web.state != "running" {
		t.Fatalf("web after build: %+v", web)
	}
	proxy.Requests()

	code, out, errOut := runBee2d(t, "-c", file, "-d", "local:run")
	if code != 7 {
		t.Fatalf("run exited %d, want alpha's 7\n%s%s", code, out, errOut)
	}
	zulu, alpha := strings.Index(out, "[zulu] step zulu exits 0"), strings.Index(out, "[alpha] step alpha exits 7")
	if zulu < 0 || alpha < 0 || zulu > alpha {
		t.Errorf("zulu then alpha did not run in file order:\n%s", out)
	}
	if strings.Contains(out, "[mike]") {
		t.Errorf("mike ran after alpha failed:\n%s", out)
	}
	if !strings.Contains(errOut, "alpha") {
		t.Errorf("the failing job is not named:\n%s", errOut)
	}
	after := containers()
	if c, ok := after[jobName("zulu")]; !ok || !strings.HasPrefix(c.status, "Exited (0)") {
		t.Errorf("zulu: %+v, %v", c, ok)
	}
	if c, ok := after[jobName("alpha")]; !ok || !strings.HasPrefix(c.status, "Exited (7)") {
		t.Errorf("alpha, kept for its logs: %+v, %v", c, ok)
	}
	if c, ok := after[jobName("mike")]; ok {
		t.Errorf("mike was created after alpha failed: %+v", c)
	}
	if got := after[webName]; got.id != web.id || got.state != "running" {
		t.Errorf("web was touched: before %+v, after %+v", web, got)
	}
	for _, w := range testdocker.Writes(proxy.Requests()) {
		if strings.Contains(w, web.id) || strings.Contains(w, webName) {
			t.Errorf("run made a write call on the application: %s", w)
		}
	}

	t.Run("once the failing job is fixed every job runs, and still no application is touched", func(t *testing.T) {
		write(settings(0))
		proxy.Requests()
		code, out, errOut := runBee2d(t, "-c", file, "-d", "local:run")
		if code != 0 {
			t.Fatalf("run exited %d\n%s%s", code, out, errOut)
		}
		var at []int
		for _, j := range []string{"zulu", "alpha", "mike"} {
			at = append(at, strings.Index(out, "["+j+"] step "+j+" exits 0"))
		}
		if at[0] < 0 || at[0] > at[1] || at[1] > at[2] {
			t.Errorf("jobs not run in file order (zulu, alpha, mike):\n%s", out)
		}
		after := containers()
		for _, j := range []string{"zulu", "alpha", "mike"} {
			if c := after[jobName(j)]; !strings.HasPrefix(c.status, "Exited (0)") {
				t.Errorf("%s: %+v", j, c)
			}
		}
		if got := after[webName]; got.id != web.id || got.state != "running" {
			t.Errorf("web was touched: before %+v, after %+v", web, got)
		}
		for _, w := range testdocker.Writes(proxy.Requests()) {
			if strings.Contains(w, web.id) || strings.Contains(w, webName) {
				t.Errorf("run made a write call on the application: %s", w)
			}
		}
	})
}
