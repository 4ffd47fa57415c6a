package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// Method is how a backup's data leaves the server.
type Method string

// The methods, fastest first. Auto picks the first that works.
const (
	MethodAuto Method = ""
	// MethodBind: the helper writes the archive straight into the storage directory, bind-mounted; only when
	// the engine runs on this machine.
	MethodBind Method = "helper-bind"
	// MethodStream: the helper sends the archive through the attach stream.
	MethodStream Method = "helper-stream"
	// MethodArchive: the engine's archive endpoint reads the volumes of a created container; for servers
	// where the helper cannot run. Restores need the helper.
	MethodArchive Method = "archive-endpoint"
)

// Progress is how far a backup or restore is.
type Progress struct {
	Server string
	// Bytes of file content and Files read (backup) or written (restore) so far.
	Bytes, Files int64
	Elapsed      time.Duration
}

// Options tune a backup or restore; the zero value works.
type Options struct {
	// Version is bee2d's, recorded in manifests.
	Version string
	// Helper is a static bee2d binary for the server's platform; empty means this program's own executable.
	Helper string
	// Method forces a data path (benchmarks, tests); MethodAuto picks.
	Method Method
	Log    *zap.Logger
	// Progress, when set, is called about once a second during the data transfer.
	Progress func(Progress)
	// BuildOutput receives the helper image's build output; nil discards it.
	BuildOutput io.Writer
	// StopTimeout is what an application gets to stop before it is killed (default 10s).
	StopTimeout time.Duration
	// Now is the clock (default time.Now); Location the time zone of retention's days, weeks and months
	// (default the local one).
	Now      func() time.Time
	Location *time.Location
}

func (o *Options) log() *zap.Logger {
	if o.Log == nil {
		return zap.NewNop()
	}
	return o.Log
}

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Options) stopTimeout() time.Duration {
	if o.StopTimeout > 0 {
		return o.StopTimeout
	}
	return 10 * time.Second
}

func (o *Options) location() *time.Location {
	if o.Location != nil {
		return o.Location
	}
	return time.Local
}

// helperEvents reads the helper's stderr: JSON events, and any other text (a crash) kept for the error.
type helperEvents struct {
	progress func(bytes, files int64)

	mu     sync.Mutex
	buf    []byte
	result *helperResult
	errMsg string
	other  bytes.Buffer
}

func (h *helperEvents) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf = append(h.buf, p...)
	for {
		i := bytes.IndexByte(h.buf, '\n')
		if i < 0 {
			break
		}
		h.line(h.buf[:i])
		h.buf = h.buf[i+1:]
	}
	return len(p), nil
}

func (h *helperEvents) line(l []byte) {
	var ev event
	if json.Unmarshal(l, &ev) != nil || ev.Event == "" {
		if h.other.Len() < 16<<10 {
			h.other.Write(l)
			h.other.WriteByte('\n')
		}
		return
	}
	switch ev.Event {
	case "progress":
		if h.progress != nil {
			h.progress(ev.Bytes, ev.Files)
		}
	case "result":
		h.result = ev.Result
	case "error":
		h.errMsg = ev.Error
	}
}

// failure explains a helper that exited with code.
func (h *helperEvents) failure(what string, code int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.buf) > 0 {
		h.line(h.buf)
		h.buf = nil
	}
	msg := h.errMsg
	if msg == "" {
		msg = strings.TrimSpace(h.other.String())
	}
	if msg == "" {
		msg = "no message"
	}
	return fmt.Errorf("%s helper exited with code %d: %s", what, code, msg)
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

// stopped is what a run stopped and must start again.
type stopped struct {
	containers []dockerx.Container
}

func (s *stopped) names() []string {
	var out []string
	for _, c := range s.containers {
		out = append(out, c.Name)
	}
	return out
}

// stopAll stops the given running containers, in order. If one fails, those stopped are started again.
func stopAll(ctx context.Context, eng Engine, cs []dockerx.Container, timeout time.Duration, log *zap.Logger) (*stopped, error) {
	st := &stopped{}
	for _, c := range cs {
		log.Info("stopping", zap.String("name", c.Name))
		if err := eng.StopContainer(ctx, c.ID, timeout); err != nil {
			return st, errors.Join(err, st.start(ctx, eng, log))
		}
		st.containers = append(st.containers, c)
	}
	return st, nil
}

// start starts what was stopped, in reverse order, also after ctx ended (within cleanupTimeout).
func (s *stopped) start(ctx context.Context, eng Engine, log *zap.Logger) error {
	if s == nil || len(s.containers) == 0 {
		return nil
	}
	ctx, cancel := cleanupContext(ctx)
	defer cancel()
	var errs []error
	for i := len(s.containers) - 1; i >= 0; i-- {
		c := s.containers[i]
		log.Info("starting again", zap.String("name", c.Name))
		if err := eng.StartContainer(ctx, c.ID); err != nil {
			errs = append(errs, err)
		}
	}
	s.containers = nil
	return errors.Join(errs...)
}

// appContainers finds the running containers of the named applications of the server.
func appContainers(list []dockerx.Container, prefix, server string, apps []string) []dockerx.Container {
	var out []dockerx.Container
	for _, app := range apps {
		name := config.ContainerName(prefix, config.KindApp, app)
		for _, c := range list {
			if c.Name == name && c.Running() && ownedBy(c, prefix, server) {
				out = append(out, c)
			}
		}
	}
	return out
}
