package reconcile

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
)

// netDesired is desired(t, base, "") with web1's named networks (docker.web1.networks) and state set by
// hand, as the settings would give them.
func netDesired(t *testing.T, yml string, srv func(*config.Server), nets ...*config.Network) *Desired {
	t.Helper()
	s := settings(t, yml)
	s.Server("web1").Section = &config.Section{Networks: nets}
	if srv != nil {
		srv(s.Server("web1"))
	}
	d, err := DesireFrom(s, "web1", Sources{Digest: fakeDigest(""), Head: fakeHead("")})
	if err != nil {
		t.Fatalf("desire: %v", err)
	}
	return d
}

func off() *bool { f := false; return &f }

// dmz is a named network as Bee2's multinet settings write one.
func dmz(ipv4 string) *config.Network {
	return &config.Network{Name: "dmz", IPv4: ipv4, Masquerade: off(), Bridge: "br10"}
}

// engineView is a network as the engine lists it once bee2d made it from spec: the engine picks an IPv4
// subnet when the spec names none, and keeps IPv4 first.
func engineView(spec engine.NetworkSpec, n int) engine.Network {
	subnets := slices.Clone(spec.Subnets)
	if len(subnetsOf(subnets, false)) == 0 {
		subnets = append(subnets, fmt.Sprintf("172.%d.0.0/16", 18+n))
	}
	slices.SortFunc(subnets, func(a, b string) int { return strings.Count(a, ":") - strings.Count(b, ":") })
	return engine.Network{ID: fmt.Sprintf("net%d", n), Name: spec.Name, Driver: "bridge", Labels: spec.Labels,
		EnableIPv6: spec.EnableIPv6, Subnets: subnets, Options: spec.Options}
}

// liveNets is the server after bee2d converged it to d: liveFrom, with d's networks as the engine lists them.
func liveNets(d *Desired) *Snapshot {
	s := liveFrom(d)
	s.Networks = nil
	for i, n := range d.Networks {
		s.Networks = append(s.Networks, engineView(n, i))
	}
	return s
}

// attach puts a live container on a network too.
func attach(s *Snapshot, container, network string) {
	c := find(s, container)
	c.Networks = append(c.Networks, network)
}

// foreignOn adds a running container bee2d did not create on a network.
func foreignOn(s *Snapshot, name, network string) {
	s.Containers = append(s.Containers, engine.Container{ID: "f0" + name, Name: name, State: "running",
		Labels: map[string]string{"maintainer": "someone"}, Networks: []string{network}})
}

// ownNetwork adds a network bee2d made for web1 that the settings may no longer name.
func ownNetwork(s *Snapshot, name string) {
	s.Networks = append(s.Networks, engine.Network{ID: "own-" + name, Name: name, Driver: "bridge",
		Labels: labels.ForServer("bee2", "web1"), Subnets: []string{"172.30.0.0/16"}})
}

// index returns the position of the action op on resource in the plan, or -1.
func index(p *Plan, op Op, resource string) int {
	return slices.IndexFunc(p.Actions, func(a Action) bool { return a.Op == op && a.Resource == resource })
}

