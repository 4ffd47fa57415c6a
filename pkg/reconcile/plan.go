package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
)

// Op is what an action does.
type Op string

// The operations a plan can hold. Each changes one resource.
const (
	OpRemoveContainer   Op = "remove container"
	OpCreateNetwork     Op = "create network"
	OpCreateVolume      Op = "create volume"
	OpBuildImage        Op = "build image"
	OpPullImage         Op = "pull image"
	OpCreateContainer   Op = "create container"
	OpRecreateContainer Op = "recreate container"
	OpStartContainer    Op = "start container"
	OpRunJob            Op = "run job"
	// OpRecreateNetwork removes a network and creates it again with the settings'; OpRemoveNetwork removes
	// one the settings no longer name.
	OpRecreateNetwork Op = "recreate network"
	OpRemoveNetwork   Op = "remove network"
	// OpRestoreContainer gives a container that an interrupted recreate left under another name its final
	// name back, and starts it if it is stopped.
	OpRestoreContainer Op = "restore container"
)

// Ops lists every operation, for metrics that start at zero.
var Ops = []Op{OpRemoveContainer, OpCreateNetwork, OpCreateVolume, OpBuildImage, OpPullImage,
	OpCreateContainer, OpRecreateContainer, OpStartContainer, OpRunJob, OpRecreateNetwork, OpRemoveNetwork, OpRestoreContainer}

// Metric is the operation as a metric label value: create_container.
func (o Op) Metric() string { return strings.ReplaceAll(string(o), " ", "_") }

// Action is one change to one resource, with why.
type Action struct {
	Op Op
	// Resource is the network, volume, image or container name.
	Resource string
	Cause    string
	// Container is the desired container for create, recreate and build.
	Container *Container
	// Network is the desired network for its create and recreate.
	Network *engine.NetworkSpec
	// Live is the existing container for recreate, start and remove.
	Live *engine.Container
	// NoCache builds the image afresh (rebuild).
	NoCache bool
	// Needs names further actions (by resource) that must succeed first, beyond the container's links.
	Needs []string
	// After names actions that must end first, whether they succeed or not (jobs run one at a time).
	After []string
	// StepOf names the network recreates (by resource) this action is a step of: the removal of a
	// container on the network and its creation again. A caller that holds such a recreate back holds its
	// steps with it.
	StepOf []string
	// StartFirst starts a recreate's new container beside the old one, which stops once the new one is
	// healthy.
	StartFirst bool
	// Failed are the application's failed versions kept for their logs: a recreate removes them once its
	// new version is healthy, or replaces them with it when it is not.
	Failed []*engine.Container
}

// deps are the resources whose actions must succeed before this one.
func (a Action) Deps() []string {
	var out []string
	if a.Container != nil && a.Op != OpBuildImage && a.Op != OpPullImage {
		out = append(out, a.Container.DependsOn...)
	}
	return append(out, a.Needs...)
}

// Plan is the ordered list of actions that converges one server, plus what bee2d will not do and why.
type Plan struct {
	Server  string
	Actions []Action
	// Blocked lists resources bee2d leaves alone although they differ from the settings.
	Blocked []Blocked
	// Waiting lists containers that will be created once something else has happened (a job's first
	// successful run); they are not errors.
	Waiting []Blocked
	// NeedsFullSnapshot is set when the plan was made from containers only and something must be
	// created: the caller lists networks, volumes and images and plans again.
	NeedsFullSnapshot bool
}

// Blocked is a resource bee2d will not change, with the reason.
type Blocked struct {
	Resource string
	Reason   string
}

// Empty tells whether the plan changes nothing.
func (p *Plan) Empty() bool { return len(p.Actions) == 0 }

// Mode chooses how far a plan goes.
type Mode int

const (
	// Converge creates, recreates, starts and removes until the server matches the settings (apply).
	Converge Mode = iota
	// CreateMissing only creates containers that do not exist (Bee2's build); existing ones are left alone.
	// Jobs do not run.
	CreateMissing
	// RunJobs runs the server's jobs (or the one named by Only) now, one after the other in file order, and
	// touches no application. The first job that fails or cannot run ends the run.
	RunJobs
)

