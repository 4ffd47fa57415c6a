package reconcile

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
)

// A recreate keeps the container it replaces, and the one replacing it, under names of their own while the
// new version proves itself:
//
//   - <name>-bee2d-old-<id>: the old container, renamed aside by a stop-first recreate until its successor is
//     healthy, then removed; given its name back when the successor fails.
//   - <name>-bee2d-new-<hash>: the new container of a start-first deploy, beside the old one under a
//     temporary name until it is healthy; then the old one goes and it takes the name.
//   - <name>.failed-<hash>: a new version that did not become healthy, stopped and kept for its logs (one per
//     application). While its spec is the settings', the planner holds the recreate (Held).
//
// Whatever a killed bee2d leaves among them, the next plan settles (settleLeftovers): the version that
// serves keeps or gets the name, and what is left over goes.

func asideName(final, id string) string { return final + "-bee2d-old-" + shortID(id) }

func startingName(final, hash string) string { return final + "-bee2d-new-" + shortID(hash) }

// FailedName is the name a version of an application that failed its health check is kept under.
func FailedName(final, hash string) string { return final + ".failed-" + shortID(hash) }

// leftover kinds, by name.
const (
	leftAside    = iota // an old version set aside by a stop-first recreate (or an unknown name)
	leftStarting        // a new version starting beside the old one
	leftFailed          // a version that failed its health check
)

func leftoverKind(final, name string) int {
	switch {
	case strings.HasPrefix(name, final+".failed-"):
		return leftFailed
	case strings.HasPrefix(name, final+"-bee2d-new-"):
		return leftStarting
	}
	return leftAside
}

// settleLeftovers plans what becomes of the containers a recreate kept under other names when it was cut
// short. When nothing has the final name, the version that can serve gets it back (a restore): the new one
// of a start-first deploy if it is ready (its old one was already gone), else the old one set aside. Under
// Converge, an old version set aside whose successor is not ready (created, stopped, starting or unhealthy)
// is preferred to it: the successor is removed and the old one restored, and the recreate is planned again,
// gated as the first one was. The rest is removed: first (early) what runs, since it may hold ports; after
// the container actions (late) what does not, except a new container of a start-first deploy, whose name
// the next try of the same spec takes. Restored containers are put in live.ours under their final
// names, so the rest of the plan sees them there. Failed versions are kept while their application is in
// the settings.
func settleLeftovers(d *Desired, live *liveState, opt Options) (early, late []Action) {
	wanted := map[string]bool{}
	for _, c := range d.Containers {
		wanted[c.Name] = true
	}
	for _, c := range d.Jobs {
		wanted[c.Name] = true
	}
	type group struct{ aside, starting []*engine.Container }
	groups := map[string]*group{}
	var finals []string
	for _, c := range live.leftovers {
		final := config.ContainerName(d.Prefix, config.Kind(c.Labels[labels.Kind]), c.Labels[labels.Name])
		if opt.Only != "" && c.Labels[labels.Name] != opt.Only {
			continue
		}
		g := groups[final]
		if g == nil {
			g = &group{}
			groups[final] = g
			finals = append(finals, final)
		}
		switch leftoverKind(final, c.Name) {
		case leftFailed:
			if !wanted[final] && opt.Mode == Converge && opt.Only == "" {
				late = append(late, Action{Op: OpRemoveContainer, Resource: c.Name, Cause: "a failed version of an application no longer in the settings", Live: c})
			}
		case leftStarting:
			g.starting = append(g.starting, c)
		default:
			g.aside = append(g.aside, c)
		}
	}
	slices.Sort(finals)
	remove := func(c *engine.Container, cause string) {
		a := Action{Op: OpRemoveContainer, Resource: c.Name, Cause: cause, Live: c}
		if c.Running() {
			early = append(early, a)
		} else {
			late = append(late, a)
		}
	}
	for _, final := range finals {
		g := groups[final]
		name := final
		if len(g.aside) > 0 {
			name = g.aside[0].Labels[labels.Name]
		} else if len(g.starting) > 0 {
			name = g.starting[0].Labels[labels.Name]
		}
		newestFirst := func(a, b *engine.Container) int { return cmp.Compare(b.Created.UnixNano(), a.Created.UnixNano()) }
		slices.SortStableFunc(g.aside, newestFirst)
		slices.SortStableFunc(g.starting, newestFirst)
		cur := live.ours[final]
		restore := func(c *engine.Container, cause string) {
			early = append(early, Action{Op: OpRestoreContainer, Resource: final, Cause: cause, Live: c})
			rc := *c
			rc.Name = final
			if !rc.Running() {
				rc.State, rc.Health = "running", ""
			}
			live.ours[final] = &rc
			cur = &rc
		}
		for _, s := range g.starting {
			if cur == nil && wanted[final] && s.Ready() {
				restore(s, "a start-first deploy was cut short after the old version gave up the name; this new one is healthy and takes it")
				continue
			}
			// Early, running or not: a new start-first deploy of the same spec takes its name.
			early = append(early, Action{Op: OpRemoveContainer, Resource: s.Name, Cause: "left over from an interrupted start-first deploy of " + name, Live: s})
		}
		for i, a := range g.aside {
			switch {
			case i == 0 && wanted[final] && cur == nil:
				restore(a, "an interrupted recreate of "+name+" left it aside")
				continue
			case i == 0 && wanted[final] && opt.Mode == Converge && !cur.Ready() && cur.State != "removing":
				early = append(early, Action{Op: OpRemoveContainer, Resource: final,
					Cause: "an interrupted recreate left this new version " + readiness(cur) + "; the old one is restored and the recreate planned again", Live: cur})
				delete(live.ours, final)
				restore(a, "an interrupted recreate of "+name+" left it aside")
				continue
			}
			remove(a, "left over from an interrupted recreate of "+name)
		}
	}
	return early, late
}

