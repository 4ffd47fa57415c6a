package reconcile

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bee2d/bee2d/pkg/engine"
)

// deployBase is a database with a health check, an API linking to it that deploys start-first, and a front
// end linking to the API that asks for start-first but publishes a port.
const deployBase = `
servers:
  web1: {}
docker:
  prefix: bee2
applications:
  db:
    server: web1
    image: db:1
    healthcheck:
      test: pg_isready -q
      interval: 1s
  api:
    server: web1
    image: api:1
    link: [db]
    deploy: start-first
    healthcheck:
      test: [/api, -probe]
      interval: 500ms
      retries: 2
    volumes: ["cache:/cache:ro"]
  front:
    server: web1
    image: front:1
    link: [api]
    ports: [80]
    deploy: start-first
`

var api2 = strings.Replace(deployBase, "image: api:1", "image: api:2", 1)

// kept adds to s a stopped copy of want's container name under another name, as a recreate leaves it.
func kept(t *testing.T, s *Snapshot, want *Desired, name, as, state string) *engine.Container {
	t.Helper()
	c := container(t, want, name)
	ct := engine.Container{ID: strings.Repeat("f", 64), Name: as, Image: c.Image, State: state, Labels: map[string]string{},
		Created: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Finished: time.Date(2026, 12, 1, 10, 0, 7, 0, time.UTC)}
	for k, v := range c.Labels {
		ct.Labels[k] = v
	}
	if state == "running" {
		ct.Status = "Up 3 seconds (healthy)"
		ct.Health = engine.HealthHealthy
	}
	s.Containers = append(s.Containers, ct)
	return &s.Containers[len(s.Containers)-1]
}