// Options narrow a plan.
type Options struct {
	Mode Mode
	// Only restricts the plan to one application; removals of other containers are not planned.
	Only string
	// Rebuild recreates the selected applications with a fresh image build even when nothing changed.
	Rebuild bool
	// ForceJobs runs these jobs (by name) in Converge mode even when nothing changed, with the given cause
	// (a schedule that fired).
	ForceJobs map[string]string
	// RetryHeld tries again the versions of these applications (by name) that failed their health check,
	// though the settings did not change.
	RetryHeld map[string]bool
}

// Diff plans how to take a server from snap to d. It is pure: no I/O, the same inputs give the same plan.
func Diff(d *Desired, snap *Snapshot, opt Options) *Plan {
	p := &Plan{Server: d.Server}
	live := sortLive(d, snap)

	// Containers no longer in the settings go first, so that the ports they hold are free.
	if opt.Mode == Converge && opt.Only == "" {
		wanted := map[string]bool{}
		for _, c := range append(slices.Clone(d.Containers), d.Jobs...) {
			wanted[c.Name] = true
		}
		for _, name := range slices.Sorted(maps.Keys(live.ours)) {
			if !wanted[name] {
				p.Actions = append(p.Actions, Action{Op: OpRemoveContainer, Resource: name, Cause: "no longer in the settings", Live: live.ours[name]})
			}
		}
	}

	// What an interrupted recreate left behind is settled first: the planner then sees the containers
	// that serve under their final names.
	var early, late []Action
	if opt.Mode != RunJobs {
		early, late = settleLeftovers(d, &live, opt)
	}
	var containerActions []Action
	if opt.Mode != RunJobs {
		containerActions = diffApps(d, live, opt, p)
		containerActions = waitForHealthy(d, live, containerActions, p)
	}
	runs := diffJobs(d, live, opt, p)
	if opt.Mode != CreateMissing {
		// Bee2's build creates applications whatever the jobs did; run comes after it.
		containerActions = waitForJobs(d, live, containerActions, runs, p)
	}
	nets := diffNetworks(d, snap, live, opt, p)
	containerActions = nets.rebuild(d, containerActions)
	containerActions = append(containerActions, runs...)
	nets.needNetworks(containerActions)

	var creating []*Container
	for _, a := range containerActions {
		switch a.Op {
		case OpCreateContainer, OpRecreateContainer, OpRunJob:
			creating = append(creating, a.Container)
		}
	}
	if len(creating) > 0 && !snap.Complete {
		p.NeedsFullSnapshot = true
	}
	if snap.Complete {
		// Missing networks are made before anything else is; apply makes them whatever uses them, as Bee2
		// did, the other modes when they create a container.
		if len(creating) > 0 || (opt.Mode == Converge && opt.Only == "") {
			p.Actions = append(p.Actions, nets.creates...)
		}
		if len(creating) > 0 {
			p.Actions = append(p.Actions, prerequisites(snap, creating, opt)...)
		}
	}
	// What an interrupted recreate left behind is restored or removed: what runs first, since it may hold
	// the ports a replacement needs, what does not once its replacement is in place. Bee2's build and
	// rebuild settle it too: a rebuild killed half-way is typically followed by another build, and the
	// containers aside are bee2d's own, never the user's.
	p.Actions = append(p.Actions, early...)
	// The containers of a network to recreate go once the images are there and what else is on it is gone.
	p.Actions = append(p.Actions, nets.recreates...)
	p.Actions = append(p.Actions, containerActions...)
	p.Actions = append(p.Actions, late...)
	removeDropped(d, snap, opt, p)
	unstamp(d, snap, p)
	return p
}

// liveState is a snapshot's containers sorted for the planner.
type liveState struct {
	// ours are bee2d's containers of this server under their final names; leftovers under other names.
	ours      map[string]*engine.Container
	leftovers []*engine.Container
	// failed are the failed versions kept for their logs, by final name.
	failed map[string][]*engine.Container
	// foreign are all other containers, by name.
	foreign map[string]*engine.Container
	// stoppedFor maps containers a backup or restore stopped to the helper that did.
	stoppedFor map[string]string
}