// readiness says why a container is not ready.
func readiness(c *engine.Container) string {
	if c.Running() && c.Health != "" {
		return c.Health
	}
	return c.State
}

// held returns the failed version of c whose spec is the one wanted, if there is one: its recreate waits
// for a change of the settings or an explicit retry.
func held(live liveState, c *Container) *engine.Container {
	for _, f := range live.failed[c.Name] {
		if f.Labels[labels.SpecHash] == c.Hash {
			return f
		}
	}
	return nil
}

// heldReason is the plan's word on a held version.
func heldReason(f *engine.Container) string {
	at := ""
	if !f.Finished.IsZero() {
		at = " at " + f.Finished.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("held: version %s failed its health check%s (log: docker logs %s); the version before it runs on until the settings change or `bee2d apply --retry-held %s`",
		shortID(f.Labels[labels.SpecHash]), at, f.Name, f.Labels[labels.Name])
}

// startFirst tells whether a recreate of c can start the new container beside the old one, and if not,
// why it stops the old one first.
func startFirst(c *Container, old *engine.Container) (bool, string) {
	if !c.StartFirst {
		return false, ""
	}
	switch {
	case len(c.Ports) > 0:
		return false, "stop-first: it publishes host ports, which two containers cannot hold at once"
	case c.IPv4Address != "" || c.IPv6Address != "":
		return false, "stop-first: its static address cannot be held by two containers at once"
	}
	for _, b := range c.Binds {
		if readOnlyBind(b) {
			continue
		}
		src, _, _ := strings.Cut(b, ":")
		for _, m := range old.Mounts {
			if m.RW && (m.Type == "volume" && m.Name == src || m.Type == "bind" && m.Source == src) {
				return false, "stop-first: the old and the new version would both mount " + src + " read-write"
			}
		}
	}
	return true, "start-first"
}

// waitForHealthy holds back the start of an application whose linked application has a health check that
// has not passed: it starts once that one is healthy (its health events wake the daemon). An application
// whose dependency is created or replaced in this plan needs nothing more: that action ends only once its
// container is healthy, or fails, and then the dependant is skipped. A container that waits holds back
// those that link to it.
func waitForHealthy(d *Desired, live liveState, actions []Action, p *Plan) []Action {
	byName := map[string]*Container{}
	for _, c := range d.Containers {
		byName[c.Name] = c
	}
	acting := map[string]bool{}
	for _, a := range actions {
		acting[a.Resource] = true
	}
	waiting := map[string]bool{}
	var out []Action
	for _, a := range actions {
		c := byName[a.Resource]
		if c == nil || a.Op == OpRemoveContainer || a.Op == OpRestoreContainer {
			out = append(out, a)
			continue
		}
		reason := ""
		for _, dep := range c.DependsOn {
			if waiting[dep] {
				reason = "waiting for " + dep + ", which waits itself"
				break
			}
			if acting[dep] {
				continue
			}
			if lc := live.ours[dep]; lc != nil && lc.Running() && lc.Health != "" && lc.Health != engine.HealthHealthy {
				reason = "waiting for " + dep + " to be healthy (it is " + lc.Health + ")"
				break
			}
		}
		if reason != "" {
			waiting[a.Resource] = true
			p.Waiting = append(p.Waiting, Blocked{Resource: a.Resource, Reason: reason})
			continue
		}
		out = append(out, a)
	}
	return out
}