func TestDeployPlans(t *testing.T) {
	want2 := func(t *testing.T) *Desired { return desired(t, api2, "") }
	tests := []struct {
		name     string
		live     string
		want     string
		snapshot func(t *testing.T, s *Snapshot)
		opt      Options
	}{
		{name: "deploy-start-first", live: deployBase, want: strings.Replace(api2, "image: front:1", "image: front:2", 1)},
		{
			// The old and the new API would both write the cache: one at a time.
			name: "deploy-start-first-shared-volume", live: strings.Replace(deployBase, "cache:/cache:ro", "cache:/cache", 1),
			want: strings.Replace(api2, "cache:/cache:ro", "cache:/cache", 1),
			snapshot: func(t *testing.T, s *Snapshot) {
				find(s, "bee2-app-api").Mounts = []engine.Mount{{Type: "volume", Name: "cache", Destination: "/cache", RW: true}}
			},
		},
		{
			name: "deploy-held", live: deployBase, want: api2,
			snapshot: func(t *testing.T, s *Snapshot) {
				kept(t, s, want2(t), "bee2-app-api", FailedName("bee2-app-api", container(t, want2(t), "bee2-app-api").Hash), "exited")
			},
		},
		{
			name: "deploy-held-retried", live: deployBase, want: api2, opt: Options{RetryHeld: map[string]bool{"api": true}},
			snapshot: func(t *testing.T, s *Snapshot) {
				kept(t, s, want2(t), "bee2-app-api", FailedName("bee2-app-api", container(t, want2(t), "bee2-app-api").Hash), "exited")
			},
		},
		{
			// A failed version of another spec holds nothing: the settings moved on.
			name: "deploy-held-other-version", live: deployBase, want: strings.Replace(api2, "api:2", "api:3", 1),
			snapshot: func(t *testing.T, s *Snapshot) {
				kept(t, s, want2(t), "bee2-app-api", FailedName("bee2-app-api", container(t, want2(t), "bee2-app-api").Hash), "exited")
			},
		},
		{
			name: "deploy-held-old-stopped", live: deployBase, want: api2,
			snapshot: func(t *testing.T, s *Snapshot) {
				find(s, "bee2-app-api").State = "exited"
				kept(t, s, want2(t), "bee2-app-api", FailedName("bee2-app-api", container(t, want2(t), "bee2-app-api").Hash), "exited")
			},
		},
		{
			name: "deploy-waits-for-healthy-dependency", live: deployBase, want: deployBase,
			snapshot: func(t *testing.T, s *Snapshot) {
				db := find(s, "bee2-app-db")
				db.Status, db.Health = "Up 2 seconds (health: starting)", engine.HealthStarting
				s.Containers = []engine.Container{*db}
			},
		},
		{
			name: "deploy-dependency-unhealthy", live: deployBase, want: api2,
			snapshot: func(t *testing.T, s *Snapshot) {
				db := find(s, "bee2-app-db")
				db.Status, db.Health = "Up 2 minutes (unhealthy)", engine.HealthUnhealthy
			},
		},
		{
			// The dependency is replaced in this plan: its action ends once it is healthy.
			name: "deploy-dependency-in-plan", live: deployBase, want: strings.Replace(deployBase, "image: db:1", "image: db:2", 1),
			snapshot: func(t *testing.T, s *Snapshot) {
				s.Containers = []engine.Container{*find(s, "bee2-app-db"), *find(s, "bee2-app-front")}
			},
		},
		{
			// Killed while the new API was starting, the old one aside: the old one serves again and the
			// recreate is planned once more.
			name: "deploy-interrupted-gate", live: api2, want: api2,
			snapshot: func(t *testing.T, s *Snapshot) {
				api := find(s, "bee2-app-api")
				api.Status, api.Health = "Up 1 second (health: starting)", engine.HealthStarting
				kept(t, s, desired(t, deployBase, ""), "bee2-app-api", asideName("bee2-app-api", strings.Repeat("f", 64)), "exited")
			},
		},
		{
			// Killed after the new API was healthy and before the old one went: the new one serves.
			name: "deploy-interrupted-after-gate", live: api2, want: api2,
			snapshot: func(t *testing.T, s *Snapshot) {
				api := find(s, "bee2-app-api")
				api.Status, api.Health = "Up 4 seconds (healthy)", engine.HealthHealthy
				kept(t, s, desired(t, deployBase, ""), "bee2-app-api", asideName("bee2-app-api", strings.Repeat("f", 64)), "exited")
			},
		},
		{
			// A start-first deploy killed before the swap: the old API still has the name.
			name: "deploy-interrupted-start-first", live: deployBase, want: api2,
			snapshot: func(t *testing.T, s *Snapshot) {
				kept(t, s, want2(t), "bee2-app-api", startingName("bee2-app-api", container(t, want2(t), "bee2-app-api").Hash), "running")
			},
		},
		{
			// Killed after the old API was removed and before the new one was renamed.
			name: "deploy-interrupted-swap", live: deployBase, want: api2,
			snapshot: func(t *testing.T, s *Snapshot) {
				s.Containers = []engine.Container{*find(s, "bee2-app-db"), *find(s, "bee2-app-front")}
				kept(t, s, want2(t), "bee2-app-api", startingName("bee2-app-api", container(t, want2(t), "bee2-app-api").Hash), "running")
			},
		},
		{
			// Killed between the renames of a start-first deploy: the old API is aside, still running;
			// the new one is healthy under its temporary name. It takes the name; the old one goes.
			name: "deploy-interrupted-between-renames", live: deployBase, want: api2,
			snapshot: func(t *testing.T, s *Snapshot) {
				find(s, "bee2-app-api").Name = asideName("bee2-app-api", find(s, "bee2-app-api").ID)
				kept(t, s, want2(t), "bee2-app-api", startingName("bee2-app-api", container(t, want2(t), "bee2-app-api").Hash), "running")
			},
		},
		{
			name: "deploy-failed-kept-while-in-settings", live: deployBase, want: deployBase + "  extra:\n    server: web1\n    image: extra:1\n",
			snapshot: func(t *testing.T, s *Snapshot) {
				ex := desired(t, deployBase+"  extra:\n    server: web1\n    image: extra:1\n", "")
				kept(t, s, ex, "bee2-app-extra", FailedName("bee2-app-extra", "0123456789abcdef"), "exited")
			},
		},
	}
	// The last case's settings still have extra: the failed version stays. Without it, it goes.
	tests = append(tests, struct {
		name     string
		live     string
		want     string
		snapshot func(t *testing.T, s *Snapshot)
		opt      Options
	}{name: "deploy-failed-of-gone-app", live: deployBase, want: deployBase, snapshot: tests[len(tests)-1].snapshot})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := liveFrom(desired(t, tt.live, ""))
			if tt.snapshot != nil {
				tt.snapshot(t, snap)
			}
			p := Diff(desired(t, tt.want, ""), snap, tt.opt)
			golden(t, filepath.Join("testdata", "plans", tt.name+".plan"), p.String())
		})
	}
}