func TestDiffNetworksGolden(t *testing.T) {
	withIPv6 := func(srv *config.Server) {
		srv.StateIPv6Subnet, srv.IPv6Docker.SuffixNet = "a:b:c:d::", "2:0:0/96"
	}
	tests := []struct {
		name string
		// live are the networks the server was converged to (nil: none named), want those of the settings now.
		live, want         []*config.Network
		liveSrv, wantSrv   func(*config.Server)
		liveYml, wantYml   string
		snapshot           func(*Snapshot)
		opt                Options
		check              func(t *testing.T, p *Plan)
		freshServer, cheap bool
	}{
		{
			name: "fresh-server", want: []*config.Network{dmz("10.1.0.0/24"), {Name: "backend", IPv6: "fd00:1::/64", IPv4: "10.9.0.0/24"}},
			freshServer: true,
			check: func(t *testing.T, p *Plan) {
				// The default network first, then the named ones in file order, before anything else.
				if index(p, OpCreateNetwork, "bee2-network") != 0 || index(p, OpCreateNetwork, "bee2-dmz") != 1 || index(p, OpCreateNetwork, "bee2-backend") != 2 {
					t.Errorf("networks not made first, in order:\n%s", p)
				}
				a := p.Actions[index(p, OpCreateNetwork, "bee2-backend")]
				if !a.Network.EnableIPv6 || !slices.Equal(a.Network.Subnets, []string{"fd00:1::/64", "10.9.0.0/24"}) {
					t.Errorf("backend spec %+v: want IPv6 on, its IPv6 subnet before its IPv4 one", a.Network)
				}
				a = p.Actions[index(p, OpCreateNetwork, "bee2-dmz")]
				if a.Network.Options[engine.OptionMasquerade] != "false" || a.Network.Options[engine.OptionBridgeName] != "br10" ||
					a.Network.Labels[labels.Owner] != labels.Bee2d || a.Network.EnableIPv6 {
					t.Errorf("dmz spec %+v", a.Network)
				}
				// Made for the networks of the settings: later passes need not list them.
				if c := p.Actions[index(p, OpCreateContainer, "bee2-app-static")].Container; c.Labels[labels.Networks] == "" {
					t.Errorf("a container made with the networks is not labelled with them: %v", c.Labels)
				}
			},
		},
		{name: "in-sync", live: []*config.Network{dmz("10.1.0.0/24")}, want: []*config.Network{dmz("10.1.0.0/24")}},
		{
			// A network added to the settings is made though no container uses it yet, as Bee2 did.
			name: "added", want: []*config.Network{dmz("10.1.0.0/24")},
			check: func(t *testing.T, p *Plan) {
				if len(p.Actions) != 1 || index(p, OpCreateNetwork, "bee2-dmz") != 0 {
					t.Errorf("want only the create of bee2-dmz:\n%s", p)
				}
			},
		},
		{
			// Nothing is on it: it is made again at once.
			name: "subnet-changed-empty", live: []*config.Network{dmz("10.1.0.0/24")}, want: []*config.Network{dmz("10.2.0.0/24")},
		},
		{
			name: "subnet-changed-recreates-its-containers", live: []*config.Network{dmz("10.1.0.0/24")}, want: []*config.Network{dmz("10.2.0.0/24")},
			snapshot: func(s *Snapshot) { attach(s, "bee2-app-static", "bee2-dmz") },
			check: func(t *testing.T, p *Plan) {
				rm, rec, mk := index(p, OpRemoveContainer, "bee2-app-static"), index(p, OpRecreateNetwork, "bee2-dmz"), index(p, OpCreateContainer, "bee2-app-static")
				if rm < 0 || rm > rec || rec > mk {
					t.Fatalf("want static removed, then the network recreated, then static created:\n%s", p)
				}
				// The recreate needs the removal; the removal and the create are its steps, held with it.
				if !slices.Contains(p.Actions[rec].Deps(), "bee2-app-static") || !slices.Equal(p.Actions[rm].StepOf, []string{"bee2-dmz"}) ||
					!slices.Equal(p.Actions[mk].StepOf, []string{"bee2-dmz"}) {
					t.Errorf("recreate needs %v; steps of it: removal %v, create %v", p.Actions[rec].Deps(), p.Actions[rm].StepOf, p.Actions[mk].StepOf)
				}
				if index(p, OpRecreateContainer, "bee2-app-front") >= 0 || index(p, OpRemoveContainer, "bee2-app-front") >= 0 {
					t.Errorf("front is not on the network and must stay:\n%s", p)
				}
				// The engine may refuse the recreate: static does not vouch for the networks, so the next pass
				// lists them. The desired state the plan was made from is not changed.
				if c := p.Actions[mk].Container; c.Labels[labels.Networks] != "" || c.Labels[labels.SpecHash] == "" {
					t.Errorf("static made for a recreate is labelled %v, want no networks label", c.Labels)
				}
			},
		},
		{
			// static's env changed too: one create gives both changes.
			name: "subnet-and-container-changed", live: []*config.Network{dmz("10.1.0.0/24")}, want: []*config.Network{dmz("10.2.0.0/24")},
			wantYml:  strings.Replace(base, "root: /www", "root: /srv", 1),
			snapshot: func(s *Snapshot) { attach(s, "bee2-app-static", "bee2-dmz") },
		},
		{
			name: "masquerade-bridge-ipv6-changed",
			live: []*config.Network{dmz("10.1.0.0/24")},
			want: []*config.Network{{Name: "dmz", IPv4: "10.1.0.0/24", IPv6: "fd00:2::/64", Bridge: "br11", IfPrefix: "dmz", HostIPv4: "192.0.2.1"}},
		},
		{
			name: "foreign-container-blocks", live: []*config.Network{dmz("10.1.0.0/24")}, want: []*config.Network{dmz("10.2.0.0/24")},
			snapshot: func(s *Snapshot) {
				attach(s, "bee2-app-static", "bee2-dmz")
				foreignOn(s, "vpn-gateway", "bee2-dmz")
			},
			check: func(t *testing.T, p *Plan) {
				if !p.Empty() {
					t.Errorf("nothing may change while a foreign container is on the network:\n%s", p)
				}
			},
		},
		{
			// A container bee2d did not create stopped on it counts too: it could not start again.
			name: "stopped-foreign-container-blocks", live: []*config.Network{dmz("10.1.0.0/24")}, want: []*config.Network{dmz("10.2.0.0/24")},
			snapshot: func(s *Snapshot) {
				foreignOn(s, "vpn-gateway", "bee2-dmz")
				find(s, "vpn-gateway").State = "exited"
			},
		},
		{
			name: "network-bee2d-did-not-make", live: []*config.Network{dmz("10.1.0.0/24")}, want: []*config.Network{dmz("10.2.0.0/24")},
			snapshot: func(s *Snapshot) {
				for i := range s.Networks {
					s.Networks[i].Labels = nil
				}
			},
		},
		{
			name: "default-network-gets-ipv6", wantSrv: withIPv6,
			check: func(t *testing.T, p *Plan) {
				rec := index(p, OpRecreateNetwork, "bee2-network")
				for _, c := range []string{"bee2-app-static", "bee2-app-front"} {
					if rm, mk := index(p, OpRemoveContainer, c), index(p, OpCreateContainer, c); rm < 0 || rm > rec || mk < rec {
						t.Errorf("%s: removed at %d, created at %d, network recreated at %d:\n%s", c, rm, mk, rec, p)
					}
				}
				if s := p.Actions[rec].Network; !s.EnableIPv6 || !slices.Equal(s.Subnets, []string{"a:b:c:d::2:0:0/96"}) {
					t.Errorf("default network spec %+v", s)
				}
			},
		},
		{name: "default-network-ipv6-in-sync", liveSrv: withIPv6, wantSrv: withIPv6},
		{
			name: "ipv6-waits-for-a-running-job", wantSrv: withIPv6,
			liveYml: jobsBase, wantYml: jobsBase,
			snapshot: func(s *Snapshot) { find(s, "bee2-job-site").State = "running" },
		},
		{
			name: "ipv6-waits-for-a-backup", wantSrv: withIPv6,
			snapshot: func(s *Snapshot) {
				find(s, "bee2-app-static").State = "exited"
				helper := labels.ForServer("bee2", "web1")
				helper[labels.Kind], helper[labels.Name], helper[labels.StoppedFor] = "helper", "backup", "bee2-app-static"
				s.Containers = append(s.Containers, engine.Container{ID: "h", Name: "bee2-helper-backup-web1", State: "running", Labels: helper})
			},
		},
		{
			// Finished jobs are not on the network; their next run replaces their containers.
			name: "ipv6-finished-jobs-stay", wantSrv: withIPv6, liveYml: jobsBase, wantYml: jobsBase,
		},
		{
			name: "dropped-network-removed", live: []*config.Network{dmz("10.1.0.0/24")},
			check: func(t *testing.T, p *Plan) {
				if len(p.Actions) != 1 || index(p, OpRemoveNetwork, "bee2-dmz") != 0 {
					t.Errorf("want only the removal of bee2-dmz:\n%s", p)
				}
			},
		},
		{
			// The application and its network leave the settings together: the network goes after it.
			name: "dropped-with-its-application", live: []*config.Network{dmz("10.1.0.0/24")},
			liveYml: base + "  vpn:\n    server: web1\n    image: vpn:1\n",
			snapshot: func(s *Snapshot) {
				find(s, "bee2-app-vpn").Networks = []string{"bee2-dmz"}
			},
			check: func(t *testing.T, p *Plan) {
				rm, net := index(p, OpRemoveContainer, "bee2-app-vpn"), index(p, OpRemoveNetwork, "bee2-dmz")
				if rm < 0 || net < rm || !slices.Contains(p.Actions[net].Deps(), "bee2-app-vpn") {
					t.Errorf("want vpn removed, then the network after it:\n%s", p)
				}
			},
		},
		{
			name: "dropped-network-in-use-stays", live: []*config.Network{dmz("10.1.0.0/24")},
			liveYml: jobsBase, wantYml: jobsBase,
			snapshot: func(s *Snapshot) {
				foreignOn(s, "vpn-gateway", "bee2-dmz")
				ownNetwork(s, "bee2-old")
				attach(s, "bee2-job-site", "bee2-old")
				find(s, "bee2-job-site").State = "running"
				ownNetwork(s, "bee2-older")
				attach(s, "bee2-job-report", "bee2-older") // finished: not in the way
			},
			check: func(t *testing.T, p *Plan) {
				if len(p.Actions) != 1 || index(p, OpRemoveNetwork, "bee2-older") != 0 {
					t.Errorf("want only bee2-older removed:\n%s", p)
				}
			},
		},
		{
			// Networks of another prefix or server, and ones nobody labelled, are not bee2d's to remove.
			name: "others-networks-untouched",
			snapshot: func(s *Snapshot) {
				s.Networks = append(s.Networks,
					engine.Network{Name: "bee3-dmz", Labels: labels.ForServer("bee3", "web1")},
					engine.Network{Name: "bee2-web2", Labels: labels.ForServer("bee2", "web2")},
					engine.Network{Name: "bee2-mine", Labels: map[string]string{"maintainer": "someone"}})
			},
			check: func(t *testing.T, p *Plan) {
				if !p.Empty() || len(p.Blocked) > 0 {
					t.Errorf("others' networks must not show up:\n%s", p)
				}
			},
		},
		{
			// Bee2's build creates what is missing and changes no network.
			name: "build-leaves-networks", live: []*config.Network{dmz("10.1.0.0/24")}, want: []*config.Network{dmz("10.2.0.0/24")},
			snapshot: func(s *Snapshot) {
				attach(s, "bee2-app-static", "bee2-dmz")
				ownNetwork(s, "bee2-old")
			},
			opt: Options{Mode: CreateMissing},
		},
		{
			// What a build creates while a network differs does not vouch for the networks.
			name: "build-while-a-network-differs", live: []*config.Network{dmz("10.1.0.0/24")}, want: []*config.Network{dmz("10.2.0.0/24")},
			snapshot: func(s *Snapshot) {
				s.Containers = slices.DeleteFunc(s.Containers, func(c engine.Container) bool { return c.Name == "bee2-app-static" })
			},
			opt: Options{Mode: CreateMissing},
			check: func(t *testing.T, p *Plan) {
				i := index(p, OpCreateContainer, "bee2-app-static")
				if i < 0 || p.Actions[i].Container.Labels[labels.Networks] != "" || index(p, OpRecreateNetwork, "bee2-dmz") >= 0 {
					t.Errorf("want static made without the networks label, and the network left:\n%s", p)
				}
			},
		},
		{
			name: "apply-of-one-app-leaves-networks", live: []*config.Network{dmz("10.1.0.0/24")}, want: []*config.Network{dmz("10.2.0.0/24")},
			wantYml:  strings.Replace(base, "root: /www", "root: /srv", 1),
			snapshot: func(s *Snapshot) { attach(s, "bee2-app-static", "bee2-dmz") },
			opt:      Options{Only: "static"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			liveYml, wantYml := cmpOr(tt.liveYml, base), cmpOr(tt.wantYml, base)
			snap := &Snapshot{Complete: true}
			if !tt.freshServer {
				snap = liveNets(netDesired(t, liveYml, tt.liveSrv, tt.live...))
			}
			if tt.snapshot != nil {
				tt.snapshot(snap)
			}
			want := netDesired(t, wantYml, tt.wantSrv, tt.want...)
			p := Diff(want, snap, tt.opt)
			for _, c := range append(slices.Clone(want.Containers), want.Jobs...) {
				if c.Labels[labels.Networks] != want.NetworksDigest() {
					t.Errorf("Diff changed the desired %s's labels: %v", c.Name, c.Labels)
				}
			}
			if p.NeedsFullSnapshot {
				t.Fatalf("a complete snapshot must not ask for more")
			}
			if tt.check != nil {
				tt.check(t, p)
			}
			golden(t, filepath.Join("testdata", "plans", "networks-"+tt.name+".plan"), p.String())
		})
	}
}