func sortLive(d *Desired, snap *Snapshot) liveState {
	l := liveState{ours: map[string]*engine.Container{}, foreign: map[string]*engine.Container{}, stoppedFor: map[string]string{},
		failed: map[string][]*engine.Container{}}
	for i := range snap.Containers {
		c := &snap.Containers[i]
		if stopped := c.Labels[labels.StoppedFor]; stopped != "" && c.Labels[labels.Owner] == labels.Bee2d &&
			c.Labels[labels.Prefix] == d.Prefix && c.Labels[labels.Server] == d.Server {
			// A backup or restore helper stopped these on purpose; they start again when it is done.
			for _, name := range strings.Split(stopped, ",") {
				l.stoppedFor[name] = c.Name
			}
		}
		if !labels.Managed(c.Labels, d.Prefix, d.Server) {
			l.foreign[c.Name] = c
			continue
		}
		kind := config.Kind(c.Labels[labels.Kind])
		if kind != config.KindApp && kind != config.KindJob {
			continue // helpers have their own life cycles
		}
		final := config.ContainerName(d.Prefix, kind, c.Labels[labels.Name])
		switch {
		case c.Name == final:
			l.ours[c.Name] = c
		case leftoverKind(final, c.Name) == leftFailed:
			l.failed[final] = append(l.failed[final], c)
			l.leftovers = append(l.leftovers, c)
		default:
			l.leftovers = append(l.leftovers, c)
		}
	}
	return l
}

func diffApps(d *Desired, live liveState, opt Options, p *Plan) []Action {
	var out []Action
	for _, c := range d.Containers {
		if opt.Only != "" && c.Service != opt.Only {
			continue
		}
		lc := live.ours[c.Name]
		if lc == nil {
			if live.foreign[c.Name] != nil {
				p.Blocked = append(p.Blocked, Blocked{Resource: c.Name, Reason: foreignReason})
				continue
			}
			if c.SourceErr != nil {
				p.Blocked = append(p.Blocked, Blocked{Resource: c.Name, Reason: "image source: " + c.SourceErr.Error()})
				continue
			}
			out = append(out, Action{Op: OpCreateContainer, Resource: c.Name, Cause: "missing", Container: c})
			continue
		}
		if lc.State == "removing" {
			// `docker rm -f` under way: the engine refuses to start or rename it. Its "destroy" event
			// wakes the daemon, which then finds it missing.
			continue
		}
		if c.SourceErr != nil {
			p.Blocked = append(p.Blocked, Blocked{Resource: c.Name, Reason: "image source: " + c.SourceErr.Error() + "; the running container is kept"})
			continue
		}
		if opt.Rebuild {
			out = append(out, recreateAction(c, lc, "rebuild requested", live))
			continue
		}
		if opt.Mode == CreateMissing {
			// Created but never started is a create that was interrupted (a crash between the two calls),
			// not a container someone stopped: Bee2's build finishes it.
			if lc.State == "created" {
				out = append(out, Action{Op: OpStartContainer, Resource: c.Name, Cause: "created but never started", Live: lc})
			}
			continue
		}
		if cause, blocked := changed(lc, c); blocked {
			p.Blocked = append(p.Blocked, Blocked{Resource: c.Name, Reason: cause})
			continue
		} else if cause != "" {
			if f := held(live, c); f != nil && !opt.RetryHeld[c.Service] {
				p.Blocked = append(p.Blocked, Blocked{Resource: c.Name, Reason: heldReason(f)})
				if !lc.Running() && live.stoppedFor[c.Name] == "" {
					out = append(out, Action{Op: OpStartContainer, Resource: c.Name, Cause: "not running (" + lc.State + "); the version before the held one", Live: lc})
				}
				continue
			}
			out = append(out, recreateAction(c, lc, cause, live))
			continue
		}
		if !lc.Running() {
			if helper, ok := live.stoppedFor[c.Name]; ok {
				p.Waiting = append(p.Waiting, Blocked{Resource: c.Name, Reason: "stopped by " + helper + " until it is done"})
				continue
			}
			out = append(out, Action{Op: OpStartContainer, Resource: c.Name, Cause: "not running (" + lc.State + ")", Live: lc})
		}
	}
	return out
}

