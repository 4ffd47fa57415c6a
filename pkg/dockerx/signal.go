package dockerx

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"
)

// SignalContainer sends a signal (SIGHUP, HUP, 1) to a running container's main process, as `docker kill -s`
// does. The container keeps running unless the signal stops it.
func (c *Client) SignalContainer(ctx context.Context, id, signal string) error {
	ctx, cancel := short(ctx)
	defer cancel()
	if err := c.api.ContainerKill(ctx, id, signal); err != nil {
		return fmt.Errorf("signal %s to container %s: %w", signal, shortName(id), err)
	}
	return nil
}

// ExecResult is what a command run in a container printed and how it ended.
type ExecResult struct {
	ExitCode       int
	Stdout, Stderr string
}

// maxExecOutput bounds what Exec keeps of each stream.
const maxExecOutput = 1 << 20

// Exec runs cmd in a running container, as `docker exec` does, and waits for it to end. Its output is kept
// up to 1 MiB per stream. Only ctx bounds the run.
func (c *Client) Exec(ctx context.Context, id string, cmd []string) (ExecResult, error) {
	created, err := c.api.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec %s in container %s: %w", cmd[0], shortName(id), err)
	}
	resp, err := c.api.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec %s in container %s: %w", cmd[0], shortName(id), err)
	}
	defer resp.Close()
	stop := context.AfterFunc(ctx, resp.Close)
	defer stop()
	var stdout, stderr strings.Builder
	_, err = stdcopy.StdCopy(&limitedWriter{w: &stdout, n: maxExecOutput}, &limitedWriter{w: &stderr, n: maxExecOutput}, resp.Reader)
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec %s in container %s: %w", cmd[0], shortName(id), err)
	}
	ictx, cancel := short(ctx)
	defer cancel()
	info, err := c.api.ContainerExecInspect(ictx, created.ID)
	if err != nil {
		return ExecResult{}, fmt.Errorf("exec %s in container %s: %w", cmd[0], shortName(id), err)
	}
	return ExecResult{ExitCode: info.ExitCode, Stdout: stdout.String(), Stderr: stderr.String()}, nil
}

// limitedWriter keeps the first n bytes written to it and drops the rest without failing the copy.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// NetworkGateways returns the gateway addresses of a network (IPv4 first, as the engine lists them): the
// host's address on it, which its containers reach the host by.
func (c *Client) NetworkGateways(ctx context.Context, name string) ([]string, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	n, err := c.api.NetworkInspect(ctx, name, network.InspectOptions{})
	if err != nil {
		return nil, fmt.Errorf("inspect network %s: %w", name, err)
	}
	var out []string
	for _, cfg := range n.IPAM.Config {
		if cfg.Gateway != "" {
			out = append(out, cfg.Gateway)
		}
	}
	return out, nil
}

// CreateProbe creates (but does not start) the probe spec describes and returns its id.
func (c *Client) CreateProbe(ctx context.Context, spec ProbeSpec) (string, error) {
	cfg := &container.Config{
		Image:        spec.Image,
		Cmd:          spec.Cmd,
		Labels:       spec.Labels,
		AttachStdout: true,
		AttachStderr: true,
	}
	hostCfg := &container.HostConfig{
		NetworkMode:    container.NetworkMode("container:" + spec.NetworkOf),
		LogConfig:      container.LogConfig{Type: "none"},
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		SecurityOpt:    []string{"no-new-privileges"},
	}
	ctx, cancel := short(ctx)
	defer cancel()
	resp, err := c.api.ContainerCreate(ctx, cfg, hostCfg, nil, nil, spec.Name)
	if err != nil {
		return "", fmt.Errorf("create probe %s: %w", spec.Name, err)
	}
	if resp.ID == "" {
		return "", fmt.Errorf("create probe %s: %w", spec.Name, errNoID)
	}
	return resp.ID, nil
}

// ImportImage makes an image tagged ref from a root file system given as a tar stream, as `docker import`
// does (e.g. a Debian tree made by debootstrap, for tests that cannot pull). Only ctx bounds it.
func (c *Client) ImportImage(ctx context.Context, rootfs io.Reader, ref string) error {
	rc, err := c.api.ImageImport(ctx, image.ImportSource{Source: rootfs, SourceName: "-"}, ref, image.ImportOptions{})
	if err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	defer rc.Close()
	if err := decodeMessages(rc, func(m message) error {
		if msg := m.errorText(); msg != "" {
			return fmt.Errorf("%s", msg)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("import image %s: %w", ref, err)
	}
	return nil
}