// A pass that did not list the networks plans nothing about them; one that listed them with bee2d's
// containers only asks for the complete snapshot when it must know what is on a network.
func TestDiffNetworksCheapSnapshot(t *testing.T) {
	live := liveNets(netDesired(t, base, nil, dmz("10.1.0.0/24")))
	live.Complete = false
	cheap := func() *Snapshot {
		s := *live
		s.Volumes, s.Images = nil, nil
		return &s
	}
	changed := netDesired(t, base, nil, dmz("10.2.0.0/24"))

	s := cheap()
	s.Networks = nil
	if p := Diff(changed, s, Options{}); p.NeedsFullSnapshot || !p.Empty() {
		t.Errorf("networks not listed: needs full %v, plan:\n%s", p.NeedsFullSnapshot, p)
	}
	s = cheap()
	s.NetworksListed = true
	if p := Diff(netDesired(t, base, nil, dmz("10.1.0.0/24")), s, Options{}); p.NeedsFullSnapshot || !p.Empty() {
		t.Errorf("networks listed and in sync: needs full %v, plan:\n%s", p.NeedsFullSnapshot, p)
	}
	if p := Diff(changed, s, Options{}); !p.NeedsFullSnapshot {
		t.Errorf("a network of bee2d's differs: the containers on it must be listed:\n%s", p)
	}
	if p := Diff(netDesired(t, base, nil), s, Options{}); !p.NeedsFullSnapshot {
		t.Errorf("a network of bee2d's was dropped: the containers on it must be listed:\n%s", p)
	}
	for i := range s.Networks {
		s.Networks[i].Labels = nil
	}
	if p := Diff(changed, s, Options{}); p.NeedsFullSnapshot || len(p.Blocked) != 1 {
		t.Errorf("a network bee2d did not make is left alone without more lists: needs full %v\n%s", p.NeedsFullSnapshot, p)
	}
}

