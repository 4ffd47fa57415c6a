package dockerx

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"

	"github.com/docker/docker/api/types/network"
)

// networkDriver is the only driver bee2d creates networks with: containers on a user-defined bridge reach
// each other by name and alias.
const networkDriver = "bridge"

// createRequest is the Engine API's network-create request for spec.
func createRequest(spec NetworkSpec) network.CreateRequest {
	ipv6 := spec.EnableIPv6
	opts := network.CreateOptions{
		Driver: networkDriver,
		// Always sent, false too, so that an engine whose default differs still makes what the spec says.
		EnableIPv6: &ipv6,
		Options:    maps.Clone(spec.Options),
		Labels:     maps.Clone(spec.Labels),
	}
	if len(spec.Subnets) > 0 {
		opts.IPAM = &network.IPAM{Driver: "default"}
		for _, s := range spec.Subnets {
			opts.IPAM.Config = append(opts.IPAM.Config, network.IPAMConfig{Subnet: s})
		}
	}
	return network.CreateRequest{Name: spec.Name, CreateOptions: opts}
}

// NetworkCreateBody is the JSON body of the Engine API's network-create request (POST /networks/create)
// that CreateNetworkFrom sends for spec. The same spec always gives the same bytes (maps are written with
// sorted keys), so it can be shown and compared. The client adds "CheckDuplicate": true for engines older
// than API 1.44, which is left out here: the body does not depend on the engine it goes to.
func NetworkCreateBody(spec NetworkSpec) ([]byte, error) {
	// Lean like CreateBody: fields whose value is empty are left out, as the engine reads them the same.
	var b bytes.Buffer
	if err := writeLean(&b, reflect.ValueOf(createRequest(spec))); err != nil {
		return nil, fmt.Errorf("network %s: %w", spec.Name, err)
	}
	return b.Bytes(), nil
}

// CreateNetworkFrom creates a user-defined bridge network as spec says. A network of that name that already
// exists gives an error for which IsConflict is true, whatever its settings.
func (c *Client) CreateNetworkFrom(ctx context.Context, spec NetworkSpec) error {
	ctx, cancel := change(ctx)
	defer cancel()
	// The SDK asks engines older than API 1.44 to check for duplicates; newer engines refuse duplicates
	// themselves, so a second create is a Conflict on every engine.
	if _, err := c.api.NetworkCreate(ctx, spec.Name, createRequest(spec).CreateOptions); err != nil {
		return fmt.Errorf("create network %s: %w", spec.Name, err)
	}
	return nil
}

// InspectNetwork returns one network with the containers that have an endpoint on it, which a list call
// does not give. Stopped containers have no endpoint, though they still name the network and cannot start
// once it is gone: the container list (Container.Networks) shows those.
func (c *Client) InspectNetwork(ctx context.Context, nameOrID string) (Network, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	n, err := c.api.NetworkInspect(ctx, nameOrID, network.InspectOptions{})
	if err != nil {
		return Network{}, fmt.Errorf("inspect network %s: %w", nameOrID, err)
	}
	out := networkFrom(n)
	out.Containers = []string{} // inspected: none attached is known, not unknown
	for _, ep := range n.Containers {
		out.Containers = append(out.Containers, ep.Name)
	}
	slices.Sort(out.Containers)
	return out, nil
}

// networkFrom reads what bee2d compares of a listed or inspected network. The list call of API 1.41 gives
// all of it but the containers.
func networkFrom(n network.Summary) Network {
	out := Network{ID: n.ID, Name: n.Name, Driver: n.Driver, Labels: n.Labels, EnableIPv6: n.EnableIPv6, Options: n.Options}
	for _, cfg := range n.IPAM.Config {
		if cfg.Subnet != "" {
			out.Subnets = append(out.Subnets, cfg.Subnet)
		}
	}
	return out
}
