package reload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/dockerx/selfimage"
	"github.com/bee2d/bee2d/pkg/labels"
)

// Client is what the task needs of a server's engine; *dockerx.Client is one.
type Client interface {
	CopyFromContainer(ctx context.Context, id, path string) (io.ReadCloser, error)
	SignalContainer(ctx context.Context, id, signal string) error
	Platform(ctx context.Context) (dockerx.Platform, error)
	ListImages(ctx context.Context) ([]dockerx.Image, error)
	BuildImageFromTar(ctx context.Context, context io.Reader, req dockerx.BuildRequest) (string, error)
	CreateProbe(ctx context.Context, spec dockerx.ProbeSpec) (string, error)
	RunHelper(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
	RemoveContainer(ctx context.Context, id string) error
}

// Prober looks at what a container serves from inside its network namespace: a probe container runs
// bee2d's own binary (ProbeMain), so the application's image needs no tool and the server's port need not
// be reachable from the admin box. The image, FROM scratch with the binary, is built once per server and
// binary, never pulled; this needs bee2d to be a static binary for the server's platform (make build).
type Prober struct {
	// Prefix names the probe image <prefix>/bee2d-probe:<digest> and containers <prefix>-probe-<app>.
	Prefix string
	// Binary is bee2d's executable; this very program when empty (see selfimage.Find).
	Binary string

	mu     sync.Mutex
	images map[Client]string // probe image per engine
}

// Ops returns the operations of one pass on eng.
func (p *Prober) Ops(eng Client) Ops {
	return Ops{
		Files: func(ctx context.Context, id, dir string) (Files, error) {
			rc, err := eng.CopyFromContainer(ctx, id, dir)
			if err != nil {
				return Files{}, err
			}
			defer rc.Close()
			f, err := readFiles(rc)
			if err != nil {
				return Files{}, fmt.Errorf("read %s of container %s: %w", dir, shortID(id), err)
			}
			return f, nil
		},
		Signal: eng.SignalContainer,
		Verify: func(ctx context.Context, id string, port int, want map[string]string, timeout time.Duration) (map[string]string, error) {
			return p.verify(ctx, eng, id, port, want, timeout)
		},
	}
}

func (p *Prober) verify(ctx context.Context, eng Client, id string, port int, want map[string]string, timeout time.Duration) (map[string]string, error) {
	img, err := p.image(ctx, eng)
	if err != nil {
		return nil, err
	}
	cmd := []string{ProbeCommand, hostPort(port), strconv.Itoa(int(timeout / time.Second))}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		cmd = append(cmd, name+"="+want[name])
	}
	name := p.Prefix + "-probe-" + shortID(id)
	spec := dockerx.ProbeSpec{Name: name, Image: img, Cmd: cmd, NetworkOf: id, Labels: map[string]string{labels.Probe: id}}
	pid, err := eng.CreateProbe(ctx, spec)
	if dockerx.IsConflict(err) {
		// Left over by a bee2d that stopped during a probe: it is ours by its name and label.
		_ = eng.RemoveContainer(ctx, name)
		pid, err = eng.CreateProbe(ctx, spec)
	}
	if err != nil {
		return nil, err
	}
	defer eng.RemoveContainer(context.WithoutCancel(ctx), pid)
	var out, errOut bytes.Buffer
	code, err := eng.RunHelper(ctx, pid, nil, &out, &errOut)
	if err != nil {
		return nil, err
	}
	if code != 0 && code != 1 {
		return nil, fmt.Errorf("probe exited %d: %s", code, strings.TrimSpace(errOut.String()))
	}
	return parseProbe(out.String()), nil
}

// image returns the probe image on eng, building it when missing.
func (p *Prober) image(ctx context.Context, eng Client) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if img, ok := p.images[eng]; ok {
		return img, nil
	}
	bin, err := selfimage.Find(p.Binary)
	if err != nil {
		return "", err
	}
	plat, err := eng.Platform(ctx)
	if err != nil {
		return "", err
	}
	shown := bin
	if bin == selfimage.ProcSelf {
		shown = "this bee2d"
	}
	b, err := selfimage.Inspect(bin)
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		return "", err // unreadable, not unfit
	}
	if err != nil {
		return "", fmt.Errorf("no probe: %s is not a Linux executable", shown)
	}
	switch b.Fit(plat) {
	case selfimage.OtherOS, selfimage.OtherArch:
		return "", fmt.Errorf("no probe: %s is built for linux/%s, the server is %s/%s", shown, b.Arch, plat.OS, plat.Arch)
	case selfimage.Dynamic:
		return "", fmt.Errorf("no probe: %s is linked dynamically (build it with CGO_ENABLED=0, as make build does)", shown)
	}
	digest, err := selfimage.Digest(bin)
	if err != nil {
		return "", err
	}
	tag := strings.ToLower(p.Prefix) + "/bee2d-probe:" + digest[:12]
	if _, err := selfimage.Ensure(ctx, eng, selfimage.Image{Tag: tag, Binary: bin, Labels: map[string]string{labels.Probe: "tls"}}); err != nil {
		return "", err
	}
	p.remember(eng, tag)
	return tag, nil
}

func (p *Prober) remember(eng Client, tag string) {
	if p.images == nil {
		p.images = map[Client]string{}
	}
	p.images[eng] = tag
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
