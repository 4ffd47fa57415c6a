package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bee2d/bee2d/pkg/engine"
)

// recordingEngine records calls in order and fails the ones it is told to. It stands in for the engine
// where a real one cannot produce the case on demand (a create that fails after a stop, call order under
// concurrency).
type recordingEngine struct {
	mu    sync.Mutex
	calls []string
	fail  map[string]error // "create bee2-app-x" -> error
	// running counts container actions in flight, to check the parallel bound.
	running, peak int
}

func (e *recordingEngine) call(what string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, what)
	return e.fail[what]
}

func (e *recordingEngine) CreateNetworkFrom(_ context.Context, spec engine.NetworkSpec) error {
	return e.call("network " + spec.Name)
}
func (e *recordingEngine) RemoveNetwork(_ context.Context, name string) error {
	return e.call("remove network " + name)
}
func (e *recordingEngine) CreateVolume(_ context.Context, name string, _ map[string]string) error {
	return e.call("volume " + name)
}
func (e *recordingEngine) BuildImage(_ context.Context, r engine.BuildRequest) (string, error) {
	return "sha256:x", e.call(fmt.Sprintf("build %s nocache=%v", r.Tags[0], r.NoCache))
}
func (e *recordingEngine) PullImage(_ context.Context, ref string, _ io.Writer) error {
	return e.call("pull " + ref)
}
func (e *recordingEngine) CreateContainer(_ context.Context, s engine.ContainerSpec) (string, error) {
	e.mu.Lock()
	e.running++
	e.peak = max(e.peak, e.running)
	e.mu.Unlock()
	time.Sleep(2 * time.Millisecond) // long enough for concurrent creates to overlap
	e.mu.Lock()
	e.running--
	e.mu.Unlock()
	return "id-" + s.Name, e.call("create " + s.Name)
}
func (e *recordingEngine) ConnectNetwork(_ context.Context, network, id string, aliases []string) error {
	return e.call(fmt.Sprintf("connect %s %s %s", network, id, strings.Join(aliases, ",")))
}
func (e *recordingEngine) StartContainer(_ context.Context, id string) error {
	return e.call("start " + id)
}
func (e *recordingEngine) StopContainer(_ context.Context, id string, _ time.Duration) error {
	return e.call("stop " + id)
}
func (e *recordingEngine) RenameContainer(_ context.Context, id, name string) error {
	return e.call("rename " + id + " " + name)
}
func (e *recordingEngine) RemoveContainer(_ context.Context, id string) error {
	return e.call("remove " + id)
}

func (e *recordingEngine) RunContainer(_ context.Context, id string, _ io.Writer) (int, error) {
	return 0, e.call("run " + id)
}

func (e *recordingEngine) index(call string) int {
	return slices.Index(e.calls, call)
}

func TestExecuteFreshServerOrder(t *testing.T) {
	d := desired(t, base, "")
	p := Diff(d, &Snapshot{Complete: true}, Options{})
	eng := &recordingEngine{}
	ex := &Executor{Engine: eng, Parallel: 4, Prefix: "bee2", Server: "web1"}
	res, err := ex.Execute(t.Context(), p)
	if err != nil {
		t.Fatal(err)
	}
	if res.Applied != len(p.Actions) {
		t.Errorf("applied %d of %d actions", res.Applied, len(p.Actions))
	}
	// The network, volumes and images come before any container; front starts after static.
	for _, before := range []string{"network bee2-network", "volume site", "pull front:1"} {
		if eng.index(before) < 0 || eng.index(before) > eng.index("create bee2-app-static") {
			t.Errorf("%q must come before the first create: %v", before, eng.calls)
		}
	}
	if eng.index("start id-bee2-app-static") > eng.index("create bee2-app-front") {
		t.Errorf("front was created before static started: %v", eng.calls)
	}
}

// staticLiveID is the id liveFrom gives static, the first container of base.
var staticLiveID = strings.Repeat("a", 64)

