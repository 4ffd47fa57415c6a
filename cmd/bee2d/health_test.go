package main

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// healthSettings asks for web, whose health check passes or fails as good says, deployed as deploy says,
// and for front, which links to it.
func (st *daemonStack) healthSettings(version string, good bool, deploy string) string {
	code := "0"
	if !good {
		code = "1"
	}
	return fmt.Sprintf(`servers:
  local: {docker: {host: %q}}
docker:
  prefix: %s
applications:
  web:
    server: local
    image: %s
    env: {version: %s}
    deploy: %s
    healthcheck:
      test: [/app, exit, "%s"]
      interval: 300ms
      timeout: 2s
      retries: 2
  front:
    server: local
    image: %s
    link: [web]
`, st.proxy.Host, st.prefix, st.image, version, deploy, code, st.image)
}

// envOf reads one variable of a container's environment from its inspect.
func (st *daemonStack) envOf(name, key string) string {
	st.t.Helper()
	v, err := st.tryEnv(name, key)
	if err != nil {
		st.t.Fatal(err)
	}
	return v
}

// tryEnv is envOf for a container that may be replaced meanwhile.
func (st *daemonStack) tryEnv(name, key string) (string, error) {
	in, err := testdocker.Inspect(st.proxy.Host, name)
	if err != nil {
		return "", err
	}
	for _, kv := range in.Config.Env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v, nil
		}
	}
	return "", nil
}

// failedOf lists web's failed versions kept for their logs.
func failedOf(cs map[string]dockerx.Container, final string) []dockerx.Container {
	var out []dockerx.Container
	for name, c := range cs {
		if strings.HasPrefix(name, final+".failed-") {
			out = append(out, c)
		}
	}
	return out
}

// Health-gated deploys on the real engine, stop-first and start-first: a good version replaces the old one
// once healthy; a bad one is rolled back, kept stopped as the failed version and held (plan and status say
// so, apply leaves it) until --retry-held or a change of the settings; front, which links to web, is
// created only once web is healthy.
func TestHealthGatedDeploys(t *testing.T) {
	st := newDaemonStack(t)
	web, front := st.name("web"), st.name("front")
	apply := func(t *testing.T, wantOK bool, extra ...string) string {
		t.Helper()
		code, out, errOut := bee2dRun(t, append([]string{"apply", "-c", st.file}, extra...)...)
		if (code == 0) != wantOK {
			t.Fatalf("apply %v = %d, want success %v\n%s%s", extra, code, wantOK, out, errOut)
		}
		return out + errOut
	}

	// A fresh server: front is created after web's first healthy report.
	st.write(st.healthSettings("v1", true, "stop-first"))
	apply(t, true)
	cs := st.containers()
	if cs[web].Health != "healthy" || !cs[front].Running() {
		t.Fatalf("after the first apply: web %s (%s), front %s", cs[web].State, cs[web].Health, cs[front].State)
	}
	// The first probe runs one interval after the start: a front created sooner did not wait.
	webIn, err := testdocker.Inspect(st.proxy.Host, web)
	if err != nil {
		t.Fatal(err)
	}
	frontIn, err := testdocker.Inspect(st.proxy.Host, front)
	if err != nil {
		t.Fatal(err)
	}
	if gap := frontIn.Created.Sub(webIn.State.StartedAt); gap < 300*time.Millisecond {
		t.Errorf("front was created %s after web started, before web's first probe", gap)
	}
	code, out, _ := bee2dRun(t, "status", "-c", st.file)
	if code != 0 || !strings.Contains(out, "running (healthy)") {
		t.Errorf("status = %d:\n%s", code, out)
	}

	for _, deploy := range []string{"stop-first", "start-first"} {
		t.Run(deploy, func(t *testing.T) {
			st.write(st.healthSettings("good-"+deploy, true, deploy))
			apply(t, true)
			cs := st.containers()
			if got := st.envOf(web, "VERSION"); got != "good-"+deploy || cs[web].Health != "healthy" {
				t.Fatalf("after a good deploy web runs %q (%s)", got, cs[web].Health)
			}
			if len(cs) != 2 {
				t.Errorf("containers after a good deploy: %v", keys(cs))
			}
			servingID := cs[web].ID

			// A version whose check fails: rolled back, kept, held.
			st.write(st.healthSettings("bad-"+deploy, false, deploy))
			msg := apply(t, false)
			if !strings.Contains(msg, "failed its health check (unhealthy") {
				t.Errorf("apply of a bad version says:\n%s", msg)
			}
			cs = st.containers()
			if cs[web].ID != servingID || !cs[web].Running() || st.envOf(web, "VERSION") != "good-"+deploy {
				t.Fatalf("after the rollback web is %s %s running %q", cs[web].ID[:12], cs[web].State, st.envOf(web, "VERSION"))
			}
			failed := failedOf(cs, web)
			if len(failed) != 1 || failed[0].Running() || st.envOf(failed[0].Name, "VERSION") != "bad-"+deploy {
				t.Fatalf("failed versions: %+v", failed)
			}
			hash := failed[0].Labels[labels.SpecHash]
			code, out, _ := bee2dRun(t, "plan", "-c", st.file)
			if code != 0 || !strings.Contains(out, "held: version "+hash[:12]+" failed its health check at ") ||
				!strings.Contains(out, "(log: docker logs "+failed[0].Name+")") {
				t.Errorf("plan = %d:\n%s", code, out)
			}
			if _, err := time.Parse(time.RFC3339, strings.Fields(out[strings.Index(out, "health check at ")+len("health check at "):])[0]); err != nil {
				t.Errorf("the plan's time of failure: %v", err)
			}
			// Held: apply does not try it again, and says why it leaves web as it is.
			if msg := apply(t, false); !strings.Contains(msg, "held: version "+hash[:12]) {
				t.Errorf("apply of a held version says:\n%s", msg)
			}
			if now := st.containers(); now[web].ID != servingID || now[failed[0].Name].ID != failed[0].ID {
				t.Fatalf("a held version was tried again")
			}
			// Unless asked; it fails again and replaces the failed version kept.
			apply(t, false, "--retry-held", "web")
			now := st.containers()
			again := failedOf(now, web)
			if now[web].ID != servingID || len(again) != 1 || again[0].ID == failed[0].ID {
				t.Fatalf("after --retry-held: web %s, failed %v", now[web].ID[:12], again)
			}

			// A change of the settings releases the hold; the good version removes the failed one.
			st.write(st.healthSettings("fixed-"+deploy, true, deploy))
			apply(t, true)
			now = st.containers()
			if st.envOf(web, "VERSION") != "fixed-"+deploy || len(failedOf(now, web)) != 0 || len(now) != 2 {
				t.Fatalf("after the fix: web runs %q, containers %v", st.envOf(web, "VERSION"), keys(now))
			}
		})
	}
}

