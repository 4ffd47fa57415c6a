package backup

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// Engine is what backups and restores need of a server's Docker engine; *dockerx.Client is one.
type Engine interface {
	Host() string
	Platform(ctx context.Context) (dockerx.Platform, error)
	ListContainers(ctx context.Context) ([]dockerx.Container, error)
	ListVolumes(ctx context.Context) ([]dockerx.Volume, error)
	ListImages(ctx context.Context) ([]dockerx.Image, error)
	CreateVolume(ctx context.Context, name string, labels map[string]string) error
	ImageExists(ctx context.Context, ref string) (bool, error)
	BuildImageFromTar(ctx context.Context, context io.Reader, req dockerx.BuildRequest) (string, error)
	RemoveImage(ctx context.Context, ref string) error
	CreateHelper(ctx context.Context, spec dockerx.HelperSpec) (string, error)
	RunHelper(ctx context.Context, id string, stdin io.Reader, stdout, stderr io.Writer) (int, error)
	CopyFromContainer(ctx context.Context, id, path string) (io.ReadCloser, error)
	StopContainer(ctx context.Context, id string, timeout time.Duration) error
	StartContainer(ctx context.Context, id string) error
	RemoveContainer(ctx context.Context, id string) error
}

// HelperName is the container name of a server's backup or restore helper: <prefix>-helper-<task>-<server>.
func HelperName(prefix, task, server string) string {
	return prefix + "-helper-" + task + "-" + server
}

func helperLabels(prefix, server, task string, stopped []string) map[string]string {
	l := labels.ForServer(prefix, server)
	l[labels.Kind] = labels.KindHelper
	l[labels.Name] = task
	if len(stopped) > 0 {
		l[labels.StoppedFor] = strings.Join(stopped, ",")
	}
	return l
}

// cleanupTimeout bounds the calls that put things back (remove a helper, start stopped applications) after
// the run's own context has ended.
const cleanupTimeout = 2 * time.Minute

// cleanupContext outlives ctx's cancellation, within cleanupTimeout.
func cleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
}

// removeLeftoverHelper removes a helper container of that name that an interrupted run left behind (Bee2's
// backups stayed blocked by one). A container of that name that bee2d did not make is an error: it is never
// touched.
func removeLeftoverHelper(ctx context.Context, eng Engine, prefix, server, name string) (bool, error) {
	list, err := eng.ListContainers(ctx)
	if err != nil {
		return false, err
	}
	for _, c := range list {
		if c.Name != name {
			continue
		}
		if !labels.OnServer(c.Labels, prefix, server) || c.Labels[labels.Kind] != labels.KindHelper {
			return false, fmt.Errorf("a container named %s exists that bee2d did not create; it is left alone: remove or rename it", name)
		}
		if err := eng.RemoveContainer(ctx, c.ID); err != nil && !dockerx.IsNotFound(err) {
			return false, err
		}
		return true, nil
	}
	return false, nil
}

// runningUsers returns the running containers that mount any of vols, as bee2d's own (of this prefix and
// server, applications and jobs) and others.
func runningUsers(list []dockerx.Container, prefix, server string, vols []string) (own, foreign []dockerx.Container) {
	for _, c := range list {
		if !c.Running() || c.Labels[labels.Kind] == labels.KindHelper {
			continue
		}
		uses := slices.ContainsFunc(c.Mounts, func(m dockerx.Mount) bool {
			return m.Type == "volume" && slices.Contains(vols, m.Name)
		})
		if !uses {
			continue
		}
		if labels.OnServer(c.Labels, prefix, server) && (c.Labels[labels.Kind] == string(config.KindApp) || c.Labels[labels.Kind] == string(config.KindJob)) {
			own = append(own, c)
		} else {
			foreign = append(foreign, c)
		}
	}
	return own, foreign
}

// localEngine tells whether the engine may share this machine's file system: only a unix socket can (and
// even then the helper checks, with a probe file, that it sees the storage directory bee2d does).
func localEngine(host string) bool {
	return strings.HasPrefix(host, "unix://")
}

// volumeMounts mounts each volume at /volumes/<name>.
func volumeMounts(vols []string, readOnly bool) []dockerx.HelperMount {
	out := make([]dockerx.HelperMount, len(vols))
	for i, v := range vols {
		out[i] = dockerx.HelperMount{Volume: true, Source: v, Target: containerVolumes + "/" + v, ReadOnly: readOnly}
	}
	return out
}

// missingVolumes returns those of vols the server does not have.
func missingVolumes(ctx context.Context, eng Engine, vols []string) ([]string, error) {
	list, err := eng.ListVolumes(ctx)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, v := range list {
		have[v.Name] = true
	}
	var missing []string
	for _, v := range vols {
		if !have[v] {
			missing = append(missing, v)
		}
	}
	return missing, nil
}
