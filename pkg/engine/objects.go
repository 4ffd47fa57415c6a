package engine

import (
	"regexp"
	"strconv"
	"time"
)

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
	// Health is the engine's verdict on a running container with a health check: starting, healthy or
	// unhealthy; "" when it has no check or does not run.
	Health string
	// Finished is when the container last stopped; only filled where a caller asked for it (an inspect).
	Finished time.Time
}

// The health states of a container with a health check.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

var healthStatus = regexp.MustCompile(`\((healthy|unhealthy|health: starting)\)$`)

// HealthFromStatus reads the health of a running container from its list status ("Up 3 minutes
// (healthy)"); "" when it has no check.
func HealthFromStatus(status string) string {
	m := healthStatus.FindStringSubmatch(status)
	if m == nil {
		return ""
	}
	if m[1] == "health: starting" {
		return HealthStarting
	}
	return m[1]
}

// Ready tells whether the container runs and its health check, if it has one, passed.
func (c Container) Ready() bool {
	return c.Running() && (c.Health == "" || c.Health == HealthHealthy)
}

// Health is what an inspect tells of a container's health.
type Health struct {
	// Status is starting, healthy or unhealthy; "" when the container has no health check.
	Status  string
	Running bool
	// ExitCode is the container's when it does not run.
	ExitCode int
	// Check is the health check in force (the container's own or its image's), with the engine's defaults
	// filled in; zero when there is none.
	Check HealthSpec
	// Output is the last probe's output, trimmed, for the reason of a failure.
	Output string
}

// Running tells whether the container is up (running or restarting by itself).
func (c Container) Running() bool {
	return c.State == "running" || c.State == "restarting"
}

var exitedStatus = regexp.MustCompile(`^Exited \((-?\d+)\)`)

// ExitCode reads the exit code of an exited container from its list status ("Exited (1) 2 minutes ago").
func (c Container) ExitCode() (int, bool) {
	if c.State != "exited" {
		return 0, false
	}
	m := exitedStatus.FindStringSubmatch(c.Status)
	if m == nil {
		return 0, false
	}
	code, err := strconv.Atoi(m[1])
	return code, err == nil
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
	// EnableIPv6, Subnets (the IPAM configuration, in the engine's order: IPv4 first) and Options are the
	// settings it was created with; a network cannot be changed, only removed and created again.
	EnableIPv6 bool
	Subnets    []string
	Options    map[string]string
	// Containers are the names of the containers with an endpoint on it (running ones), sorted. Only an
	// inspect fills it: a list call leaves it nil.
	Containers []string
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

// Event is one container event.
type Event struct {
	// Action is Docker's: die, stop, kill, destroy, oom, start, health_status: unhealthy, ...
	Action string
	ID     string
	// Name is the container's name, without the leading slash.
	Name   string
	Labels map[string]string
	Time   time.Time
}

// Platform is the operating system and CPU architecture of an engine, in Go's terms (linux, amd64).
type Platform struct {
	OS, Arch string
}