// recreateStatic executes on eng the plan that recreates static (its env changed), and returns the id of
// the container it replaces.
func recreateStatic(t *testing.T, eng *recordingEngine) (string, Result, error) {
	t.Helper()
	live := liveFrom(desired(t, base, ""))
	want := desired(t, strings.Replace(base, "root: /www", "root: /srv", 1), "")
	p := Diff(want, live, Options{})
	if old := find(live, "bee2-app-static"); old == nil || old.ID != staticLiveID {
		t.Fatalf("static's live container: %+v", old)
	}
	ex := &Executor{Engine: eng, Parallel: 4, Prefix: "bee2", Server: "web1"}
	res, err := ex.Execute(t.Context(), p)
	return staticLiveID, res, err
}

// A failed replacement gives the old container its name back and starts it again, and nothing that
// links to it is attempted.
func TestRecreateRollsBackWhenCreateFails(t *testing.T) {
	eng := &recordingEngine{fail: map[string]error{"create bee2-app-static": errors.New("no such image")}}
	oldID, res, err := recreateStatic(t, eng)
	if err == nil || !strings.Contains(err.Error(), "no such image") {
		t.Fatalf("want the create error, got %v", err)
	}
	// The old container is renamed aside first; it stops while the new one is created (in either order),
	// and gets its name back and runs again once the create failed.
	wantCalls := []string{
		"rename " + oldID + " bee2-app-static-bee2d-old-" + oldID[:12],
		"stop " + oldID,
		"create bee2-app-static",
		"rename " + oldID + " bee2-app-static",
		"start " + oldID,
	}
	got := slices.Clone(eng.calls)
	if len(got) == len(wantCalls) && got[1] == wantCalls[2] {
		got[1], got[2] = got[2], got[1]
	}
	if !slices.Equal(got, wantCalls) {
		t.Errorf("calls:\n %s\nwant:\n %s", strings.Join(eng.calls, "\n "), strings.Join(wantCalls, "\n "))
	}
	if res.Failed != 1 {
		t.Errorf("failed = %d, want 1", res.Failed)
	}
}

// A recreate whose old container cannot be stopped does not start the new one (the old one may still
// hold the ports and write to the volumes): the new one is removed and the old one keeps its name.
func TestRecreateKeepsTheOldWhenItCannotStop(t *testing.T) {
	eng := &recordingEngine{fail: map[string]error{"stop " + staticLiveID: errors.New("engine busy")}}
	oldID, _, err := recreateStatic(t, eng)
	if err == nil || !strings.Contains(err.Error(), "engine busy") {
		t.Fatalf("want the stop error, got %v", err)
	}
	for _, call := range []string{"remove id-bee2-app-static", "rename " + oldID + " bee2-app-static", "start " + oldID} {
		if eng.index(call) < 0 {
			t.Errorf("no %q: %v", call, eng.calls)
		}
	}
	if i := eng.index("start id-bee2-app-static"); i >= 0 {
		t.Errorf("the new container was started although the old one did not stop: %v", eng.calls)
	}
}

// A recreate keeps the service down only for the stop of the old container (overlapping the create of
// the new one) and the new one's start: the old one is renamed aside while it runs, stopped after that, the
// new one started only once the old one has stopped and its create is done, and the old one removed only
// once the new one runs.
func TestRecreateOrder(t *testing.T) {
	eng := &recordingEngine{}
	oldID, _, err := recreateStatic(t, eng)
	if err != nil {
		t.Fatal(err)
	}
	rename, stop := eng.index("rename "+oldID+" bee2-app-static-bee2d-old-"+oldID[:12]), eng.index("stop "+oldID)
	create, start, remove := eng.index("create bee2-app-static"), eng.index("start id-bee2-app-static"), eng.index("remove "+oldID)
	if rename < 0 || stop < rename || create < rename || start < max(stop, create) || remove < start {
		t.Errorf("want rename, then stop and create, then start, then remove: %v", eng.calls)
	}
}

