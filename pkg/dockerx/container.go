package dockerx

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

// CreateContainer creates (but does not start) the container spec describes and returns its id. Ports are
// published as TCP, host port = container port, on every host address (IPv4 and IPv6).
func (c *Client) CreateContainer(ctx context.Context, spec ContainerSpec) (string, error) {
	cfg, hostCfg, netCfg := containerConfigs(spec)
	ctx, cancel := change(ctx)
	defer cancel()
	resp, err := c.api.ContainerCreate(ctx, cfg, hostCfg, netCfg, nil, spec.Name)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
	if resp.ID == "" {
		return "", fmt.Errorf("create container %s: %w", spec.Name, errNoID)
	}
	return resp.ID, nil
}

func containerConfigs(spec ContainerSpec) (*container.Config, *container.HostConfig, *network.NetworkingConfig) {
	cfg := &container.Config{
		Image:  spec.Image,
		Env:    spec.Env,
		Labels: spec.Labels,
	}
	if len(spec.Cmd) > 0 {
		cfg.Cmd = spec.Cmd
	}
	hostCfg := &container.HostConfig{
		Binds:         spec.Binds,
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(spec.RestartPolicy)},
	}
	if len(spec.Ports) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		hostCfg.PortBindings = nat.PortMap{}
		for _, p := range spec.Ports {
			port := nat.Port(strconv.Itoa(p) + "/tcp")
			cfg.ExposedPorts[port] = struct{}{}
			// An empty HostIP binds every address, IPv4 and IPv6 alike.
			hostCfg.PortBindings[port] = []nat.PortBinding{{HostIP: "", HostPort: strconv.Itoa(p)}}
		}
	}
	var netCfg *network.NetworkingConfig
	if spec.Network != "" {
		// The network mode must name the network too, or the engine also attaches the default bridge.
		hostCfg.NetworkMode = container.NetworkMode(spec.Network)
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			spec.Network: {Aliases: spec.Aliases},
		}}
	}
	return cfg, hostCfg, netCfg
}

// StartContainer starts a created or stopped container.
func (c *Client) StartContainer(ctx context.Context, id string) error {
	ctx, cancel := change(ctx)
	defer cancel()
	if err := c.api.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fmt.Errorf("start container %s: %w", id, err)
	}
	return nil
}

// StopContainer sends the container its stop signal and kills it if it has not exited after timeout.
func (c *Client) StopContainer(ctx context.Context, id string, timeout time.Duration) error {
	secs := int(timeout.Round(time.Second) / time.Second)
	// The call itself must outlive the grace period, or the engine's kill would never be waited for.
	ctx, cancel := context.WithTimeout(ctx, timeout+changeTimeout)
	defer cancel()
	if err := c.api.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	return nil
}

// RenameContainer gives a container a new name, e.g. to keep the old one aside while its successor starts.
func (c *Client) RenameContainer(ctx context.Context, id, newName string) error {
	ctx, cancel := change(ctx)
	defer cancel()
	if err := c.api.ContainerRename(ctx, id, newName); err != nil {
		return fmt.Errorf("rename container %s to %s: %w", id, newName, err)
	}
	return nil
}

// RemoveContainer removes a container, running or not. Its volumes, anonymous ones included, are kept: bee2d
// never deletes data. A missing container gives an error for which IsNotFound is true.
func (c *Client) RemoveContainer(ctx context.Context, id string) error {
	ctx, cancel := change(ctx)
	defer cancel()
	err := c.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: false})
	// The engine can fail to delete a container's directory while it is still writing a file into it for
	// another call on the same container (a stop, a restart by its policy): "unable to remove filesystem
	// ... directory not empty" (moby/moby#52161). The container is then marked dead and a second removal
	// finishes the job; a few tries, a little apart.
	for wait := removeRetry; err != nil && filesystemRace(err) && wait <= 4*removeRetry; wait *= 2 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("remove container %s: %w", id, err)
		case <-time.After(wait):
		}
		err = c.api.ContainerRemove(ctx, id, container.RemoveOptions{Force: true, RemoveVolumes: false})
		if cerrdefs.IsNotFound(err) {
			return nil
		}
	}
	if err != nil && strings.Contains(err.Error(), "already in progress") {
		// Someone else's removal (or a request the HTTP client re-sent on a fresh connection) is under
		// way: the goal is the same, so wait for it to finish.
		err = c.waitGone(ctx, id)
	}
	if err != nil {
		return fmt.Errorf("remove container %s: %w", id, err)
	}
	return nil
}

// removeRetry is the first pause before removing again a container whose directory the engine could not
// delete; it doubles on each try.
var removeRetry = 100 * time.Millisecond

// filesystemRace tells an engine's failure to delete a container's files, which a new try can get past.
func filesystemRace(err error) bool {
	return strings.Contains(err.Error(), "unable to remove filesystem")
}

// waitGone returns once the container no longer exists.
func (c *Client) waitGone(ctx context.Context, id string) error {
	for {
		_, err := c.api.ContainerInspect(ctx, id)
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
