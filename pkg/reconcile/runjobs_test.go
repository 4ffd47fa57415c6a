package reconcile

import (
	"slices"
	"testing"
)

// Bee2's run (RunJobs) is a chain: each job needs the one before it to succeed, so the first failure ends
// the run. The daemon's runs only wait for each other: a failing job does not hold back the next.
func TestRunJobsIsAChain(t *testing.T) {
	d := desired(t, jobsBase, "")
	for _, tc := range []struct {
		name         string
		opt          Options
		needs, after []string
	}{
		{name: "run", opt: Options{Mode: RunJobs}, needs: []string{"bee2-job-site"}},
		{name: "converge", opt: Options{ForceJobs: map[string]string{"site": "asked", "report": "asked"}}, after: []string{"bee2-job-site"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Diff(d, liveFrom(d), tc.opt)
			i := slices.IndexFunc(p.Actions, func(a Action) bool { return a.Op == OpRunJob && a.Resource == "bee2-job-report" })
			if i < 0 {
				t.Fatalf("report does not run:\n%s", p)
			}
			if a := p.Actions[i]; !slices.Equal(a.Needs, tc.needs) || !slices.Equal(a.After, tc.after) {
				t.Errorf("report needs %v after %v, want needs %v after %v", a.Needs, a.After, tc.needs, tc.after)
			}
		})
	}
}
