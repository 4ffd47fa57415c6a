package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
)

// desiredNetworks are a server's networks as Bee2 establishes them: the default network first, with IPv6
// when the provisioner's state file gives the server a subnet, then the named ones in file order. A named
// network whose Docker name is the default one's is left out, as Bee2 made the default first and then
// found that name taken.
func desiredNetworks(s *config.Settings, server, prefix string) ([]engine.NetworkSpec, error) {
	srv := s.Server(server)
	def := engine.NetworkSpec{Name: config.NetworkName(prefix), Labels: labels.ForServer(prefix, server)}
	if srv.StateIPv6Subnet != "" {
		def.EnableIPv6 = true
		def.Subnets = []string{srv.StateIPv6Subnet + srv.IPv6Docker.SuffixNet}
	}
	out := []engine.NetworkSpec{def}
	for _, n := range s.Networks(server) {
		spec := engine.NetworkSpec{
			Name:       prefix + "-" + n.Name,
			EnableIPv6: n.EnableIPv6 || n.IPv6 != "",
			Labels:     labels.ForServer(prefix, server),
		}
		for _, sub := range []string{n.IPv6, n.IPv4} { // Bee2's order
			if sub != "" {
				spec.Subnets = append(spec.Subnets, sub)
			}
		}
		opts := map[string]string{}
		for k, v := range map[string]string{
			engine.OptionHostBindingIPv4: n.HostIPv4,
			engine.OptionHostBindingIPv6: n.HostIPv6,
			engine.OptionBridgeName:      n.Bridge,
			engine.OptionIfPrefix:        n.IfPrefix,
		} {
			if v != "" {
				opts[k] = v
			}
		}
		if n.Masquerade != nil && !*n.Masquerade {
			opts[engine.OptionMasquerade] = "false"
		}
		if len(opts) > 0 {
			spec.Options = opts
		}
		if slices.ContainsFunc(out, func(o engine.NetworkSpec) bool { return o.Name == spec.Name }) {
			continue
		}
		out = append(out, spec)
	}
	// The settings report a bare address (Bee2's specs write 172.20.0.1) at its place; this guards callers
	// that build settings otherwise, and the default network's joined subnet, before the engine is asked.
	for _, spec := range out {
		for _, sub := range spec.Subnets {
			if _, err := netip.ParsePrefix(sub); err != nil {
				return nil, fmt.Errorf("network %s: subnet %q is not in CIDR form (address/bits)", spec.Name, sub)
			}
		}
	}
	return out, nil
}

// networks are the desired networks; a Desired made by hand with only Network has that one, as bee2d
// made it before it knew of others.
func (d *Desired) networks() []engine.NetworkSpec {
	if len(d.Networks) == 0 && d.Network != "" {
		return []engine.NetworkSpec{{Name: d.Network, Labels: labels.ForServer(d.Prefix, d.Server)}}
	}
	return d.Networks
}

