package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// The plan that recreates a network runs as planned: its containers go, the network is removed and made
// with the new settings, then the containers are made again.
func TestExecuteRecreatesANetwork(t *testing.T) {
	live := liveNets(netDesired(t, base, nil, dmz("10.1.0.0/24")))
	attach(live, "bee2-app-static", "bee2-dmz")
	p := Diff(netDesired(t, base, nil, dmz("10.2.0.0/24")), live, Options{})

	eng := &recordingEngine{}
	ex := &Executor{Engine: eng, Parallel: 4, Prefix: "bee2", Server: "web1"}
	if _, err := ex.Execute(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	order := []string{"remove " + staticLiveID, "remove network bee2-dmz", "network bee2-dmz", "create bee2-app-static", "start id-bee2-app-static"}
	for i := 1; i < len(order); i++ {
		if a, b := eng.index(order[i-1]), eng.index(order[i]); a < 0 || b < a {
			t.Fatalf("want %q before %q: %v", order[i-1], order[i], eng.calls)
		}
	}

	// The engine refuses to remove the network: static comes back on it as it is rather than stay away,
	// and the refusal says what an older engine's stale count means.
	eng = &recordingEngine{fail: map[string]error{"remove network bee2-dmz": errors.New("error while removing network: network bee2-dmz id 0a1b has active endpoints")}}
	ex.Engine = eng
	res, err := ex.Execute(t.Context(), p)
	if eng.index("network bee2-dmz") >= 0 || eng.index("start id-bee2-app-static") < 0 {
		t.Errorf("want no create of the network and static started again: %v", eng.calls)
	}
	if res.Failed != 1 || res.Skipped != 0 || !strings.Contains(fmt.Sprint(err), "moby/moby#42119") {
		t.Errorf("failed %d, skipped %d (want 1, 0), err = %v", res.Failed, res.Skipped, err)
	}

	// A container that cannot be removed keeps the network as it is.
	eng = &recordingEngine{fail: map[string]error{"remove " + staticLiveID: errors.New("engine busy")}}
	ex.Engine = eng
	if _, err := ex.Execute(t.Context(), p); !strings.Contains(fmt.Sprint(err), "recreate network bee2-dmz: skipped: bee2-app-static failed") {
		t.Errorf("err = %v", err)
	}
	if eng.index("remove network bee2-dmz") >= 0 {
		t.Errorf("the network was removed though a container is still on it: %v", eng.calls)
	}
}

// stopTracker records how many stops and removals run at once. Each waits a moment for another to join
// it, so that calls allowed to overlap do.
type stopTracker struct {
	*recordingEngine
	version string

	mu             sync.Mutex
	inFlight, peak int
	joined         chan struct{}
}

func (s *stopTracker) APIVersion() string { return s.version }

func (s *stopTracker) track(call func() error) error {
	s.mu.Lock()
	s.inFlight++
	s.peak = max(s.peak, s.inFlight)
	if s.inFlight > 1 {
		select {
		case s.joined <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
	select {
	case <-s.joined:
	case <-time.After(50 * time.Millisecond):
	}
	s.mu.Lock()
	s.inFlight--
	s.mu.Unlock()
	return call()
}

func (s *stopTracker) StopContainer(ctx context.Context, id string, d time.Duration) error {
	return s.track(func() error { return s.recordingEngine.StopContainer(ctx, id, d) })
}

func (s *stopTracker) RemoveContainer(ctx context.Context, id string) error {
	return s.track(func() error { return s.recordingEngine.RemoveContainer(ctx, id) })
}

// Stops and removals of containers that share a network run one at a time on engines older than API 1.43
// (moby/moby#42119), and together on newer ones; containers on the same two networks, listed in either
// order, do not wait for each other forever.
func TestStopsSerialisedPerNetworkOnOlderEngines(t *testing.T) {
	var b strings.Builder
	b.WriteString("servers: {web1: {}}\napplications:\n")
	for i := range 4 {
		fmt.Fprintf(&b, "  a%d: {server: web1, image: img:1, env: {v: %d}}\n", i, i)
	}
	liveD, wantD := desired(t, b.String(), ""), desired(t, strings.ReplaceAll(b.String(), "{v: ", "{v: 1"), "")
	for _, tc := range []struct {
		version string
		serial  bool
	}{{"1.41", true}, {"1.42", true}, {"1.43", false}, {"1.47", false}, {"", true}} {
		t.Run("api "+tc.version, func(t *testing.T) {
			live := liveFrom(liveD)
			for i := range live.Containers {
				live.Containers[i].Networks = []string{"bee2-network", "bee2-dmz"}
				if i%2 == 1 {
					live.Containers[i].Networks = []string{"bee2-dmz", "bee2-network"}
				}
			}
			p := Diff(wantD, live, Options{})
			if len(p.Actions) != 4 {
				t.Fatalf("want 4 recreates:\n%s", p)
			}
			eng := &stopTracker{recordingEngine: &recordingEngine{}, version: tc.version, joined: make(chan struct{}, 8)}
			ex := &Executor{Engine: eng, Parallel: 4}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if _, err := ex.Execute(ctx, p); err != nil {
				t.Fatal(err)
			}
			if tc.serial && eng.peak != 1 {
				t.Errorf("%d stops or removals on one network at once, want 1", eng.peak)
			}
			if !tc.serial && eng.peak < 2 {
				t.Errorf("stops and removals never overlapped (peak %d): serialised on an engine that does not need it", eng.peak)
			}
		})
	}
}

func TestAPIBefore(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{{"1.41", true}, {"1.42", true}, {"1.43", false}, {"1.44", false}, {"1.9", true}, {"2.0", false}, {"", true}, {"x.y", true}} {
		if got := apiBefore(tc.v, "1.43"); got != tc.want {
			t.Errorf("apiBefore(%q, 1.43) = %v, want %v", tc.v, got, tc.want)
		}
	}
}

// A container removed to be created again on a recreated network is listed once, out of sync; a network
// to be removed is listed as such.
func TestStatusOfNetworks(t *testing.T) {
	live := liveNets(netDesired(t, base, nil, dmz("10.1.0.0/24")))
	attach(live, "bee2-app-static", "bee2-dmz")
	ownNetwork(live, "bee2-old")
	got := map[string][]ResourceStatus{}
	for _, st := range Status(netDesired(t, base, nil, dmz("10.2.0.0/24")), live) {
		got[st.Name] = append(got[st.Name], st)
	}
	for name, want := range map[string]ResourceStatus{
		"bee2-network":    {Kind: "network", Name: "bee2-network", State: "present", InSync: true},
		"bee2-dmz":        {Kind: "network", Name: "bee2-dmz", State: "present", Detail: "subnet 10.1.0.0/24 → 10.2.0.0/24"},
		"bee2-old":        {Kind: "network", Name: "bee2-old", State: "present", Detail: "to be removed: no longer in the settings"},
		"bee2-app-static": {Kind: "container", Name: "bee2-app-static", State: "running", Detail: "network bee2-dmz is recreated"},
		"bee2-app-front":  {Kind: "container", Name: "bee2-app-front", State: "running", InSync: true},
	} {
		if len(got[name]) != 1 || got[name][0] != want {
			t.Errorf("%s: %+v\nwant %+v", name, got[name], want)
		}
	}
}