// recreateAction replaces lc with c, start-first where the settings ask for it and it can be.
func recreateAction(c *Container, lc *engine.Container, cause string, live liveState) Action {
	a := Action{Op: OpRecreateContainer, Resource: c.Name, Cause: cause, Container: c, Live: lc, Failed: live.failed[c.Name]}
	var how string
	a.StartFirst, how = startFirst(c, lc)
	if how != "" {
		a.Cause += " (" + how + ")"
	}
	return a
}

const foreignReason = "a container with this name exists that bee2d did not create; it is left alone (rename or remove it)"

// diffJobs plans job runs, in file order, one after the other. A job runs when it never ran, when its spec
// changed (a new commit, an env change), when its last run failed, or when asked (run, a schedule). A job
// whose container is running is in progress and is never started twice.
//
// In RunJobs mode (Bee2's run) the jobs form a chain: the first one that fails, or cannot run at all, ends
// the run and the jobs after it do not start. Otherwise (the daemon) a failing job does not hold back the
// jobs after it; they only wait for it to end.
func diffJobs(d *Desired, live liveState, opt Options, p *Plan) []Action {
	if opt.Mode == CreateMissing || (opt.Mode == Converge && opt.Only != "") {
		return nil
	}
	var runs []Action
	stuck := "" // RunJobs: the first job that cannot run
	for _, j := range d.Jobs {
		if opt.Mode == RunJobs && opt.Only != "" && j.Service != opt.Only {
			continue
		}
		if stuck != "" {
			p.Blocked = append(p.Blocked, Blocked{Resource: j.Name, Reason: "not run: it comes after job " + stuck + ", which cannot run"})
			continue
		}
		block := func(reason string) {
			p.Blocked = append(p.Blocked, Blocked{Resource: j.Name, Reason: reason})
			if opt.Mode == RunJobs {
				stuck = j.Service
			}
		}
		lc := live.ours[j.Name]
		if lc == nil && live.foreign[j.Name] != nil {
			block(foreignReason)
			continue
		}
		if j.SourceErr != nil {
			block("image source: " + j.SourceErr.Error())
			continue
		}
		if lc != nil && lc.Running() {
			if opt.Mode == RunJobs {
				block("a run is in progress")
			}
			continue
		}
		var cause string
		switch {
		case opt.Mode == RunJobs:
			cause = "run requested"
		case opt.ForceJobs[j.Service] != "":
			cause = opt.ForceJobs[j.Service]
		case lc == nil:
			cause = "never ran"
		default:
			c, blocked := changed(lc, j)
			if blocked {
				block(c)
				continue
			}
			cause = c
			if cause == "" {
				if code, ok := lc.ExitCode(); !ok {
					cause = "last run did not finish (" + lc.State + ")"
				} else if code != 0 {
					cause = "last run failed (exit " + strconv.Itoa(code) + ")"
				}
			}
		}
		if cause == "" {
			continue
		}
		a := Action{Op: OpRunJob, Resource: j.Name, Cause: cause, Container: j, Live: lc}
		if n := len(runs); n > 0 {
			if opt.Mode == RunJobs {
				a.Needs = []string{runs[n-1].Resource}
			} else {
				a.After = []string{runs[n-1].Resource}
			}
		}
		runs = append(runs, a)
	}
	return runs
}

// waitForJobs holds back the creation of an application that mounts a volume a job writes until that job
// has succeeded once, so that a fresh server never serves an empty site. When the job runs in this plan the
// create waits for it (and is skipped if it fails); otherwise the application waits for a later pass.
func waitForJobs(d *Desired, live liveState, actions, runs []Action, p *Plan) []Action {
	writers := map[string][]*Container{} // volume -> jobs writing it
	for _, j := range d.Jobs {
		for _, v := range j.WritesVolumes {
			writers[v] = append(writers[v], j)
		}
	}
	if len(writers) == 0 {
		return actions
	}
	running := map[string]bool{}
	for _, r := range runs {
		running[r.Resource] = true
	}
	var out []Action
	for _, a := range actions {
		if a.Op != OpCreateContainer {
			out = append(out, a)
			continue
		}
		var waitFor []string
		for _, v := range a.Container.Volumes {
			for _, j := range writers[v] {
				if lc := live.ours[j.Name]; lc != nil {
					if code, ok := lc.ExitCode(); ok && code == 0 {
						continue
					}
				}
				if running[j.Name] {
					a.Needs = append(a.Needs, j.Name)
					a.Cause += "; after job " + j.Service + " succeeds"
				} else if !slices.Contains(waitFor, j.Service) {
					waitFor = append(waitFor, j.Service)
				}
			}
		}
		if len(waitFor) > 0 {
			p.Waiting = append(p.Waiting, Blocked{Resource: a.Resource, Reason: "waiting for the first successful run of job " + strings.Join(waitFor, ", ")})
			continue
		}
		out = append(out, a)
	}
	return out
}