// The held reason names the version, when it failed and where its log is.
func TestHeldReason(t *testing.T) {
	want := desired(t, api2, "")
	s := liveFrom(desired(t, deployBase, ""))
	hash := container(t, want, "bee2-app-api").Hash
	kept(t, s, want, "bee2-app-api", FailedName("bee2-app-api", hash), "exited")
	p := Diff(want, s, Options{})
	if len(p.Blocked) != 1 {
		t.Fatalf("blocked %v", p.Blocked)
	}
	for _, part := range []string{"held: version " + hash[:12] + " failed its health check at 2026-12-01T10:00:07Z",
		"(log: docker logs bee2-app-api.failed-" + hash[:12] + ")", "--retry-held api"} {
		if !strings.Contains(p.Blocked[0].Reason, part) {
			t.Errorf("reason %q lacks %q", p.Blocked[0].Reason, part)
		}
	}
	if slicesContainsOp(p, OpRecreateContainer) {
		t.Errorf("a held version was recreated:\n%s", p)
	}
}

func slicesContainsOp(p *Plan, op Op) bool {
	for _, a := range p.Actions {
		if a.Op == op {
			return true
		}
	}
	return false
}

// healthEngine is a recordingEngine whose containers have a health check and become healthy or not as the
// test says: verdict maps a container name at create to its health after the wait.
type healthEngine struct {
	recordingEngine
	verdict map[string]engine.Health
	names   sync.Map // id -> name at create
}

func (e *healthEngine) CreateContainer(ctx context.Context, s engine.ContainerSpec) (string, error) {
	id, err := e.recordingEngine.CreateContainer(ctx, s)
	e.names.Store(id, s.Name)
	return id, err
}

func (e *healthEngine) ContainerHealth(_ context.Context, id string) (engine.Health, error) {
	return engine.Health{Status: engine.HealthStarting, Running: true,
		Check: engine.HealthSpec{Test: []string{"CMD", "/probe"}}.Effective()}, e.call("inspect " + id)
}

func (e *healthEngine) WaitHealth(_ context.Context, id string) (engine.Health, error) {
	name, _ := e.names.Load(id)
	h, ok := e.verdict[name.(string)]
	if !ok {
		h = engine.Health{Status: engine.HealthHealthy, Running: true}
	}
	return h, e.call("wait " + id)
}

// calls on the API's containers, in order, with the plan that made them.
func deployCalls(t *testing.T, want string, verdict map[string]engine.Health, edit func(*Snapshot)) (*healthEngine, error) {
	t.Helper()
	live := liveFrom(desired(t, deployBase, ""))
	if edit != nil {
		edit(live)
	}
	p := Diff(desired(t, want, ""), live, Options{Only: "api"})
	eng := &healthEngine{verdict: verdict}
	ex := &Executor{Engine: eng, Parallel: 2, Prefix: "bee2", Server: "web1", Drain: -1}
	_, err := ex.Execute(t.Context(), p)
	return eng, err
}