func TestNetworkDrift(t *testing.T) {
	spec := engine.NetworkSpec{Name: "bee2-dmz", Subnets: []string{"fd00:1::/64", "10.1.0.0/24"}, EnableIPv6: true,
		Options: map[string]string{engine.OptionMasquerade: "false"}}
	for _, tc := range []struct {
		name string
		live engine.Network
		want string
	}{
		{"same", engine.Network{Driver: "bridge", EnableIPv6: true, Subnets: []string{"10.1.0.0/24", "fd00:1::/64"},
			Options: map[string]string{engine.OptionMasquerade: "false"}}, ""},
		{"same network written otherwise", engine.Network{EnableIPv6: true, Subnets: []string{"10.1.0.1/24", "fd00:1:0::/64"},
			Options: map[string]string{engine.OptionMasquerade: "0"}}, ""},
		{"all differ", engine.Network{Driver: "macvlan", Subnets: []string{"10.2.0.0/24"},
			Options: map[string]string{engine.OptionBridgeName: "br0"}},
			"driver macvlan → bridge; ipv6 off → on; subnet 10.2.0.0/24 → 10.1.0.0/24; subnet none → fd00:1::/64; masquerade on → off; bridge br0 → default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(networkDrift(spec, &tc.live), "; "); got != tc.want {
				t.Errorf("drift\n got %q\nwant %q", got, tc.want)
			}
		})
	}
	// The engine's own choice of an IPv4 subnet never differs from a spec that names none.
	if d := networkDrift(engine.NetworkSpec{Name: "bee2-network"}, &engine.Network{Driver: "bridge", Subnets: []string{"172.18.0.0/16"}}); len(d) > 0 {
		t.Errorf("an engine-chosen subnet differs: %v", d)
	}
}

