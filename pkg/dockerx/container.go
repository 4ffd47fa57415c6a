package dockerx

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

// CreateContainer creates (but does not start) the container spec describes and returns its id. Its further
// networks (spec.MoreNetworks) are the caller's to connect, with ConnectNetwork, before it starts.
func (c *Client) CreateContainer(ctx context.Context, spec ContainerSpec) (string, error) {
	cfg, hostCfg, netCfg, err := containerConfigs(spec)
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", spec.Name, err)
	}
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

// ConnectNetwork attaches a created container to one more network, with aliases on it. Engines before API
// 1.44 take a single network at create; the others are connected this way before the container starts.
func (c *Client) ConnectNetwork(ctx context.Context, networkName, containerID string, aliases []string) error {
	ctx, cancel := change(ctx)
	defer cancel()
	// An engine records a network it does not have for a container that is not running, and fails only at
	// the start; asking first makes a missing network this call's error (IsNotFound), naming it.
	if _, err := c.api.NetworkInspect(ctx, networkName, network.InspectOptions{}); err != nil {
		return fmt.Errorf("connect container %s to network %s: %w", containerID, networkName, err)
	}
	if err := c.api.NetworkConnect(ctx, networkName, containerID, &network.EndpointSettings{Aliases: aliases}); err != nil {
		return fmt.Errorf("connect container %s to network %s: %w", containerID, networkName, err)
	}
	return nil
}

