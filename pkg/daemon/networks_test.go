package daemon

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

// A network the engine refuses to remove (Docker 20.10's stale endpoint count) is tried again after a
// growing back-off, not on every pass: meanwhile its containers stay as they are, rather than being
// removed and made again each time. Once the engine lets it go, it is recreated and its containers with it,
// and passes after that list no network.
func TestWorkerHoldsBackAFailingNetworkRecreate(t *testing.T) {
	clock := &fakeClock{now: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)}
	eng := newFakeEngine()
	d, w, _ := testDaemon(t, twoApps, &connector{eng: eng}, clock.Now)
	w.passNow(t)
	ids := func() []string {
		var out []string
		for _, name := range []string{"bee2-app-good", "bee2-app-bad"} {
			c, ok := eng.byName(name)
			if !ok || c.State != "running" {
				t.Fatalf("%s: %+v, want running", name, c)
			}
			out = append(out, c.ID)
		}
		return out
	}
	tries := func() int {
		eng.mu.Lock()
		defer eng.mu.Unlock()
		return eng.removeNetworks
	}
	first := ids()

	// The provisioner's state gives the server an IPv6 subnet: the default network must get it. (Set here:
	// the state file is read by the settings' loader.)
	srv := d.Settings().Server("web1")
	srv.StateIPv6Subnet, srv.IPv6Docker.SuffixNet = "fd00:b2::", "2:0:0/96"
	eng.mu.Lock()
	eng.removeNetworkErr = errors.New("error while removing network: network bee2-network id net-bee2-network has active endpoints")
	eng.mu.Unlock()

	w.passNow(t)
	second := ids()
	if tries() != 1 || slices.ContainsFunc(second, func(id string) bool { return slices.Contains(first, id) }) {
		t.Fatalf("first try: %d removals of the network (want 1); containers %v → %v (want both made again, on the network as it is)", tries(), first, second)
	}
	clock.Advance(500 * time.Millisecond)
	w.passNow(t)
	if tries() != 1 || !slices.Equal(ids(), second) {
		t.Errorf("within the back-off: %d removals of the network (want 1), containers %v → %v (want untouched)", tries(), second, ids())
	}
	clock.Advance(600 * time.Millisecond)
	w.passNow(t)
	if tries() != 2 {
		t.Errorf("after the back-off: %d removals of the network, want 2", tries())
	}

	eng.mu.Lock()
	eng.removeNetworkErr = nil
	eng.mu.Unlock()
	clock.Advance(3 * time.Second)
	w.passNow(t)
	var net dockerx.Network
	eng.mu.Lock()
	if i := slices.IndexFunc(eng.networks, func(n dockerx.Network) bool { return n.Name == "bee2-network" }); i >= 0 {
		net = eng.networks[i]
	}
	eng.mu.Unlock()
	if !net.EnableIPv6 || !slices.Equal(net.Subnets, []string{"fd00:b2::2:0:0/96"}) {
		t.Fatalf("network after the engine let go: %+v, want IPv6 on fd00:b2::2:0:0/96", net)
	}
	w.passNow(t) // finds the networks as the settings say
	settled := ids()
	_, lists := eng.listCounts()
	w.passNow(t)
	if _, now := eng.listCounts(); now != lists || !slices.Equal(ids(), settled) {
		t.Errorf("a pass with nothing to do listed %d networks, volumes or images (want 0); containers %v → %v", now-lists, settled, ids())
	}
}
