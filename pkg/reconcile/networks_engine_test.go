package reconcile

import (
	"crypto/rand"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
)

// freeSubnets returns n /24 subnets of 10.0.0.0/8 that no network of the engine overlaps.
func freeSubnets(t *testing.T, cli *dockerx.Client, n int) []string {
	t.Helper()
	list, err := cli.ListNetworks(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var taken []netip.Prefix
	for _, nw := range list {
		for _, s := range nw.Subnets {
			if p, err := netip.ParsePrefix(s); err == nil {
				taken = append(taken, p)
			}
		}
	}
	for range 100 {
		b := make([]byte, 2)
		_, _ = rand.Read(b)
		block := netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/22", 100+b[0]%100, b[1]&^3))
		if slices.ContainsFunc(taken, block.Overlaps) {
			continue
		}
		var out []string
		for i := range n {
			out = append(out, fmt.Sprintf("10.%d.%d.0/24", 100+b[0]%100, int(b[1]&^3)+i))
		}
		return out
	}
	t.Fatal("no free subnet in 10.100.0.0/14 … 10.199.0.0/16")
	return nil
}

// Against the engine: bee2d makes a named network as the settings say; a changed subnet is planned as a
// recreate with its cause and converged with the bee2d container on it; a network with a container bee2d
// did not create on it is left alone with why; a network dropped from the settings is removed.
func TestNetworksConvergeOnTheEngine(t *testing.T) {
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	image := testdocker.Sleeper(t, cli)
	ctx := t.Context()
	subnets := freeSubnets(t, cli, 4)
	dmzNet, sharedNet, oldNet := prefix+"-dmz", prefix+"-shared", prefix+"-old"
	web := prefix + "-app-web"

	path := filepath.Join(t.TempDir(), "settings.yml")
	yml := fmt.Sprintf("servers:\n  local: {}\ndocker:\n  prefix: %s\napplications:\n  web:\n    server: local\n    image: %s\n", prefix, image)
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	desire := func(nets ...*config.Network) *Desired {
		t.Helper()
		s, err := config.Parse(path, []byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		s.Server("local").Section = &config.Section{Networks: nets}
		d, err := DesireFrom(s, "local", Sources{})
		if err != nil {
			t.Fatal(err)
		}
		// The container options that put a service on a named network come with their own change; until
		// then web is put on dmz here, the same way in every pass.
		d.Containers[0].Network = dmzNet
		return d
	}
	apply := func(d *Desired) *Converged {
		t.Helper()
		c, err := Apply(ctx, cli, Pass{Desired: d, Executor: Executor{Parallel: 2}}, zap.NewNop())
		if err != nil {
			t.Fatalf("apply: %v", err)
		}
		return c
	}
	networks := func() map[string]engine.Network {
		t.Helper()
		list, err := cli.ListNetworks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]engine.Network{}
		for _, n := range list {
			if strings.HasPrefix(n.Name, prefix) {
				out[n.Name] = n
			}
		}
		return out
	}
	container := func(name string) engine.Container {
		t.Helper()
		list, err := cli.ListContainers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range list {
			if c.Name == name {
				return c
			}
		}
		t.Fatalf("no container %s", name)
		return engine.Container{}
	}

	// The first apply makes the default network and the named ones, and web on dmz.
	apply(desire(
		&config.Network{Name: "dmz", IPv4: subnets[0], Masquerade: off()},
		&config.Network{Name: "shared", IPv4: subnets[2]},
		&config.Network{Name: "old"}))
	before := networks()
	for _, name := range []string{prefix + "-network", dmzNet, sharedNet, oldNet} {
		if n, ok := before[name]; !ok || !labels.OnServer(n.Labels, prefix, "local") {
			t.Fatalf("network %s: %+v, want it made with bee2d's labels", name, n)
		}
	}
	if n := before[dmzNet]; !slices.Equal(n.Subnets, subnets[:1]) || n.Options[engine.OptionMasquerade] != "false" {
		t.Errorf("dmz made as %+v; want subnet %s and masquerade off", n, subnets[0])
	}
	webBefore := container(web)
	if !webBefore.Running() || !slices.Equal(webBefore.Networks, []string{dmzNet}) {
		t.Fatalf("web: %s on %v, want running on %s", webBefore.State, webBefore.Networks, dmzNet)
	}

	// Someone runs a container of their own on shared.
	foreign := prefix + "-foreign"
	id, err := cli.CreateContainer(ctx, engine.ContainerSpec{Name: foreign, Image: image, RestartPolicy: "no", Network: sharedNet})
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}

	// The settings change dmz's and shared's subnets and drop old.
	changed := desire(
		&config.Network{Name: "dmz", IPv4: subnets[1], Masquerade: off()},
		&config.Network{Name: "shared", IPv4: subnets[3]})
	p, _, err := PlanServer(ctx, cli, changed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	plan := p.String()
	rm, rec, mk := index(p, OpRemoveContainer, web), index(p, OpRecreateNetwork, dmzNet), index(p, OpCreateContainer, web)
	if rm < 0 || rec < rm || mk < rec || !strings.Contains(plan, fmt.Sprintf("~ recreate network %s: subnet %s → %s\n", dmzNet, subnets[0], subnets[1])) {
		t.Errorf("want web removed, dmz recreated with its cause, web created again:\n%s", plan)
	}
	if !strings.Contains(plan, fmt.Sprintf("! leave %s: differs from the settings (subnet %s → %s), but containers bee2d did not create are on it (%s)", sharedNet, subnets[2], subnets[3], foreign)) {
		t.Errorf("want shared left alone, saying why:\n%s", plan)
	}
	if !strings.Contains(plan, "- remove network "+oldNet+": no longer in the settings") {
		t.Errorf("want old removed:\n%s", plan)
	}

	conv := apply(changed)
	if err := conv.Blocked(); err == nil || !strings.Contains(err.Error(), sharedNet) {
		t.Errorf("Blocked() = %v, want it to name %s", err, sharedNet)
	}
	after := networks()
	if n := after[dmzNet]; n.ID == before[dmzNet].ID || !slices.Equal(n.Subnets, subnets[1:2]) || n.Options[engine.OptionMasquerade] != "false" {
		t.Errorf("dmz after apply: %+v; want a new network on %s, masquerade still off", n, subnets[1])
	}
	if n := after[sharedNet]; n.ID != before[sharedNet].ID || !slices.Equal(n.Subnets, subnets[2:3]) {
		t.Errorf("shared after apply: %+v; want it untouched on %s", n, subnets[2])
	}
	if _, ok := after[oldNet]; ok {
		t.Errorf("%s still there", oldNet)
	}
	webAfter := container(web)
	if webAfter.ID == webBefore.ID || !webAfter.Running() || !slices.Equal(webAfter.Networks, []string{dmzNet}) {
		t.Errorf("web after apply: %s %s on %v; want a new container running on %s", webAfter.ID[:12], webAfter.State, webAfter.Networks, dmzNet)
	}
	if n, err := cli.InspectNetwork(ctx, dmzNet); err != nil || !slices.Equal(n.Containers, []string{web}) {
		t.Errorf("on dmz: %v (%v), want web", n.Containers, err)
	}
	if c := container(foreign); c.ID != id || !c.Running() {
		t.Errorf("the foreign container was touched: %+v", c)
	}

	// Converged: nothing more to do, and shared is still reported.
	p, _, err = PlanServer(ctx, cli, changed, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.Empty() || len(p.Blocked) != 1 || p.Blocked[0].Resource != sharedNet {
		t.Errorf("after converging:\n%s", p)
	}
}
