package reconcile

// Labels on every container, network, volume and image bee2d creates. Ownership is decided by them
// alone: a container without LabelOwner=Owner and the settings' prefix and server is never touched.
const (
	LabelOwner      = "io.bee2d.owner"
	LabelPrefix     = "io.bee2d.prefix"
	LabelServer     = "io.bee2d.server"
	LabelKind       = "io.bee2d.kind"
	LabelName       = "io.bee2d.name"
	LabelSpecHash   = "io.bee2d.spec-hash"
	LabelHashScheme = "io.bee2d.hash-scheme"
	// LabelSpecDigest holds per-field digests of the spec, so a plan can say what changed from one list call.
	LabelSpecDigest = "io.bee2d.spec-digest"

	// Images bee2d builds carry these instead of the ownership labels, which containers would inherit.
	LabelBuiltBy  = "io.bee2d.built-by"
	LabelBuiltFor = "io.bee2d.built-for" // <server>/<service>

	// LabelStoppedFor, on a backup or restore helper, lists the containers it stopped (comma-separated):
	// passes leave them stopped while the helper exists.
	LabelStoppedFor = "io.bee2d.stopped-for"

	// Owner is the value of LabelOwner.
	Owner = "bee2d"
)

// ownerLabels are the labels that mark a resource of one server as bee2d's.
func ownerLabels(prefix, server string) map[string]string {
	return map[string]string{
		LabelOwner:  Owner,
		LabelPrefix: prefix,
		LabelServer: server,
	}
}

// owned tells whether labels mark a container as created by bee2d for this prefix and server. The spec
// hash is required too: bee2d sets it only on containers, never on images, so nothing inherits it.
func owned(labels map[string]string, prefix, server string) bool {
	return labels[LabelOwner] == Owner && labels[LabelPrefix] == prefix && labels[LabelServer] == server &&
		labels[LabelSpecHash] != ""
}
