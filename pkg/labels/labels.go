// Package labels names the labels bee2d puts on what it creates, and decides ownership by them: the
// planner, the executor, backups and the daemon runtime all read them from here.
package labels

// Labels on every container, network, volume and image bee2d creates. Ownership is decided by them
// alone: a container without Owner=Bee2d and the settings' prefix and server is never touched.
const (
	Owner      = "io.bee2d.owner"
	Prefix     = "io.bee2d.prefix"
	Server     = "io.bee2d.server"
	Kind       = "io.bee2d.kind"
	Name       = "io.bee2d.name"
	SpecHash   = "io.bee2d.spec-hash"
	HashScheme = "io.bee2d.hash-scheme"
	// SpecDigest holds per-field digests of the spec, so a plan can say what changed from one list call.
	SpecDigest = "io.bee2d.spec-digest"
	// Commit, on a container built from a git source, is the commit it was built from.
	Commit = "io.bee2d.commit"
	// Networks, on a container, is a digest of its server's networks in the settings when it was created:
	// a pass that remembers nothing lists the networks only when a container's differs. It is not part of
	// the spec hash.
	Networks = "io.bee2d.networks"

	// Images bee2d builds carry these instead of the ownership labels, which containers would inherit.
	BuiltBy  = "io.bee2d.built-by"
	BuiltFor = "io.bee2d.built-for" // <server>/<service>

	// StoppedFor, on a backup or restore helper, lists the containers it stopped (comma-separated):
	// passes leave them stopped while the helper exists.
	StoppedFor = "io.bee2d.stopped-for"

	// Probe marks the containers and images of the reload task's probes with what they look at.
	Probe = "io.bee2d.probe"

	// Bee2d is the value of Owner and BuiltBy.
	Bee2d = "bee2d"
)

// KindHelper is the Kind of backup and restore helpers; applications and jobs carry their config.Kind.
const KindHelper = "helper"

// ForServer returns the labels that mark a resource of one server as bee2d's.
func ForServer(prefix, server string) map[string]string {
	return map[string]string{Owner: Bee2d, Prefix: prefix, Server: server}
}

// OnServer tells whether labels mark a resource as bee2d's for this prefix and server: a managed
// container, a helper, a network or a volume.
func OnServer(l map[string]string, prefix, server string) bool {
	return l[Owner] == Bee2d && l[Prefix] == prefix && l[Server] == server
}

// Managed tells whether labels mark a container as an application or job bee2d created for this prefix
// and server. The spec hash is required too: bee2d sets it only on containers, never on images, so
// nothing inherits it.
func Managed(l map[string]string, prefix, server string) bool {
	return OnServer(l, prefix, server) && l[SpecHash] != ""
}
