package dockerx

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/pkg/stdcopy"
)

// helperCaps are what a helper needs to read every file of a volume and to restore owners, modes and times.
var helperCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID"}

// CreateHelper creates (but does not start) the helper container spec describes and returns its id. Its log
// driver is "none": whatever it writes to stdout goes only to the attached client, not also into the engine's
// log file, which would cost a second copy of every byte.
func (c *Client) CreateHelper(ctx context.Context, spec HelperSpec) (string, error) {
	cfg := &container.Config{
		Image:           spec.Image,
		Cmd:             spec.Cmd,
		Labels:          spec.Labels,
		AttachStdout:    true,
		AttachStderr:    true,
		AttachStdin:     spec.Stdin,
		OpenStdin:       spec.Stdin,
		StdinOnce:       spec.Stdin,
		NetworkDisabled: true,
	}
	hostCfg := &container.HostConfig{
		LogConfig:      container.LogConfig{Type: "none"},
		NetworkMode:    "none",
		ReadonlyRootfs: true,
		CapDrop:        []string{"ALL"},
		CapAdd:         helperCaps,
		SecurityOpt:    []string{"no-new-privileges"},
	}
	for _, m := range spec.Mounts {
		mt := mount.Mount{Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.Volume {
			// NoCopy: a new volume must not be filled from the image (which has nothing there anyway).
			mt.Type, mt.VolumeOptions = mount.TypeVolume, &mount.VolumeOptions{NoCopy: true}
		}
		hostCfg.Mounts = append(hostCfg.Mounts, mt)
	}
	ctx, cancel := short(ctx)
	defer cancel()
	resp, err := c.api.ContainerCreate(ctx, cfg, hostCfg, nil, nil, spec.Name)
	if err != nil {
		return "", fmt.Errorf("create helper %s: %w", spec.Name, err)
	}
	if resp.ID == "" {
		return "", fmt.Errorf("create helper %s: %w", spec.Name, errNoID)
	}
	return resp.ID, nil
}

// RunHelper attaches to a created helper, starts it, feeds it stdin (when not nil, then closes it) and copies
// its stdout and stderr until it exits; it returns the exit code. Only ctx bounds the run: a backup takes as
// long as its data does. When ctx ends or writing stdout fails, the connection is closed and the error
// returned; the caller removes the container, which kills it.
func (c *Client) RunHelper(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	attachCtx, attachCancel := short(ctx)
	resp, err := c.api.ContainerAttach(attachCtx, id, container.AttachOptions{
		Stream: true, Stdin: stdin != nil, Stdout: true, Stderr: true,
	})
	attachCancel()
	if err != nil {
		return -1, fmt.Errorf("attach helper %s: %w", shortName(id), err)
	}
	defer resp.Close()
	stopClose := context.AfterFunc(ctx, resp.Close)
	defer stopClose()

	// Armed before the start, so that a helper that exits at once is not missed.
	waitC, waitErrC := c.api.ContainerWait(ctx, id, container.WaitConditionNextExit)
	if err := c.StartContainer(ctx, id); err != nil {
		return -1, err
	}

	var wg sync.WaitGroup
	var inErr error
	if stdin != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, inErr = io.Copy(resp.Conn, stdin); inErr == nil {
				inErr = resp.CloseWrite()
			}
		}()
	}
	_, outErr := stdcopy.StdCopy(stdout, stderr, resp.Reader)
	// The output ends when the helper exits, or when our side failed (a full disk): either way nothing more
	// is to be sent, and a write still pending must fail rather than hang.
	resp.Close()
	wg.Wait()
	if parent.Err() != nil {
		return -1, fmt.Errorf("helper %s: %w", shortName(id), parent.Err())
	}
	if outErr != nil {
		return -1, fmt.Errorf("read helper %s output: %w", shortName(id), outErr)
	}
	var code int
	select {
	case res := <-waitC:
		if res.Error != nil && res.Error.Message != "" {
			return int(res.StatusCode), fmt.Errorf("wait for helper %s: %s", shortName(id), res.Error.Message)
		}
		code = int(res.StatusCode)
	case err := <-waitErrC:
		return -1, fmt.Errorf("wait for helper %s: %w", shortName(id), err)
	}
	// A helper that gave up early stops reading its input; its exit code and message say why.
	if inErr != nil && code == 0 {
		return -1, fmt.Errorf("send to helper %s: %w", shortName(id), inErr)
	}
	return code, nil
}

// Platform asks the engine what it runs on, to tell whether a helper binary can run there.
func (c *Client) Platform(ctx context.Context) (Platform, error) {
	ctx, cancel := short(ctx)
	defer cancel()
	v, err := c.api.ServerVersion(ctx)
	if err != nil {
		return Platform{}, fmt.Errorf("engine version: %w", err)
	}
	return Platform{OS: v.Os, Arch: v.Arch}, nil
}

// BuildImageFromTar builds an image from a build context given as a tar stream (req.ContextDir is ignored),
// for images bee2d makes itself from a few files it holds, such as its helper.
func (c *Client) BuildImageFromTar(ctx context.Context, context io.Reader, req BuildRequest) (string, error) {
	what := "image"
	if len(req.Tags) > 0 {
		what = req.Tags[0]
	}
	dockerfile := req.Dockerfile
	if dockerfile == "" {
		dockerfile = defaultDockerfile
	}
	out := req.Output
	if out == nil {
		out = io.Discard
	}
	ctx, cancel := c.long(ctx)
	defer cancel()
	id, err := c.runBuild(ctx, context, req, dockerfile, out)
	if err != nil {
		return "", fmt.Errorf("build image %s: %w", what, err)
	}
	return id, nil
}