func TestDependentsOfAFailedContainerAreSkipped(t *testing.T) {
	p := Diff(desired(t, base, ""), &Snapshot{Complete: true}, Options{})
	eng := &recordingEngine{fail: map[string]error{"create bee2-app-static": errors.New("boom")}}
	ex := &Executor{Engine: eng, Parallel: 4, Prefix: "bee2", Server: "web1"}
	res, err := ex.Execute(t.Context(), p)
	if eng.index("create bee2-app-front") >= 0 {
		t.Errorf("front was created although static failed: %v", eng.calls)
	}
	if res.Skipped != 1 || !strings.Contains(fmt.Sprint(err), "skipped: bee2-app-static failed") {
		t.Errorf("skipped=%d err=%v", res.Skipped, err)
	}
}

func TestParallelBound(t *testing.T) {
	var b strings.Builder
	b.WriteString("servers: {web1: {}}\napplications:\n")
	for i := range 20 {
		fmt.Fprintf(&b, "  a%d: {server: web1, image: img:1}\n", i)
	}
	d := desired(t, b.String(), "")
	p := Diff(d, &Snapshot{Complete: true}, Options{})
	eng := &recordingEngine{}
	ex := &Executor{Engine: eng, Parallel: 3}
	if _, err := ex.Execute(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if eng.peak > 3 {
		t.Errorf("%d creates ran at once, bound is 3", eng.peak)
	}
	if eng.peak < 2 {
		t.Errorf("creates never overlapped (peak %d): the executor is serial", eng.peak)
	}
}

func TestExecuteBuildFromGit(t *testing.T) {
	const planned = "0123456789abcdef0123456789abcdef01234567"
	const url = "https://deploy:s3cret@git.example.net/site.git"
	build := Action{Op: OpBuildImage, Resource: "bee2/job-site:" + planned[:12], Container: &Container{
		Service: "site",
		Source: ImageSource{Build: &Build{Dir: "web", Dockerfile: "Dockerfile.prod",
			Git: &GitSource{URL: url, Branch: "main", Commit: planned}}},
	}}
	for _, tc := range []struct {
		name      string
		commit    string // checked out by the clone
		cloneErr  error
		noClone   bool
		wantErr   string // "" for a build
		wantClean bool
	}{
		{name: "the planned commit is built", commit: planned, wantClean: true},
		{name: "a branch moved since planning is not built", commit: "fedcba9876543210fedcba9876543210fedcba98",
			wantErr: "moved from 0123456789ab to fedcba987654 while planning", wantClean: true},
		{name: "a failed clone is the action's error", cloneErr: errors.New("git clone: no such repository"),
			wantErr: "no such repository"},
		{name: "an executor without Clone refuses, naming the source without its password", noClone: true,
			wantErr: "git https://deploy:***@git.example.net/site.git: the executor has no Clone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := &buildRecorder{}
			ex := &Executor{Engine: eng, Server: "web1"}
			var cloned []string
			cleaned := 0
			if !tc.noClone {
				ex.Clone = func(_ context.Context, url, branch string) (string, string, func(), error) {
					cloned = append(cloned, url+"@"+branch)
					if tc.cloneErr != nil {
						return "", "", nil, tc.cloneErr
					}
					return "/tmp/clone", tc.commit, func() { cleaned++ }, nil
				}
			}
			err := ex.apply(t.Context(), build)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if eng.req.ContextDir != "/tmp/clone/web" || eng.req.Dockerfile != "Dockerfile.prod" || !slices.Equal(eng.req.Tags, []string{build.Resource}) {
					t.Errorf("built %+v; want the clone's web/ with Dockerfile.prod, tagged %s", eng.req, build.Resource)
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v; want it to say %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("the error shows the URL's password: %v", err)
				}
				if eng.req.ContextDir != "" {
					t.Errorf("built %+v after a failed checkout", eng.req)
				}
			}
			if !tc.noClone && !slices.Equal(cloned, []string{url + "@main"}) {
				t.Errorf("cloned %q; want the source's URL and branch once", cloned)
			}
			if want := map[bool]int{true: 1, false: 0}[tc.wantClean]; cleaned != want {
				t.Errorf("cleanup ran %d times, want %d", cleaned, want)
			}
		})
	}
}
