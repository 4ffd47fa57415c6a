package dockerx

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/volume"
)

// CreateNetwork creates a user-defined bridge network with labels and the engine's defaults otherwise; see
// CreateNetworkFrom.
func (c *Client) CreateNetwork(ctx context.Context, name string, labels map[string]string) error {
	return c.CreateNetworkFrom(ctx, NetworkSpec{Name: name, Labels: labels})
}

// RemoveNetwork removes a network by name or id.
func (c *Client) RemoveNetwork(ctx context.Context, nameOrID string) error {
	ctx, cancel := change(ctx)
	defer cancel()
	if err := c.api.NetworkRemove(ctx, nameOrID); err != nil {
		return fmt.Errorf("remove network %s: %w", nameOrID, err)
	}
	return nil
}

// CreateVolume creates a named local volume. Creating one that exists is not an error (the engine returns the
// existing volume, with its original labels).
func (c *Client) CreateVolume(ctx context.Context, name string, labels map[string]string) error {
	ctx, cancel := change(ctx)
	defer cancel()
	if _, err := c.api.VolumeCreate(ctx, volume.CreateOptions{Name: name, Driver: "local", Labels: labels}); err != nil {
		return fmt.Errorf("create volume %s: %w", name, err)
	}
	return nil
}

// RemoveVolume removes a named volume. bee2d never removes volumes while converging; this serves tests and
// commands where a person names the volume to delete.
func (c *Client) RemoveVolume(ctx context.Context, name string) error {
	ctx, cancel := short(ctx)
	defer cancel()
	if err := c.api.VolumeRemove(ctx, name, false); err != nil {
		return fmt.Errorf("remove volume %s: %w", name, err)
	}
	return nil
}

// RemoveImage removes an image by tag or id, and its untagged parent layers. An image still used by a container
// is not removed (IsConflict).
func (c *Client) RemoveImage(ctx context.Context, ref string) error {
	ctx, cancel := short(ctx)
	defer cancel()
	if _, err := c.api.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true}); err != nil {
		return fmt.Errorf("remove image %s: %w", ref, err)
	}
	return nil
}
