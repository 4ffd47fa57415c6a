package dockerx

import (
	"io"
	"time"
)

// Endpoint says how to reach one Docker engine.
type Endpoint struct {
	// Host is a Docker host URL (unix://, tcp://, ssh://). Empty means DOCKER_HOST, else the local socket.
	Host string
	// TLS files for tcp:// with mutual TLS; nil for none.
	TLS *TLSFiles
	// Insecure allows tcp:// without TLS.
	Insecure bool
	// SSH options for ssh:// hosts; nil for the defaults.
	SSH *SSHFiles
	// ReadTimeout bounds long calls (builds, pulls, archives); short calls use their own timeouts.
	ReadTimeout time.Duration
}

// Equal tells whether two endpoints reach the same engine the same way.
func (e Endpoint) Equal(o Endpoint) bool {
	if (e.TLS == nil) != (o.TLS == nil) || (e.TLS != nil && *e.TLS != *o.TLS) {
		return false
	}
	if (e.SSH == nil) != (o.SSH == nil) || (e.SSH != nil && *e.SSH != *o.SSH) {
		return false
	}
	return e.Host == o.Host && e.Insecure == o.Insecure && e.ReadTimeout == o.ReadTimeout
}

// TLSFiles are absolute paths of PEM files.
type TLSFiles struct {
	CA, Cert, Key string
}

// SSHFiles are absolute paths of an ssh:// host's files; empty means the default.
type SSHFiles struct {
	// KnownHosts holds the accepted host keys; default ~/.ssh/known_hosts.
	KnownHosts string
	// Identity is a private key (not passphrase-protected) tried before the SSH agent's keys; default none.
	Identity string
}

// Container is what one list call tells about a container.
type Container struct {
	ID   string
	Name string // without the leading slash
	// Image is the reference the container was created from; ImageID its resolved id.
	Image   string
	ImageID string
	// State is Docker's: created, running, paused, restarting, removing, exited, dead.
	State  string
	Status string // human form, e.g. "Exited (1) 2 minutes ago"
	Labels map[string]string
	// Networks the container is attached to, by name.
	Networks []string
	Ports    []Port
	Mounts   []Mount
	Created  time.Time
}

// Running tells whether the container is up (running or restarting by itself).
func (c Container) Running() bool {
	return c.State == "running" || c.State == "restarting"
}

// Port is a published port.
type Port struct {
	HostIP        string
	HostPort      int
	ContainerPort int
	Proto         string
}

// Mount is a volume or bind mounted into a container.
type Mount struct {
	Type        string // volume, bind, tmpfs
	Name        string // volume name, for Type volume
	Source      string
	Destination string
	RW          bool
}

// Network is a Docker network.
type Network struct {
	ID     string
	Name   string
	Driver string
	Labels map[string]string
}

// Volume is a Docker named volume.
type Volume struct {
	Name   string
	Driver string
	Labels map[string]string
}

// Image is one local image with its tags.
type Image struct {
	ID     string
	Tags   []string
	Labels map[string]string
}

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