// containerConfigs turns a spec into the three parts of the engine's create request. It fails only on a
// value the engine would refuse anyway (a device or restart policy it cannot read), so that the error names
// the option rather than coming back as the engine's.
func containerConfigs(spec ContainerSpec) (*container.Config, *container.HostConfig, *network.NetworkingConfig, error) {
	cfg := &container.Config{
		Image:      spec.Image,
		Hostname:   spec.Hostname,
		User:       spec.User,
		WorkingDir: spec.WorkingDir,
		StopSignal: spec.StopSignal,
		Labels:     spec.Labels,
		// nil keeps the image's; an empty Entrypoint clears it (the engine tells the two apart).
		Cmd:        spec.Cmd,
		Entrypoint: spec.Entrypoint,
	}
	if len(spec.Env) > 0 {
		cfg.Env = spec.Env
	}
	if h := spec.Health; h != nil {
		cfg.Healthcheck = &container.HealthConfig{Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, Retries: h.Retries}
	}
	if spec.StopTimeout > 0 {
		// Whole seconds, rounded up: a container never gets less time than it asked for.
		secs := int((spec.StopTimeout + time.Second - 1) / time.Second)
		cfg.StopTimeout = &secs
	}
	restart, err := restartPolicy(spec.RestartPolicy)
	if err != nil {
		return nil, nil, nil, err
	}
	hostCfg := &container.HostConfig{
		RestartPolicy:  restart,
		ReadonlyRootfs: spec.ReadOnly,
		// The client normalises capabilities (CAP_ prefix, upper case, sorted) before sending them; doing it
		// here too keeps CreateBody what the engine receives.
		CapAdd: normalizeCapabilities(spec.CapAdd),
		LogConfig: container.LogConfig{
			Type:   spec.LogDriver,
			Config: nonEmpty(spec.LogOptions),
		},
		Resources: container.Resources{
			Memory:   spec.Memory,
			NanoCPUs: spec.NanoCPUs,
		},
		Tmpfs:   nonEmpty(spec.Tmpfs),
		Sysctls: nonEmpty(spec.Sysctls),
	}
	if len(spec.Binds) > 0 {
		hostCfg.Binds = spec.Binds
	}
	if len(spec.ExtraHosts) > 0 {
		hostCfg.ExtraHosts = spec.ExtraHosts
	}
	if spec.PidsLimit != 0 {
		// nil leaves the engine's default; 0 and -1 would both mean unlimited to it.
		pids := spec.PidsLimit
		hostCfg.PidsLimit = &pids
	}
	for _, u := range spec.Ulimits {
		hostCfg.Ulimits = append(hostCfg.Ulimits, &container.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	for _, d := range spec.Devices {
		m, err := parseDevice(d)
		if err != nil {
			return nil, nil, nil, err
		}
		hostCfg.Devices = append(hostCfg.Devices, m)
	}
	if len(spec.Ports) > 0 {
		cfg.ExposedPorts = nat.PortSet{}
		hostCfg.PortBindings = nat.PortMap{}
		for _, p := range spec.Ports {
			port := nat.Port(strconv.Itoa(p.ContainerPort) + "/" + cmp.Or(p.Proto, "tcp"))
			cfg.ExposedPorts[port] = struct{}{}
			b := nat.PortBinding{HostIP: p.HostIP}
			if p.HostPort != 0 {
				b.HostPort = strconv.Itoa(p.HostPort)
			}
			// An empty HostIP binds every address, IPv4 and IPv6 alike.
			hostCfg.PortBindings[port] = append(hostCfg.PortBindings[port], b)
		}
	}
	var netCfg *network.NetworkingConfig
	if spec.Network != "" {
		// The network mode must name the network too, or the engine also attaches the default bridge.
		hostCfg.NetworkMode = container.NetworkMode(spec.Network)
		ep := &network.EndpointSettings{Aliases: spec.Aliases}
		if spec.IPv4Address != "" || spec.IPv6Address != "" {
			ep.IPAMConfig = &network.EndpointIPAMConfig{IPv4Address: spec.IPv4Address, IPv6Address: spec.IPv6Address}
		}
		netCfg = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{spec.Network: ep}}
	}
	return cfg, hostCfg, netCfg, nil
}

// restartPolicy reads "no", "always", "unless-stopped", "on-failure" or "on-failure:N" as docker run's
// --restart does; "" leaves the engine's default (no).
func restartPolicy(s string) (container.RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	if hasCount {
		n, err := strconv.Atoi(count)
		if err != nil || n < 0 || p.Name != container.RestartPolicyOnFailure {
			return p, fmt.Errorf("restart policy %q: only on-failure takes a retry count", s)
		}
		p.MaximumRetryCount = n
	}
	return p, nil
}

// parseDevice reads a docker run --device string, host[:container[:permissions]], as the docker CLI does:
// the container path defaults to the host path, permissions to rwm, and a second field made only of r, w
// and m is the permissions.
func parseDevice(s string) (container.DeviceMapping, error) {
	m := container.DeviceMapping{CgroupPermissions: "rwm"}
	parts := strings.Split(s, ":")
	switch len(parts) {
	case 3:
		if !deviceMode(parts[2]) {
			return m, fmt.Errorf("device %q: permissions %q are not a combination of r, w and m", s, parts[2])
		}
		m.CgroupPermissions = parts[2]
		m.PathInContainer = parts[1]
	case 2:
		if deviceMode(parts[1]) {
			m.CgroupPermissions = parts[1]
		} else {
			m.PathInContainer = parts[1]
		}
	case 1:
	default:
		return m, fmt.Errorf("device %q: want host[:container[:permissions]]", s)
	}
	m.PathOnHost = parts[0]
	if m.PathInContainer == "" {
		m.PathInContainer = m.PathOnHost
	}
	if !strings.HasPrefix(m.PathOnHost, "/") || !strings.HasPrefix(m.PathInContainer, "/") {
		return m, fmt.Errorf("device %q: paths must be absolute", s)
	}
	return m, nil
}

// deviceMode tells whether s is cgroup device permissions: r, w and m, each at most once.
func deviceMode(s string) bool {
	if s == "" {
		return false
	}
	seen := map[rune]bool{}
	for _, c := range s {
		if !strings.ContainsRune("rwm", c) || seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

// normalizeCapabilities writes capabilities as the Docker client sends them: upper case with the CAP_
// prefix (ALL as it is), without duplicates, sorted.
func normalizeCapabilities(caps []string) []string {
	var out []string
	for _, c := range caps {
		c = strings.ToUpper(c)
		if c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	slices.Sort(out)
	return out
}

func nonEmpty(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
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
	ctx, cancel, opts := stopping(ctx, timeout)
	defer cancel()
	if err := c.api.ContainerStop(ctx, id, opts); err != nil {
		return fmt.Errorf("stop container %s: %w", id, err)
	}
	return nil
}

// stopping is the context and options of a call that stops a container with a grace of timeout: the call
// itself must outlive the grace period, or the engine's kill would never be waited for.
func stopping(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc, container.StopOptions) {
	secs := int(timeout.Round(time.Second) / time.Second)
	ctx, cancel := context.WithTimeout(ctx, timeout+changeTimeout)
	return ctx, cancel, container.StopOptions{Timeout: &secs}
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