func TestDesiredNetworks(t *testing.T) {
	d := netDesired(t, base, func(srv *config.Server) {
		srv.StateIPv6Subnet, srv.IPv6Docker.SuffixNet = "a:b:c:d::", "2:0:0/96"
	}, &config.Network{Name: "network", IPv4: "10.5.0.0/24"}, dmz("10.1.0.0/24"),
		&config.Network{Name: "pub", IPv4: "10.7.0.0/24", HostIPv4: "192.0.2.1", HostIPv6: "2001:db8::1", IfPrefix: "pub", Masquerade: new(true)})
	var names []string
	for _, n := range d.Networks {
		names = append(names, n.Name)
	}
	// A named network called "network" is the default one, which Bee2 made first.
	if !slices.Equal(names, []string{"bee2-network", "bee2-dmz", "bee2-pub"}) || d.Networks[0].Subnets[0] != "a:b:c:d::2:0:0/96" {
		t.Errorf("networks %v, default %+v", names, d.Networks[0])
	}
	pub := d.Networks[2]
	want := map[string]string{engine.OptionHostBindingIPv4: "192.0.2.1", engine.OptionHostBindingIPv6: "2001:db8::1", engine.OptionIfPrefix: "pub"}
	if fmt.Sprint(pub.Options) != fmt.Sprint(want) || pub.EnableIPv6 {
		t.Errorf("pub options %v (masquerade true writes nothing), ipv6 %v", pub.Options, pub.EnableIPv6)
	}

	s := settings(t, base)
	s.Server("web1").Section = &config.Section{Networks: []*config.Network{{Name: "dmz", IPv4: "172.20.0.1"}}}
	if _, err := DesireFrom(s, "web1", Sources{Digest: fakeDigest("")}); err == nil || !strings.Contains(err.Error(), `network bee2-dmz: subnet "172.20.0.1" is not in CIDR form`) {
		t.Errorf("a bare address: err = %v", err)
	}

	a, b := netDesired(t, base, nil, dmz("10.1.0.0/24")), netDesired(t, base, nil, dmz("10.1.0.0/24"))
	if a.NetworksDigest() != b.NetworksDigest() || a.NetworksDigest() == netDesired(t, base, nil, dmz("10.2.0.0/24")).NetworksDigest() {
		t.Error("NetworksDigest: equal networks must give equal digests, others another")
	}
}

