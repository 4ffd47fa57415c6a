package dockerx

import (
	"context"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
)

// InspectContainer is the engine's whole record of a container, for tests that check what a create asked
// of it arrived; bee2d itself needs only the list.
func InspectContainer(ctx context.Context, c *Client, id string) (container.InspectResponse, error) {
	return c.api.ContainerInspect(ctx, id)
}

// CreateSubnetNetwork creates a bridge network on one IPv4 subnet, on which a container can have a fixed
// address.
func CreateSubnetNetwork(ctx context.Context, c *Client, name, subnet string) error {
	_, err := c.api.NetworkCreate(ctx, name, network.CreateOptions{
		Driver: "bridge",
		IPAM:   &network.IPAM{Config: []network.IPAMConfig{{Subnet: subnet}}},
	})
	return err
}
