package backup

import (
	"io"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
	"go.uber.org/zap"
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
	// StopTimeout is what an application gets to stop before it is killed (default config.StopTimeout).
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
	return config.StopTimeout
}

func (o *Options) location() *time.Location {
	if o.Location != nil {
		return o.Location
	}
	return time.Local
}
