package daemon

import (
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
)

// A server converges to a settings revision only through a pass that ends without an error: the record,
// the metric and the file `bee2d status` reads then name that revision. A failing pass on a newer
// revision leaves the server where it was.
func TestConvergedRevision(t *testing.T) {
	eng := newFakeEngine()
	eng.failStart["bee2-app-bad"] = true
	good := strings.Split(twoApps, "  bad:")[0]
	d, w, _ := testDaemon(t, good, &connector{eng: eng}, nil)
	d.StateDir = t.TempDir()
	revision := func(yml, rev string) {
		t.Helper()
		s, err := config.Parse(d.Path, []byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		s.Revision = rev
		d.use(s, []byte(yml))
		w.step(t.Context())
	}
	const first, second = "3f2a9c1d0e5b7a8c9d0e1f2a3b4c5d6e7f8a9b0c", "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
	revision(good, first)
	c, ok := d.ConvergedTo()["web1"]
	if !ok || c.Revision != first {
		t.Fatalf("after a good pass on %s: converged %+v (%v)", first[:7], c, ok)
	}
	if v, ok := gauge(t, d.Metrics, "bee2_server_converged_commit_info", map[string]string{"server": "web1", "commit": first}); !ok || v != 1 {
		t.Errorf("bee2_server_converged_commit_info{commit=%s} = %v (%v)", first[:7], v, ok)
	}
	onDisk, err := ReadConverged(d.StateDir)
	if err != nil || onDisk["web1"].Revision != first || !onDisk["web1"].Since.Equal(c.Since) {
		t.Errorf("recorded %+v, %v; want %+v", onDisk, err, c)
	}
	if lines := d.ConvergedLines(); len(lines) != 1 || !strings.HasPrefix(lines[0], "web1 converged to 3f2a9c1 (") {
		t.Errorf("/readyz lines %q", lines)
	}

	revision(twoApps, second) // bad never starts: the pass fails
	if c := d.ConvergedTo()["web1"]; c.Revision != first {
		t.Errorf("after a failing pass on %s: converged to %s", second[:7], c.Revision)
	}
	if _, ok := gauge(t, d.Metrics, "bee2_server_converged_commit_info", map[string]string{"server": "web1", "commit": second}); ok {
		t.Errorf("a failing pass set bee2_server_converged_commit_info for %s", second[:7])
	}
}

func TestConvergedDescribe(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		c    Converged
		want string
	}{
		{Converged{Revision: "3f2a9c1d0e5b", Since: now.Add(-2 * time.Minute)}, "converged to 3f2a9c1 (2 min ago, 2026-12-02T09:58:00Z)"},
		{Converged{Since: now.Add(-3 * time.Second)}, "converged (just now, 2026-12-02T09:59:57Z)"},
		{Converged{Revision: "abc", Since: now.Add(-50 * time.Hour)}, "converged to abc (2 days ago, 2026-11-30T08:00:00Z)"},
	} {
		if got := tc.c.Describe(now); got != tc.want {
			t.Errorf("Describe = %q, want %q", got, tc.want)
		}
	}
	if got, err := ReadConverged(t.TempDir()); err != nil || len(got) != 0 {
		t.Errorf("a state directory without a record: %v, %v", got, err)
	}
}