// countingObserver serves a snapshot and counts the list calls.
type countingObserver struct {
	snap                          *Snapshot
	mu                            sync.Mutex // the lists of a full snapshot run at once
	labelled, all, networks, rest int
}

func (o *countingObserver) count(n *int) {
	o.mu.Lock()
	*n++
	o.mu.Unlock()
}

func (o *countingObserver) ListContainers(context.Context) ([]engine.Container, error) {
	o.count(&o.all)
	return o.snap.Containers, nil
}
func (o *countingObserver) ListContainersLabelled(context.Context, map[string]string) ([]engine.Container, error) {
	o.count(&o.labelled)
	return o.snap.Containers, nil
}
func (o *countingObserver) ListNetworks(context.Context) ([]engine.Network, error) {
	o.count(&o.networks)
	return o.snap.Networks, nil
}
func (o *countingObserver) ListVolumes(context.Context) ([]engine.Volume, error) {
	o.count(&o.rest)
	return o.snap.Volumes, nil
}
func (o *countingObserver) ListImages(context.Context) ([]engine.Image, error) {
	o.count(&o.rest)
	return o.snap.Images, nil
}

// A pass whose networks were found in sync before, or whose containers were all made for the networks
// of the settings, lists bee2d's containers only. A change of the networks in the settings, or a container
// from before bee2d knew of networks, has them listed: afresh, not from the cache of an earlier pass, so
// the drift is found though no container changed.
func TestNetworksListedOnlyWhenTheyMayDiffer(t *testing.T) {
	d := netDesired(t, base, nil, dmz("10.1.0.0/24"))
	live := liveNets(d)
	o := &countingObserver{snap: live}
	plan := func(d *Desired, h Hints) *Plan {
		t.Helper()
		o.labelled, o.all, o.networks, o.rest = 0, 0, 0, 0
		p, _, err := PlanServerWith(t.Context(), o, d, Options{}, h)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, h := range []Hints{{NetworksSeen: d.NetworksDigest()}, {}} {
		if p := plan(d, h); !p.Empty() || o.labelled != 1 || o.networks+o.all+o.rest != 0 {
			t.Errorf("hints %+v: %d labelled, %d network, %d other lists (want 1, 0, 0)\n%s", h, o.labelled, o.networks, o.all+o.rest, p)
		}
	}

	delete(find(live, "bee2-app-front").Labels, labels.Networks) // made by an older bee2d
	if p := plan(d, Hints{}); !p.Empty() || o.labelled != 1 || o.networks != 1 || o.all+o.rest != 0 {
		t.Errorf("a container not made for these networks: %d labelled, %d network, %d other lists (want 1, 1, 0)\n%s", o.labelled, o.networks, o.all+o.rest, p)
	}
	if p := plan(d, Hints{NetworksSeen: d.NetworksDigest()}); o.networks != 0 {
		t.Errorf("networks seen in sync: %d network lists, want 0\n%s", o.networks, p)
	}

	changed := netDesired(t, base, nil, dmz("10.2.0.0/24"))
	if p := plan(changed, Hints{}); index(p, OpRecreateNetwork, "bee2-dmz") < 0 || o.networks != 1 {
		t.Errorf("settings changed the networks: %d network lists (want 1)\n%s", o.networks, p)
	}
	stale := &Snapshot{Networks: []engine.Network{{Name: "bee2-network"}, {Name: "bee2-dmz", Subnets: []string{"10.2.0.0/24"}}}}
	if p := plan(changed, Hints{NetworksSeen: d.NetworksDigest(), Prerequisites: stale, Full: true}); index(p, OpRecreateNetwork, "bee2-dmz") < 0 || o.networks != 1 {
		t.Errorf("settings changed the networks the daemon saw: %d network lists (want 1, not the cache)\n%s", o.networks, p)
	}
}
