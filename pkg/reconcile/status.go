package reconcile

import (
	"strconv"

	"github.com/bee2d/bee2d/pkg/engine"
)

// ResourceStatus is one managed resource of a server compared with the settings.
type ResourceStatus struct {
	Kind string // network, volume, container
	Name string
	// State is the live state: running, exited, present, missing.
	State string
	// Health is a running container's health: starting, healthy or unhealthy; "" without a check.
	Health string
	InSync bool
	// Detail says what differs when the resource is out of sync.
	Detail string
}

// Status compares a full snapshot with the desired state, resource by resource. Containers that bee2d
// would remove are listed as out of sync too.
func Status(d *Desired, snap *Snapshot) []ResourceStatus {
	p := Diff(d, snap, Options{})
	byResource := map[string]Action{}
	for _, a := range p.Actions {
		byResource[a.Resource] = a
	}
	blocked := map[string]string{}
	for _, b := range p.Blocked {
		blocked[b.Resource] = b.Reason
	}
	live := map[string]string{}
	health := map[string]string{}
	for _, c := range snap.Containers {
		live[c.Name] = c.State
		health[c.Name] = c.Health
	}

	var out []ResourceStatus
	present := func(ok bool) string {
		if ok {
			return "present"
		}
		return "missing"
	}
	if snap.Complete {
		out = append(out, networkStatus(d, snap, p)...)
		seen := map[string]bool{}
		for _, c := range d.Containers {
			for _, v := range c.Volumes {
				if seen[v] {
					continue
				}
				seen[v] = true
				ok := snap.hasVolume(v)
				out = append(out, ResourceStatus{Kind: "volume", Name: v, State: present(ok), InSync: ok, Detail: missingDetail(ok)})
			}
		}
	}
	for _, c := range d.Containers {
		st := ResourceStatus{Kind: "container", Name: c.Name, State: live[c.Name], Health: health[c.Name], InSync: true}
		if st.State == "" {
			st.State = "missing"
		}
		if st.Health == engine.HealthStarting || st.Health == engine.HealthUnhealthy {
			// Running is not enough: in sync is running and healthy, or running without a check.
			st.InSync, st.Detail = false, "health check: "+st.Health
		}
		if a, ok := byResource[c.Name]; ok {
			st.InSync, st.Detail = false, a.Cause
		}
		if reason, ok := blocked[c.Name]; ok {
			st.InSync, st.Detail = false, reason
		}
		out = append(out, st)
	}
	for _, j := range d.Jobs {
		st := ResourceStatus{Kind: "job", Name: j.Name, State: live[j.Name], InSync: true}
		if st.State == "" {
			st.State = "never ran"
		}
		if c := findContainer(snap, j.Name); c != nil {
			if code, ok := c.ExitCode(); ok {
				st.State = "exited (" + strconv.Itoa(code) + ")"
			}
		}
		if a, ok := byResource[j.Name]; ok {
			st.InSync, st.Detail = false, a.Cause
		}
		if reason, ok := blocked[j.Name]; ok {
			st.InSync, st.Detail = false, reason
		}
		out = append(out, st)
	}
	for _, w := range p.Waiting {
		for i := range out {
			if out[i].Name == w.Resource {
				out[i].InSync, out[i].Detail = false, w.Reason
			}
		}
	}
	desired := map[string]bool{}
	for _, c := range d.Containers {
		desired[c.Name] = true
	}
	for _, a := range p.Actions {
		// A container removed to be created again (its network is recreated) is listed above.
		if a.Op == OpRemoveContainer && !desired[a.Resource] {
			out = append(out, ResourceStatus{Kind: "container", Name: a.Resource, State: a.Live.State, Detail: "to be removed: " + a.Cause})
		}
	}
	return out
}

func findContainer(snap *Snapshot, name string) *engine.Container {
	for i := range snap.Containers {
		if snap.Containers[i].Name == name {
			return &snap.Containers[i]
		}
	}
	return nil
}

func missingDetail(ok bool) string {
	if ok {
		return ""
	}
	return "missing"
}
