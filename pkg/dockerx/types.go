package dockerx

import "github.com/bee2d/bee2d/pkg/engine"

// The plain values of the engine's objects and of bee2d's requests live in pkg/engine, which the planner
// imports without the Docker SDK. These aliases and forwarders keep their dockerx names for the callers that
// already talk to the Client; dockerx.Container and engine.Container are the same type, so either name works
// everywhere.
type (
	Endpoint      = engine.Endpoint
	TLSFiles      = engine.TLSFiles
	SSHFiles      = engine.SSHFiles
	Container     = engine.Container
	Port          = engine.Port
	Mount         = engine.Mount
	Network       = engine.Network
	NetworkSpec   = engine.NetworkSpec
	Volume        = engine.Volume
	Image         = engine.Image
	Event         = engine.Event
	Platform      = engine.Platform
	ContainerSpec = engine.ContainerSpec
	PortSpec      = engine.PortSpec
	Ulimit        = engine.Ulimit
	BuildRequest  = engine.BuildRequest
	HelperSpec    = engine.HelperSpec
	HelperMount   = engine.HelperMount
	ProbeSpec     = engine.ProbeSpec
)

// IsNotFound is engine.IsNotFound.
func IsNotFound(err error) bool { return engine.IsNotFound(err) }

// IsConflict is engine.IsConflict.
func IsConflict(err error) bool { return engine.IsConflict(err) }
