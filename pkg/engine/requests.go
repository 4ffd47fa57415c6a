package engine

import "io"

// ContainerSpec is everything needed to create one container.
type ContainerSpec struct {
	Name  string
	Image string
	Env   []string // KEY=value
	Cmd   []string // empty: the image's default
	// Binds are Docker bind strings (src:dst[:opts]), passed as written.
	Binds []string
	// Ports are published as TCP with host port = container port on all addresses, IPv4 and IPv6.
	Ports []int
	// RestartPolicy: "no", "always", "unless-stopped", "on-failure".
	RestartPolicy string
	// Network to attach to at create time, with Aliases on it.
	Network string
	Aliases []string
	Labels  map[string]string
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
