package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"strings"
)

// withBuildArgs is the version an image is tagged with: the source's digest or commit, mixed with the build
// arguments when there are any, so that other arguments make another image (and recreate its containers),
// while an image without arguments keeps the tag it always had.
func withBuildArgs(version string, args map[string]string) string {
	if len(args) == 0 {
		return version
	}
	h := sha256.New()
	h.Write([]byte(version))
	for _, k := range slices.Sorted(maps.Keys(args)) {
		h.Write([]byte("\x00" + k + "=" + args[k]))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// argsNote names the build arguments (not their values) after a source in plans.
func argsNote(args map[string]string) string {
	if len(args) == 0 {
		return ""
	}
	return " with build args " + strings.Join(slices.Sorted(maps.Keys(args)), ", ")
}

// buildArgs is the form the engine takes them in.
func buildArgs(args map[string]string) map[string]*string {
	if len(args) == 0 {
		return nil
	}
	out := make(map[string]*string, len(args))
	for k, v := range args {
		out[k] = &v
	}
	return out
}
