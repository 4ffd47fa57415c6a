package reconcile

import (
	"strings"
	"testing"
)

// A container the engine is removing (`docker rm -f` between its "die" and its "destroy") is neither
// started nor recreated: the engine would refuse, and the failure would hold back its re-creation.
func TestDiffLeavesAContainerBeingRemoved(t *testing.T) {
	for _, want := range []string{base, strings.Replace(base, "root: /www", "root: /srv", 1)} {
		snap := liveFrom(desired(t, base, ""))
		find(snap, "bee2-app-static").State = "removing"
		p := Diff(desired(t, want, ""), snap, Options{})
		for _, a := range p.Actions {
			if a.Resource == "bee2-app-static" {
				t.Errorf("planned %s %s for a container being removed:\n%s", a.Op, a.Resource, p)
			}
		}
	}
}