// SIGKILL at each step of a health-gated deploy, stop-first and start-first, of a good version and of a bad
// one: the next apply leaves exactly one web under its name, running the new version (good) or the old
// one (bad, with the failed version kept and held), and nothing under a temporary name.
func TestKilledDuringGatedDeploy(t *testing.T) {
	const (
		inspect = "/containers/[^/]+/json"
		rename  = "/containers/[^/]+/rename"
		remove  = "/containers/[^/]+"
	)
	ks := &killStack{daemonStack: newDaemonStack(t), bin: bee2dBinary(t)}
	st := ks.daemonStack
	web := st.name("web")
	st.write(st.healthSettings("v0", true, "stop-first"))
	if code, out, errOut := bee2dRun(t, "apply", "-c", st.file); code != 0 {
		t.Fatalf("apply = %d\n%s%s", code, out, errOut)
	}
	version := 0
	for _, c := range []struct {
		name, deploy string
		good         bool
		method, path string
		// query narrows the call held by its query (a rename to one name, say).
		query string
	}{
		{"stop-first during the gate", "stop-first", true, http.MethodGet, inspect, ""},
		{"stop-first removing the old one", "stop-first", true, http.MethodDelete, remove, ""},
		{"stop-first rollback keeping the failed one", "stop-first", false, http.MethodPost, rename, `\.failed-`},
		{"stop-first rollback naming the old one", "stop-first", false, http.MethodPost, rename, `name=` + web + `$`},
		{"start-first during the gate", "start-first", true, http.MethodGet, inspect, ""},
		{"start-first removing the old one", "start-first", true, http.MethodDelete, remove, ""},
		{"start-first setting the old one aside", "start-first", true, http.MethodPost, rename, `name=` + web + `-bee2d-old-`},
		{"start-first naming the new one", "start-first", true, http.MethodPost, rename, `name=` + web + `$`},
		{"start-first stopping the old one", "start-first", true, http.MethodPost, "/containers/[^/]+/stop", ""},
		{"start-first rollback keeping the failed one", "start-first", false, http.MethodPost, rename, `\.failed-`},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := st.envOf(web, "VERSION")
			version++
			v := fmt.Sprintf("v%d", version)
			st.write(st.healthSettings(v, c.good, c.deploy))
			hold := ks.proxy.Hold(c.method, c.path)
			if c.query != "" {
				ks.proxy.Release(hold)
				hold = ks.proxy.HoldQuery(c.method, c.path, c.query)
			}
			ks.killWhenHeld(hold, nil, c.method+" "+c.path+"?"+c.query, "apply", "-c", st.file)

			code, out, errOut := bee2dRun(t, "apply", "-c", st.file)
			if (code == 0) != c.good {
				t.Fatalf("apply after the kill = %d\n%s%s", code, out, errOut)
			}
			cs := st.containers()
			want := v
			if !c.good {
				want = before
			}
			if !cs[web].Running() || st.envOf(web, "VERSION") != want {
				t.Fatalf("after the kill and an apply web is %s with %q, want %q\n%s%s", cs[web].State, st.envOf(web, "VERSION"), want, out, errOut)
			}
			for name, ct := range cs {
				switch {
				case name == web || name == st.name("front"):
				case !c.good && strings.HasPrefix(name, web+".failed-") && !ct.Running():
				default:
					t.Errorf("container %s (%s) left over", name, ct.State)
				}
			}
			if failed := failedOf(cs, web); !c.good && len(failed) != 1 {
				t.Errorf("failed versions kept: %d", len(failed))
			}
			if !c.good {
				// Back to a good version for the next case: the hold ends with the change.
				version++
				st.write(st.healthSettings(fmt.Sprintf("v%d", version), true, c.deploy))
				if code, out, errOut := bee2dRun(t, "apply", "-c", st.file); code != 0 {
					t.Fatalf("apply of a good version = %d\n%s%s", code, out, errOut)
				}
			}
		})
	}
}

