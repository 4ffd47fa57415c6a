package reconcile

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
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
)

// Ops lists every operation, for metrics that start at zero.
var Ops = []Op{OpRemoveContainer, OpCreateNetwork, OpCreateVolume, OpBuildImage, OpPullImage,
	OpCreateContainer, OpRecreateContainer, OpStartContainer}

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
	// Live is the existing container for recreate, start and remove.
	Live *dockerx.Container
	// NoCache builds the image afresh (rebuild).
	NoCache bool
}

// Plan is the ordered list of actions that converges one server, plus what bee2d will not do and why.
type Plan struct {
	Server  string
	Actions []Action
	// Blocked lists resources bee2d leaves alone although they differ from the settings.
	Blocked []Blocked
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
	CreateMissing
)

// Options narrow a plan.
type Options struct {
	Mode Mode
	// Only restricts the plan to one application; removals of other containers are not planned.
	Only string
	// Rebuild recreates the selected applications with a fresh image build even when nothing changed.
	Rebuild bool
}

// Diff plans how to take a server from snap to d. It is pure: no I/O, the same inputs give the same plan.
func Diff(d *Desired, snap *Snapshot, opt Options) *Plan {
	p := &Plan{Server: d.Server}

	// Sort the live containers into ours (by Docker name) and others.
	ours := map[string]*dockerx.Container{}
	var leftovers []*dockerx.Container
	foreign := map[string]*dockerx.Container{}
	for i := range snap.Containers {
		c := &snap.Containers[i]
		if !owned(c.Labels, d.Prefix, d.Server) {
			foreign[c.Name] = c
			continue
		}
		kind := config.Kind(c.Labels[LabelKind])
		if kind != config.KindApp {
			continue // jobs and helpers have their own life cycles
		}
		if c.Name == config.ContainerName(d.Prefix, kind, c.Labels[LabelName]) {
			ours[c.Name] = c
		} else {
			leftovers = append(leftovers, c)
		}
	}

	wanted := map[string]bool{}
	for _, c := range d.Containers {
		wanted[c.Name] = true
	}

	// Containers no longer in the settings go first, so that the ports they hold are free.
	if opt.Mode == Converge && opt.Only == "" {
		for _, name := range slices.Sorted(maps.Keys(ours)) {
			if !wanted[name] {
				p.Actions = append(p.Actions, Action{Op: OpRemoveContainer, Resource: name, Cause: "no longer in the settings", Live: ours[name]})
			}
		}
	}

	var containerActions []Action
	for _, c := range d.Containers {
		if opt.Only != "" && c.Service != opt.Only {
			continue
		}
		live := ours[c.Name]
		if live == nil {
			if f := foreign[c.Name]; f != nil {
				p.Blocked = append(p.Blocked, Blocked{Resource: c.Name, Reason: "a container with this name exists that bee2d did not create; it is left alone (rename or remove it)"})
				continue
			}
			containerActions = append(containerActions, Action{Op: OpCreateContainer, Resource: c.Name, Cause: "missing", Container: c})
			continue
		}
		if opt.Rebuild {
			containerActions = append(containerActions, Action{Op: OpRecreateContainer, Resource: c.Name, Cause: "rebuild requested", Container: c, Live: live})
			continue
		}
		if opt.Mode == CreateMissing {
			continue
		}
		if cause, blocked := changed(live, c); blocked {
			p.Blocked = append(p.Blocked, Blocked{Resource: c.Name, Reason: cause})
			continue
		} else if cause != "" {
			containerActions = append(containerActions, Action{Op: OpRecreateContainer, Resource: c.Name, Cause: cause, Container: c, Live: live})
			continue
		}
		if !live.Running() {
			containerActions = append(containerActions, Action{Op: OpStartContainer, Resource: c.Name, Cause: "not running (" + live.State + ")", Live: live})
		}
	}

	var creating []*Container
	for _, a := range containerActions {
		if a.Op == OpCreateContainer || a.Op == OpRecreateContainer {
			creating = append(creating, a.Container)
		}
	}
	if len(creating) > 0 && !snap.Complete {
		p.NeedsFullSnapshot = true
	}
	if len(creating) > 0 && snap.Complete {
		if !snap.hasNetwork(d.Network) {
			p.Actions = append(p.Actions, Action{Op: OpCreateNetwork, Resource: d.Network, Cause: "missing"})
		}
		seen := map[string]bool{}
		for _, c := range creating {
			for _, v := range c.Volumes {
				if !seen[v] && !snap.hasVolume(v) {
					p.Actions = append(p.Actions, Action{Op: OpCreateVolume, Resource: v, Cause: "missing"})
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
				p.Actions = append(p.Actions, Action{Op: OpBuildImage, Resource: c.Image, Cause: "rebuild requested, from " + c.Source.Build.Display, Container: c, NoCache: true})
			case c.Source.Build != nil && !snap.hasImage(c.Image):
				p.Actions = append(p.Actions, Action{Op: OpBuildImage, Resource: c.Image, Cause: "missing on the server, from " + c.Source.Build.Display, Container: c})
			case c.Source.Pull && !snap.hasImage(c.Image):
				p.Actions = append(p.Actions, Action{Op: OpPullImage, Resource: c.Image, Cause: "missing on the server", Container: c})
			}
		}
	}
	p.Actions = append(p.Actions, containerActions...)

	// What an interrupted recreate left behind goes once its replacement is planned or in place.
	if opt.Mode == Converge {
		for _, c := range leftovers {
			p.Actions = append(p.Actions, Action{Op: OpRemoveContainer, Resource: c.Name, Cause: "left over from an interrupted recreate of " + c.Labels[LabelName], Live: c})
		}
	}
	return p
}

// changed compares a live container with the desired one. It returns the causes of a recreate, or
// blocked=true with a reason when bee2d must not decide (a container from a newer bee2d).
func changed(live *dockerx.Container, want *Container) (cause string, blocked bool) {
	scheme, err := strconv.Atoi(live.Labels[LabelHashScheme])
	switch {
	case err != nil:
		return "spec hash scheme label missing", false
	case scheme > HashScheme:
		return fmt.Sprintf("created by a newer bee2d (hash scheme %d, this one knows %d); left alone", scheme, HashScheme), true
	}
	if live.Labels[LabelSpecHash] == want.Hash {
		return "", false
	}
	if liveDigest, ok := parseDigestLabel(live.Labels[LabelSpecDigest]); ok {
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
	for _, bl := range p.Blocked {
		fmt.Fprintf(&b, "  ! leave %s: %s\n", bl.Resource, bl.Reason)
	}
	return b.String()
}

func (a Action) symbol() string {
	switch a.Op {
	case OpRemoveContainer:
		return "-"
	case OpRecreateContainer:
		return "~"
	case OpStartContainer:
		return ">"
	default:
		return "+"
	}
}