// prerequisites are the volumes and images the containers to be created need.
func prerequisites(snap *Snapshot, creating []*Container, opt Options) []Action {
	var out []Action
	seen := map[string]bool{}
	for _, c := range creating {
		for _, v := range c.Volumes {
			if !seen[v] && !snap.hasVolume(v) {
				out = append(out, Action{Op: OpCreateVolume, Resource: v, Cause: "missing"})
			}
			seen[v] = true
		}
	}
	seen = map[string]bool{}
	for _, c := range creating {
		if seen[c.Image] {
			continue
		}
		seen[c.Image] = true
		switch {
		case c.Source.Build != nil && opt.Rebuild:
			out = append(out, Action{Op: OpBuildImage, Resource: c.Image, Cause: "rebuild requested, from " + c.Source.Build.Display, Container: c, NoCache: true})
		case c.Source.Build != nil && !snap.hasImage(c.Image):
			out = append(out, Action{Op: OpBuildImage, Resource: c.Image, Cause: "missing on the server, from " + c.Source.Build.Display, Container: c})
		case c.Source.Pull && !snap.hasImage(c.Image):
			out = append(out, Action{Op: OpPullImage, Resource: c.Image, Cause: "missing on the server", Container: c})
		}
	}
	return out
}

// changed compares a live container with the desired one. It returns the causes of a recreate, or
// blocked=true with a reason when bee2d must not decide (a container from a newer bee2d).
func changed(live *engine.Container, want *Container) (cause string, blocked bool) {
	scheme, err := strconv.Atoi(live.Labels[labels.HashScheme])
	switch {
	case err != nil:
		return "spec hash scheme label missing", false
	case scheme > HashScheme:
		return fmt.Sprintf("created by a newer bee2d (hash scheme %d, this one knows %d); left alone", scheme, HashScheme), true
	}
	if live.Labels[labels.SpecHash] == want.Hash {
		return "", false
	}
	if liveDigest, ok := parseDigestLabel(live.Labels[labels.SpecDigest]); ok {
		if causes := diffDigest(liveDigest, want.Digest); len(causes) > 0 {
			return strings.Join(causes, "; "), false
		}
	}
	return "spec hash changed", false
}

// String renders the plan for people: one line per action with its cause.
func (p *Plan) String() string {
	var b strings.Builder
	switch n := len(p.Actions); n {
	case 0:
		fmt.Fprintf(&b, "server %s: no changes\n", p.Server)
	case 1:
		fmt.Fprintf(&b, "server %s: 1 action\n", p.Server)
	default:
		fmt.Fprintf(&b, "server %s: %d actions\n", p.Server, n)
	}
	for _, a := range p.Actions {
		fmt.Fprintf(&b, "  %s %s %s: %s\n", a.symbol(), a.Op, a.Resource, a.Cause)
	}
	for _, w := range p.Waiting {
		fmt.Fprintf(&b, "  … wait %s: %s\n", w.Resource, w.Reason)
	}
	for _, bl := range p.Blocked {
		fmt.Fprintf(&b, "  ! leave %s: %s\n", bl.Resource, bl.Reason)
	}
	return b.String()
}

func (a Action) symbol() string {
	switch a.Op {
	case OpRemoveContainer, OpRemoveNetwork:
		return "-"
	case OpRecreateContainer, OpRecreateNetwork, OpRestoreContainer:
		return "~"
	case OpStartContainer, OpRunJob:
		return ">"
	default:
		return "+"
	}
}