// The daemon gates its deploys the same way, and its metrics say so: a bad version is rolled back
// (bee2_rollbacks_total), web stays healthy (bee2_container_health 2) but out of sync while its version is
// held, and an edit to a good version brings it back in sync without a restart of the daemon.
func TestDaemonRollsBackABadVersion(t *testing.T) {
	st := newDaemonStack(t)
	web := st.name("web")
	st.write(st.healthSettings("v1", true, "start-first"))
	st.start()
	series := func(name string) string { return fmt.Sprintf(`%s{name=%q,server="local"}`, name, web) }
	waitMetric := func(name string, want float64) {
		t.Helper()
		st.until(fmt.Sprintf("%s = %v", name, want), func() error {
			if v, ok := metric(t, st.listen, name); !ok || v != want {
				return fmt.Errorf("%v (present %v)", v, ok)
			}
			return nil
		})
	}
	waitMetric(series("bee2_container_health"), 2)
	waitMetric(`bee2_resource_in_sync{kind="container",name="`+web+`",server="local"}`, 1)
	good := st.containers()[web].ID

	st.write(st.healthSettings("v2", false, "start-first"))
	waitMetric(series("bee2_rollbacks_total"), 1)
	waitMetric(`bee2_resource_in_sync{kind="container",name="`+web+`",server="local"}`, 0)
	cs := st.containers()
	if cs[web].ID != good || cs[web].Health != "healthy" || len(failedOf(cs, web)) != 1 {
		t.Fatalf("after the rollback: web %s (%s), failed %v", cs[web].ID[:12], cs[web].Health, failedOf(cs, web))
	}
	if v, _ := metric(t, st.listen, series("bee2_container_health")); v != 2 {
		t.Errorf("bee2_container_health = %v while the old version serves", v)
	}

	st.write(st.healthSettings("v3", true, "start-first"))
	waitMetric(`bee2_resource_in_sync{kind="container",name="`+web+`",server="local"}`, 1)
	st.until("v3 serving and the failed version gone", func() error {
		v, err := st.tryEnv(web, "VERSION")
		if n := len(failedOf(st.containers(), web)); err != nil || v != "v3" || n != 0 {
			return fmt.Errorf("web runs %q (%v), failed %d", v, err, n)
		}
		return nil
	})
	if v, _ := metric(t, st.listen, series("bee2_rollbacks_total")); v != 1 {
		t.Errorf("bee2_rollbacks_total = %v after a good deploy", v)
	}
}
