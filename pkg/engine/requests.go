package engine

import (
	"io"
	"time"
)

// ContainerSpec is everything needed to create one container. Zero values leave the engine's (or the
// image's) defaults.
type ContainerSpec struct {
	Name  string
	Image string
	Env   []string // KEY=value
	// Cmd and Entrypoint replace the image's when not nil; an empty, non-nil Entrypoint clears the image's.
	Cmd        []string
	Entrypoint []string
	User       string // user[:group], names or ids
	WorkingDir string
	Hostname   string
	// Binds are Docker bind strings (src:dst[:opts]), passed as written.
	Binds []string
	// Ports are the published ports, one per host address.
	Ports []PortSpec
	// RestartPolicy: "no", "always", "unless-stopped", "on-failure" or "on-failure:<max retries>".
	RestartPolicy string
	// Network to attach to at create time, with Aliases on it and, when set, fixed addresses.
	Network     string
	Aliases     []string
	IPv4Address string
	IPv6Address string
	// MoreNetworks are connected after the container is created and before it starts, with the same
	// aliases (engines before API 1.44 take a single network at create).
	MoreNetworks []string
	// ExtraHosts are "host:ip" lines added to the container's /etc/hosts.
	ExtraHosts []string
	CapAdd     []string
	// Memory is a limit in bytes, NanoCPUs in billionths of a CPU, PidsLimit a number of processes.
	Memory    int64
	NanoCPUs  int64
	PidsLimit int64
	// StopSignal replaces the image's (SIGTERM by default); StopTimeout is how long the engine waits after
	// it before killing the container, in whole seconds (rounded up).
	StopSignal  string
	StopTimeout time.Duration
	// ReadOnly mounts the container's root filesystem read-only.
	ReadOnly bool
	// Tmpfs maps a container path to its mount options ("" for the defaults).
	Tmpfs   map[string]string
	Sysctls map[string]string
	Ulimits []Ulimit
	// Devices are docker run --device strings: host[:container[:permissions]].
	Devices []string
	// LogDriver and LogOptions choose where the container's output goes; "" is the engine's default.
	LogDriver  string
	LogOptions map[string]string
	Labels     map[string]string
	// Health replaces the image's health check when not nil.
	Health *HealthSpec
}

// HealthSpec is a container's health check as the engine takes it. Zero durations and retries leave the
// engine's defaults (30 s interval, 30 s timeout, no start period, 3 retries).
type HealthSpec struct {
	// Test is the engine's form: ["CMD", arg...], ["CMD-SHELL", line], ["NONE"] to disable the image's
	// check, or empty to keep the image's test with these timings.
	Test        []string
	Interval    time.Duration
	Timeout     time.Duration
	StartPeriod time.Duration
	Retries     int
}

// The engine's defaults for a health check's timings.
const (
	DefaultHealthInterval = 30 * time.Second
	DefaultHealthTimeout  = 30 * time.Second
	DefaultHealthRetries  = 3
)

// Disabled tells whether the spec turns the image's check off.
func (h *HealthSpec) Disabled() bool {
	return h != nil && len(h.Test) == 1 && h.Test[0] == "NONE"
}

// Effective returns the spec with the engine's defaults filled in.
func (h HealthSpec) Effective() HealthSpec {
	if h.Interval <= 0 {
		h.Interval = DefaultHealthInterval
	}
	if h.Timeout <= 0 {
		h.Timeout = DefaultHealthTimeout
	}
	if h.Retries <= 0 {
		h.Retries = DefaultHealthRetries
	}
	return h
}

// Verdict bounds how long the engine can take to call a container healthy or unhealthy after it starts:
// the start period, then the retries probes, one interval apart, plus one more interval and a probe's
// timeout for the probe under way at the edge.
func (h HealthSpec) Verdict() time.Duration {
	e := h.Effective()
	return e.StartPeriod + time.Duration(e.Retries+1)*e.Interval + e.Timeout
}

// PortSpec is one published port: ContainerPort/Proto reachable at HostIP:HostPort.
type PortSpec struct {
	// HostIP is one host address; "" binds every address, IPv4 and IPv6.
	HostIP string
	// HostPort 0 lets the engine choose a free port.
	HostPort      int
	ContainerPort int
	// Proto is "tcp" or "udp"; "" is tcp.
	Proto string
}

// Ulimit is one resource limit of the container's processes (nofile, nproc, core, ...).
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// BuildRequest builds one image from a directory on this machine.
type BuildRequest struct {
	// ContextDir is sent as a tar, honouring its .dockerignore.
	ContextDir string
	// Dockerfile is relative to ContextDir; empty means "Dockerfile".
	Dockerfile string
	Tags       []string
	Labels     map[string]string
	BuildArgs  map[string]*string
	NoCache    bool
	// Output receives the build's progress as text; nil discards it.
	Output io.Writer
}

// HelperSpec is a short-lived container that bee2d runs for its own work on a server (backups, restores):
// no network, no log, a read-only root, root with only the capabilities to read and restore any file.
type HelperSpec struct {
	Name   string
	Image  string
	Cmd    []string
	Mounts []HelperMount
	Labels map[string]string
	// Stdin keeps the container's stdin open for RunHelper to write to.
	Stdin bool
}

// HelperMount is a named volume (Volume true) or a directory of the engine's host mounted into a helper.
type HelperMount struct {
	Volume   bool
	Source   string // volume name, or host path
	Target   string
	ReadOnly bool
}

// ProbeSpec is a short-lived container that bee2d runs in the network namespace of another container, to
// look at it from inside (e.g. the certificate a TLS server serves on 127.0.0.1) without any tool in that
// container's image. It has no capabilities, a read-only root and no log of its own; RunHelper runs it.
type ProbeSpec struct {
	Name   string
	Image  string
	Cmd    []string
	Labels map[string]string
	// NetworkOf is the id of the container whose network namespace the probe joins.
	NetworkOf string
}
