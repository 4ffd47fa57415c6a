package dockerx

import (
	"context"
	"fmt"
	"io"
)

// CopyFromContainer streams path of a container (running or only created) as a tar whose entries start with
// the last element of path: /volumes gives volumes/, volumes/<name>/... The engine's archive endpoint is
// slower than reading inside a helper, but needs nothing to run on the server. Only ctx bounds the copy;
// the caller closes the stream.
func (c *Client) CopyFromContainer(ctx context.Context, id, path string) (io.ReadCloser, error) {
	rc, _, err := c.api.CopyFromContainer(ctx, id, path)
	if err != nil {
		return nil, fmt.Errorf("copy %s from container %s: %w", path, shortName(id), err)
	}
	return rc, nil
}

// VolumeMountpoint returns where a named volume's data lies on the engine's host.
func (c *Client) VolumeMountpoint(ctx context.Context, name string) (string, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	v, err := c.api.VolumeInspect(ctx, name)
	if err != nil {
		return "", fmt.Errorf("inspect volume %s: %w", name, err)
	}
	return v.Mountpoint, nil
}
