package dockerx_test

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"slices"
	"testing"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/engine"
)

// The body is the Engine API's, in a fixed form: Bee2's order of subnets (IPv6 first), options and labels
// with sorted keys, EnableIPv6 written when false too.
func TestNetworkCreateBody(t *testing.T) {
	spec := dockerx.NetworkSpec{
		Name:       "bee2-dmz",
		EnableIPv6: true,
		Subnets:    []string{"fd00:1::/64", "172.20.0.0/16"},
		Options: map[string]string{
			engine.OptionMasquerade: "false",
			engine.OptionBridgeName: "br10",
			engine.OptionIfPrefix:   "dmz",
		},
		Labels: map[string]string{"io.bee2d.server": "web1", "io.bee2d.owner": "bee2d"},
	}
	// Empty fields are left out, as in CreateBody: the engine reads them the same.
	want := `{"Driver":"bridge","EnableIPv6":true,` +
		`"IPAM":{"Driver":"default","Config":[{"Subnet":"fd00:1::/64"},{"Subnet":"172.20.0.0/16"}]},` +
		`"Options":{"com.docker.network.bridge.enable_ip_masquerade":"false","com.docker.network.bridge.name":"br10",` +
		`"com.docker.network.container_interface_prefix":"dmz"},` +
		`"Labels":{"io.bee2d.owner":"bee2d","io.bee2d.server":"web1"},"Name":"bee2-dmz"}`
	for range 3 { // maps are ranged in a new order each time; the bytes must not follow
		got, err := dockerx.NetworkCreateBody(spec)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Fatalf("body\n got %s\nwant %s", got, want)
		}
	}

	// The default network without IPv6 is Bee2's {"EnableIPv6": false}, with the engine's IPAM.
	got, err := dockerx.NetworkCreateBody(dockerx.NetworkSpec{Name: "bee2-network"})
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"Driver":"bridge","EnableIPv6":false,"Name":"bee2-network"}` {
		t.Errorf("default network body %s: want EnableIPv6 false and no IPAM", got)
	}
}

// A network made from a spec lists with the settings it was made with, and an inspect names the containers
// on it, which the list does not.
func TestNetworkFromSpecReadsBack(t *testing.T) {
	t.Parallel()
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	image := testdocker.Sleeper(t, cli)
	ctx := t.Context()

	if v := cli.APIVersion(); !regexp.MustCompile(`^1\.\d+$`).MatchString(v) {
		t.Errorf("APIVersion() = %q, want a negotiated 1.x", v)
	}

	rnd := make([]byte, 2)
	_, _ = rand.Read(rnd)
	// The bridge name is at most 15 bytes and unique on the host, like the subnet.
	bridge := fmt.Sprintf("b2t%x", rnd)
	spec := dockerx.NetworkSpec{
		Name:    prefix + "-dmz",
		Subnets: []string{fmt.Sprintf("10.%d.%d.0/24", 200+rnd[0]%50, rnd[1])},
		Options: map[string]string{
			engine.OptionMasquerade:      "false",
			engine.OptionBridgeName:      bridge,
			engine.OptionIfPrefix:        "dmz",
			engine.OptionHostBindingIPv4: "127.0.0.1",
		},
		Labels: map[string]string{"io.bee2d.owner": "test"},
	}
	if hostHasIPv6() {
		spec.EnableIPv6 = true
		spec.Subnets = append([]string{fmt.Sprintf("fd00:b2:%x::/64", rnd)}, spec.Subnets...)
	}
	if err := cli.CreateNetworkFrom(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := cli.CreateNetworkFrom(ctx, spec); !dockerx.IsConflict(err) {
		t.Errorf("second create: err = %v, want a conflict", err)
	}
	list, err := cli.ListNetworks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(list, func(n dockerx.Network) bool { return n.Name == spec.Name })
	if i < 0 {
		t.Fatalf("network %s not listed", spec.Name)
	}
	got := list[i]
	// The engine keeps the subnets in an order of its own (IPv4 first).
	wantSubnets := slices.Sorted(slices.Values(spec.Subnets))
	if got.Driver != "bridge" || got.EnableIPv6 != spec.EnableIPv6 || !slices.Equal(slices.Sorted(slices.Values(got.Subnets)), wantSubnets) ||
		got.Labels["io.bee2d.owner"] != "test" || got.Containers != nil {
		t.Errorf("listed %+v\nwant the settings of %+v and no containers (a list does not say)", got, spec)
	}
	for k, v := range spec.Options {
		if got.Options[k] != v {
			t.Errorf("option %s = %q, want %q", k, got.Options[k], v)
		}
	}

	name := prefix + "-on-dmz"
	id, err := cli.CreateContainer(ctx, dockerx.ContainerSpec{Name: name, Image: image, RestartPolicy: "no", Network: spec.Name})
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	inspected, err := cli.InspectNetwork(ctx, spec.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(inspected.Containers, []string{name}) || !slices.Equal(slices.Sorted(slices.Values(inspected.Subnets)), wantSubnets) {
		t.Errorf("inspected containers %v, subnets %v; want [%s], %v", inspected.Containers, inspected.Subnets, name, wantSubnets)
	}
	if _, err := cli.InspectNetwork(ctx, prefix+"-none"); !dockerx.IsNotFound(err) {
		t.Errorf("inspect of a missing network: err = %v, want not found", err)
	}
}