// NetworksDigest is a digest of the desired networks: equal digests mean equal networks. A caller that
// found the networks in sync keeps it in Hints.NetworksSeen, so that later passes need not list them.
func (d *Desired) NetworksDigest() string {
	b, err := json.Marshal(d.networks())
	if err != nil {
		panic(err) // strings, bools, slices and maps of strings always marshal
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// networkDrift names what a live network's settings differ in from the desired ones, in the form a plan
// shows ("subnet 10.1.0.0/24 → 10.2.0.0/24"). A subnet the settings leave to the engine never differs.
func networkDrift(want engine.NetworkSpec, live *engine.Network) []string {
	var out []string
	if live.Driver != "" && live.Driver != "bridge" {
		out = append(out, "driver "+live.Driver+" → bridge")
	}
	if live.EnableIPv6 != want.EnableIPv6 {
		out = append(out, "ipv6 "+onOff(live.EnableIPv6)+" → "+onOff(want.EnableIPv6))
	}
	for _, v6 := range []bool{false, true} {
		w := subnetsOf(want.Subnets, v6)
		if len(w) == 0 {
			continue
		}
		if l := subnetsOf(live.Subnets, v6); !sameSubnets(l, w) {
			out = append(out, "subnet "+orNone(strings.Join(l, ", "))+" → "+strings.Join(w, ", "))
		}
	}
	if l, w := masquerade(live.Options), masquerade(want.Options); l != w {
		out = append(out, "masquerade "+onOff(l)+" → "+onOff(w))
	}
	for _, o := range []struct{ key, what, unset string }{
		{engine.OptionBridgeName, "bridge", "default"},
		{engine.OptionIfPrefix, "interface prefix", "default"},
		{engine.OptionHostBindingIPv4, "host binding ipv4", "any"},
		{engine.OptionHostBindingIPv6, "host binding ipv6", "any"},
	} {
		if l, w := live.Options[o.key], want.Options[o.key]; l != w {
			out = append(out, o.what+" "+cmpOr(l, o.unset)+" → "+cmpOr(w, o.unset))
		}
	}
	return out
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func cmpOr(s, unset string) string {
	if s == "" {
		return unset
	}
	return s
}

// masquerade tells whether a network's options leave IP masquerading on (the engine's default).
func masquerade(opts map[string]string) bool {
	on, err := strconv.ParseBool(opts[engine.OptionMasquerade])
	return err != nil || on
}

// subnetsOf returns the IPv4 (or IPv6) subnets of a list, as written.
func subnetsOf(subnets []string, v6 bool) []string {
	var out []string
	for _, s := range subnets {
		if p, err := netip.ParsePrefix(s); (err == nil && p.Addr().Is6() == v6) || (err != nil && strings.Contains(s, ":") == v6) {
			out = append(out, s)
		}
	}
	return out
}

// sameSubnets compares two lists of subnets as sets of networks: 10.1.0.0/24 and 10.1.0.1/24 are one.
func sameSubnets(a, b []string) bool {
	norm := func(l []string) []string {
		out := make([]string, 0, len(l))
		for _, s := range l {
			if p, err := netip.ParsePrefix(s); err == nil {
				s = p.Masked().String()
			}
			out = append(out, s)
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

// specNetworks are the networks a desired container is created on.
func specNetworks(c *Container) []string {
	if c.Network == "" {
		return c.MoreNetworks
	}
	return append([]string{c.Network}, c.MoreNetworks...)
}

// network returns the live network of that name, or nil.
func (s *Snapshot) network(name string) *engine.Network {
	for i := range s.Networks {
		if s.Networks[i].Name == name {
			return &s.Networks[i]
		}
	}
	return nil
}

// attachedTo lists the containers that name a network, running or not: a stopped container keeps its
// place on the network and cannot start once the network is gone, though the engine would remove it.
func (s *Snapshot) attachedTo(network string) []*engine.Container {
	var out []*engine.Container
	for i := range s.Containers {
		if slices.Contains(s.Containers[i].Networks, network) {
			out = append(out, &s.Containers[i])
		}
	}
	return out
}

// netPlan is what the planner decided about a server's networks.
type netPlan struct {
	// creates make the missing networks.
	creates []Action
	// recreates remove the containers on networks whose settings changed, then remove and create those
	// networks again.
	recreates []Action
	// rebuilt maps each container removed for a recreate to the networks recreated; it is created again
	// after them.
	rebuilt map[string][]string
	// made are the networks created in this plan.
	made map[string]bool
}

// diffNetworks compares the desired networks with the live ones. A missing network is created. One whose
// settings differ is recreated only when bee2d made it and every container on it is bee2d's own: those
// are removed first and created again after it. One bee2d did not make, or one with another's container on
// it, is left alone, with the reason. It does nothing when the snapshot does not list networks, and asks
// for the complete snapshot when it must know what is attached.
func diffNetworks(d *Desired, snap *Snapshot, live liveState, opt Options, p *Plan) netPlan {
	np := netPlan{rebuilt: map[string][]string{}, made: map[string]bool{}}
	if !snap.knowsNetworks() {
		return np
	}
	converge := opt.Mode == Converge && opt.Only == ""
	blocked := map[string]string{}
	for _, b := range p.Blocked {
		blocked[b.Resource] = b.Reason
	}
	wanted := map[string]bool{}
	for _, c := range append(slices.Clone(d.Containers), d.Jobs...) {
		wanted[c.Name] = true
	}
	for _, want := range d.networks() {
		ln := snap.network(want.Name)
		if ln == nil {
			np.creates = append(np.creates, Action{Op: OpCreateNetwork, Resource: want.Name, Cause: "missing", Network: &want})
			np.made[want.Name] = true
			if converge && !snap.Complete {
				p.NeedsFullSnapshot = true
			}
			continue
		}
		if !converge {
			continue // Bee2's build and run never change a network that exists, nor does an apply of one app
		}
		drift := networkDrift(want, ln)
		if len(drift) == 0 {
			continue
		}
		cause := strings.Join(drift, "; ")
		if !labels.OnServer(ln.Labels, d.Prefix, d.Server) {
			p.Blocked = append(p.Blocked, Blocked{Resource: want.Name,
				Reason: "differs from the settings (" + cause + "), but bee2d did not create it; left alone"})
			continue
		}
		if !snap.Complete {
			p.NeedsFullSnapshot = true // only the list of all containers tells what is on it
			continue
		}
		var foreign, waits, kept, removedBefore []string
		var removals []*engine.Container
		for _, c := range snap.attachedTo(want.Name) {
			switch {
			case !labels.Managed(c.Labels, d.Prefix, d.Server):
				if labels.OnServer(c.Labels, d.Prefix, d.Server) {
					waits = append(waits, "bee2d's helper "+c.Name+" is on it")
				} else {
					foreign = append(foreign, c.Name)
				}
			case live.ours[c.Name] != c:
				// Left over from an interrupted recreate: this plan removes it, before the network if it
				// runs; a stopped one has no endpoint.
				if c.Running() {
					removedBefore = append(removedBefore, c.Name)
				}
			case !wanted[c.Name]:
				removedBefore = append(removedBefore, c.Name) // no longer in the settings: removed first
			case config.Kind(c.Labels[labels.Kind]) == config.KindJob:
				if c.Running() {
					waits = append(waits, "job "+c.Labels[labels.Name]+" runs on it")
				}
				// A finished job's container has no endpoint; its next run replaces it.
			case c.State == "removing":
				waits = append(waits, c.Name+" is being removed")
			case live.stoppedFor[c.Name] != "":
				waits = append(waits, c.Name+" is stopped by "+live.stoppedFor[c.Name]+" until it is done")
			case blocked[c.Name] != "":
				kept = append(kept, c.Name+" ("+blocked[c.Name]+")")
			default:
				removals = append(removals, c)
			}
		}
		switch {
		case len(foreign) > 0:
			p.Blocked = append(p.Blocked, Blocked{Resource: want.Name, Reason: "differs from the settings (" + cause +
				"), but containers bee2d did not create are on it (" + strings.Join(foreign, ", ") +
				"); left alone until they are removed or disconnected"})
		case len(kept) > 0:
			p.Blocked = append(p.Blocked, Blocked{Resource: want.Name, Reason: "differs from the settings (" + cause +
				"), but containers on it are left alone: " + strings.Join(kept, "; ")})
		case len(waits) > 0:
			p.Waiting = append(p.Waiting, Blocked{Resource: want.Name, Reason: "differs from the settings (" + cause +
				"); recreated once nothing holds it: " + strings.Join(waits, "; ")})
		default:
			rec := Action{Op: OpRecreateNetwork, Resource: want.Name, Cause: cause, Network: &want, Needs: removedBefore}
			for _, c := range removals {
				if i := slices.IndexFunc(np.recreates, func(a Action) bool { return a.Op == OpRemoveContainer && a.Resource == c.Name }); i >= 0 {
					np.recreates[i].StepOf = append(np.recreates[i].StepOf, want.Name)
				} else {
					np.recreates = append(np.recreates, Action{Op: OpRemoveContainer, Resource: c.Name,
						Cause: "network " + want.Name + " is recreated", Live: c, StepOf: []string{want.Name}})
				}
				np.rebuilt[c.Name] = append(np.rebuilt[c.Name], want.Name)
				rec.Needs = append(rec.Needs, c.Name)
			}
			np.recreates = append(np.recreates, rec)
		}
	}
	return np
}

// rebuild replaces the actions of the applications removed for a network's recreate by creates, in start
// order; a recreate that was planned anyway adds its cause. The creates do not need the recreate: when the
// engine refuses to remove the network, the containers come back on it as it is rather than stay away.
func (np netPlan) rebuild(d *Desired, actions []Action) []Action {
	if len(np.rebuilt) == 0 {
		return actions
	}
	byName := map[string]Action{}
	for _, a := range actions {
		byName[a.Resource] = a
	}
	var out []Action
	for _, c := range d.Containers {
		a, planned := byName[c.Name]
		nets, rebuilt := np.rebuilt[c.Name]
		switch {
		case rebuilt:
			cause := "network " + strings.Join(nets, ", ") + " is recreated"
			if planned && a.Op == OpRecreateContainer {
				cause += "; " + a.Cause
			}
			out = append(out, Action{Op: OpCreateContainer, Resource: c.Name, Cause: cause, Container: c, StepOf: slices.Clone(nets)})
		case planned:
			out = append(out, a)
		}
	}
	return out
}

// needNetworks makes the container actions that create a container on a network created in this plan
// wait for it: when it cannot be made, they are skipped rather than failing on their own.
func (np netPlan) needNetworks(actions []Action) {
	for i, a := range actions {
		if a.Container == nil {
			continue
		}
		switch a.Op {
		case OpCreateContainer, OpRecreateContainer, OpRunJob:
		default:
			continue
		}
		for _, n := range specNetworks(a.Container) {
			if np.made[n] && !slices.Contains(a.Needs, n) {
				actions[i].Needs = append(actions[i].Needs, n)
			}
		}
	}
}

// removeDropped plans the removal of the networks bee2d made for this server that the settings no longer
// name, once nothing is on them: after the actions of this plan that take their last containers away.
// A network with a container bee2d did not create on it stays, and so does one with a container of
// bee2d's that stays.
func removeDropped(d *Desired, snap *Snapshot, opt Options, p *Plan) {
	if opt.Mode != Converge || opt.Only != "" || !snap.knowsNetworks() {
		return
	}
	wanted := map[string]bool{}
	for _, n := range d.networks() {
		wanted[n.Name] = true
	}
	leaving := map[string]bool{} // containers this plan removes or replaces
	for _, a := range p.Actions {
		switch {
		case a.Op == OpRemoveContainer, a.Op == OpRecreateContainer, a.Op == OpRunJob && a.Live != nil:
			leaving[a.Resource] = true
		}
	}
	for _, n := range snap.Networks {
		if wanted[n.Name] || !labels.OnServer(n.Labels, d.Prefix, d.Server) {
			continue
		}
		if !snap.Complete {
			p.NeedsFullSnapshot = true
			return
		}
		var needs, foreign, waits []string
		for _, c := range snap.attachedTo(n.Name) {
			switch {
			case leaving[c.Name]:
				needs = append(needs, c.Name)
			case !labels.Managed(c.Labels, d.Prefix, d.Server) && !labels.OnServer(c.Labels, d.Prefix, d.Server):
				foreign = append(foreign, c.Name)
			case config.Kind(c.Labels[labels.Kind]) == config.KindJob && !c.Running():
				// A finished job's container is not on the network any more; its next run replaces it.
			default:
				waits = append(waits, c.Name)
			}
		}
		switch {
		case len(foreign) > 0:
			p.Blocked = append(p.Blocked, Blocked{Resource: n.Name, Reason: "no longer in the settings, but containers bee2d did not create are on it (" +
				strings.Join(foreign, ", ") + "); left until they are removed or disconnected"})
		case len(waits) > 0:
			p.Waiting = append(p.Waiting, Blocked{Resource: n.Name, Reason: "no longer in the settings; removed once nothing is on it (" +
				strings.Join(waits, ", ") + ")"})
		default:
			p.Actions = append(p.Actions, Action{Op: OpRemoveNetwork, Resource: n.Name, Cause: "no longer in the settings", Needs: needs})
		}
	}
}

// networkStatus compares the desired networks with the live ones for Status, and lists those to be
// removed.
func networkStatus(d *Desired, snap *Snapshot, p *Plan) []ResourceStatus {
	notes := map[string]string{}
	var out []ResourceStatus
	for _, a := range p.Actions {
		switch a.Op {
		case OpCreateNetwork, OpRecreateNetwork:
			notes[a.Resource] = a.Cause
		case OpRemoveNetwork:
			out = append(out, ResourceStatus{Kind: "network", Name: a.Resource, State: "present", Detail: "to be removed: " + a.Cause})
		}
	}
	for _, b := range append(slices.Clone(p.Waiting), p.Blocked...) {
		notes[b.Resource] = b.Reason
	}
	var wanted []ResourceStatus
	for _, n := range d.networks() {
		st := ResourceStatus{Kind: "network", Name: n.Name, State: "present", InSync: true}
		if snap.network(n.Name) == nil {
			st.State, st.InSync, st.Detail = "missing", false, "missing"
		}
		if note, ok := notes[n.Name]; ok {
			st.InSync, st.Detail = false, note
		}
		wanted = append(wanted, st)
	}
	return append(wanted, out...)
}

// touchesNetworks tells whether the plan changes a network of the server, or leaves one as it is with a note.
func (p *Plan) touchesNetworks(d *Desired, snap *Snapshot) bool {
	names := map[string]bool{}
	for _, n := range d.networks() {
		names[n.Name] = true
	}
	for _, n := range snap.Networks {
		names[n.Name] = true
	}
	for _, a := range p.Actions {
		switch a.Op {
		case OpCreateNetwork, OpRecreateNetwork, OpRemoveNetwork:
			return true
		}
	}
	for _, b := range append(slices.Clone(p.Blocked), p.Waiting...) {
		if names[b.Resource] {
			return true
		}
	}
	return false
}

// stampNetworks labels the desired containers with the digest of their server's networks.
func stampNetworks(d *Desired) {
	digest := d.NetworksDigest()
	for _, c := range append(slices.Clone(d.Containers), d.Jobs...) {
		c.Labels[labels.Networks] = digest
	}
}

// unstamp takes labels.Networks off the containers the plan creates when the live networks differ from the
// settings: whether the plan leaves one alone, makes it wait, recreates or removes it (which the engine may
// refuse), or is not the kind of plan that changes networks (a build, an apply of one application). Passes
// after it then list the networks, and show why one is left alone, until those containers are made again.
// A missing network is no reason: a container that needs it is not made without it.
func unstamp(d *Desired, snap *Snapshot, p *Plan) {
	if !networksUnsettled(d, snap) {
		return
	}
	for i, a := range p.Actions {
		switch a.Op {
		case OpCreateContainer, OpRecreateContainer, OpRunJob:
			c := *a.Container
			c.Labels = maps.Clone(c.Labels)
			delete(c.Labels, labels.Networks)
			p.Actions[i].Container = &c
		}
	}
}

// networksUnsettled tells whether a live network of the server differs from the settings, or is bee2d's
// and no longer named by them.
func networksUnsettled(d *Desired, snap *Snapshot) bool {
	if !snap.knowsNetworks() {
		return false
	}
	wanted := map[string]bool{}
	for _, want := range d.networks() {
		wanted[want.Name] = true
		if ln := snap.network(want.Name); ln != nil && len(networkDrift(want, ln)) > 0 {
			return true
		}
	}
	return slices.ContainsFunc(snap.Networks, func(n engine.Network) bool {
		return !wanted[n.Name] && labels.OnServer(n.Labels, d.Prefix, d.Server)
	})
}

// networksVouched tells whether the cheap snapshot's containers vouch for the networks: every container of
// bee2d's was created for the networks the settings name now, and there is one. Networks changed by hand
// since are seen by the daemon (after the resync) and by any pass that creates something.
func networksVouched(d *Desired, snap *Snapshot) bool {
	digest, found := d.NetworksDigest(), false
	for _, c := range snap.Containers {
		if labels.Managed(c.Labels, d.Prefix, d.Server) {
			if c.Labels[labels.Networks] != digest {
				return false
			}
			found = true
		}
	}
	return found
}
