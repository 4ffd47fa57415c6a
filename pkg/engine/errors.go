package engine

import cerrdefs "github.com/containerd/errdefs"

// The engine's errors are classified by containerd's error definitions, which the Docker client's errors
// implement; that module is not the Docker SDK and imports nothing.

// IsNotFound tells whether err says the container, network, volume or image does not exist; removing something
// missing can then count as done.
func IsNotFound(err error) bool {
	return cerrdefs.IsNotFound(err)
}

// IsConflict tells whether err says the thing already exists or is in use, e.g. a network created twice.
func IsConflict(err error) bool {
	return cerrdefs.IsConflict(err)
}