func TestStartFirstSwapsOnceHealthy(t *testing.T) {
	hash := container(t, desired(t, api2, ""), "bee2-app-api").Hash
	oldID := find(liveFrom(desired(t, deployBase, "")), "bee2-app-api").ID
	tmp := "bee2-app-api-bee2d-new-" + hash[:12]
	eng, err := deployCalls(t, api2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The old one gives up the name before the new one takes it, and serves on (Drain) until it stops.
	want := []string{"create " + tmp, "start id-" + tmp, "inspect id-" + tmp, "wait id-" + tmp,
		"rename " + oldID + " " + asideName("bee2-app-api", oldID), "rename id-" + tmp + " bee2-app-api",
		"stop " + oldID, "remove " + oldID}
	if got := withoutPulls(eng.calls); !slices.Equal(got, want) {
		t.Errorf("calls\n %s\nwant\n %s", strings.Join(got, "\n "), strings.Join(want, "\n "))
	}
}

func TestStartFirstFailureKeepsTheOldOne(t *testing.T) {
	hash := container(t, desired(t, api2, ""), "bee2-app-api").Hash
	tmp := "bee2-app-api-bee2d-new-" + hash[:12]
	oldID := find(liveFrom(desired(t, deployBase, "")), "bee2-app-api").ID
	eng, err := deployCalls(t, api2, map[string]engine.Health{tmp: {Status: engine.HealthUnhealthy, Running: true, Output: "connection refused"}},
		func(s *Snapshot) {
			// An earlier failed version goes: one at most.
			kept(t, s, desired(t, strings.Replace(api2, "api:2", "api:0", 1), ""), "bee2-app-api", "bee2-app-api.failed-0ld", "exited")
		})
	var rb *RollbackError
	if !errors.As(err, &rb) || !rb.Restored || rb.Failed != "bee2-app-api.failed-"+hash[:12] || !strings.Contains(err.Error(), "unhealthy: connection refused") {
		t.Fatalf("err = %v", err)
	}
	want := []string{"create " + tmp, "start id-" + tmp, "inspect id-" + tmp, "wait id-" + tmp,
		"stop id-" + tmp, "remove " + strings.Repeat("f", 64), "rename id-" + tmp + " bee2-app-api.failed-" + hash[:12]}
	if got := withoutPulls(eng.calls); !slices.Equal(got, want) {
		t.Errorf("calls\n %s\nwant\n %s", strings.Join(got, "\n "), strings.Join(want, "\n "))
	}
	for _, c := range eng.calls {
		if strings.Contains(c, oldID) {
			t.Errorf("the old version was touched: %s", c)
		}
	}
}

// Stop-first: the old container is set aside and stopped; a new version that exits is kept as the failed
// one, and the old one gets its name back and starts.
func TestStopFirstRollback(t *testing.T) {
	stopFirst := strings.Replace(api2, "deploy: start-first", "deploy: stop-first", 1)
	hash := container(t, desired(t, stopFirst, ""), "bee2-app-api").Hash
	oldID := find(liveFrom(desired(t, deployBase, "")), "bee2-app-api").ID
	eng, err := deployCalls(t, stopFirst, map[string]engine.Health{"bee2-app-api": {Running: false, ExitCode: 3}}, nil)
	var rb *RollbackError
	if !errors.As(err, &rb) || !rb.Restored || !strings.Contains(rb.Reason, "exited with code 3") {
		t.Fatalf("err = %v", err)
	}
	failed := "bee2-app-api.failed-" + hash[:12]
	order := []string{"rename " + oldID + " " + asideName("bee2-app-api", oldID), "start id-bee2-app-api", "wait id-bee2-app-api",
		"stop id-bee2-app-api", "rename id-bee2-app-api " + failed, "rename " + oldID + " bee2-app-api", "start " + oldID}
	last := -1
	for _, c := range order {
		i := eng.index(c)
		if i <= last {
			t.Fatalf("%q missing or out of order in\n %s", c, strings.Join(eng.calls, "\n "))
		}
		last = i
	}
	if eng.index("remove "+oldID) >= 0 {
		t.Errorf("the old version was removed: %v", eng.calls)
	}
}

// A new application whose check fails is left running (there is nothing to go back to) and its action
// fails, so that what links to it does not start.
func TestCreateGateHoldsDependants(t *testing.T) {
	p := Diff(desired(t, deployBase, ""), &Snapshot{Complete: true}, Options{})
	eng := &healthEngine{verdict: map[string]engine.Health{"bee2-app-db": {Status: engine.HealthUnhealthy, Running: true}}}
	ex := &Executor{Engine: eng, Parallel: 2, Prefix: "bee2", Server: "web1"}
	res, err := ex.Execute(t.Context(), p)
	if err == nil || !strings.Contains(err.Error(), "bee2-app-db started but is not healthy: unhealthy") {
		t.Fatalf("err = %v", err)
	}
	if res.Failed != 1 || res.Skipped != 2 || eng.index("create bee2-app-api") >= 0 || eng.index("remove id-bee2-app-db") >= 0 {
		t.Errorf("result %+v, calls %v", res, eng.calls)
	}
}

func withoutPulls(calls []string) []string {
	var out []string
	for _, c := range calls {
		if !strings.HasPrefix(c, "pull ") {
			out = append(out, c)
		}
	}
	return out
}
