package config

import (
	"fmt"
	"slices"
	"strings"
)

// bindOptions are the mount options Docker accepts in a bind string.
var bindOptions = []string{
	"ro", "rw", "z", "Z", "nocopy",
	"shared", "slave", "private", "rshared", "rslave", "rprivate",
	"consistent", "cached", "delegated",
}

// checkBind returns what is wrong with a Docker bind string source:target[:options], or "". The source is a
// named volume or an absolute host path; the target is absolute.
func checkBind(bind string) string {
	parts := strings.Split(bind, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Sprintf("volume %q must be source:target[:options]", bind)
	}
	src, dst := parts[0], parts[1]
	if !strings.HasPrefix(src, "/") && !ValidName(src) {
		return fmt.Sprintf("volume %q: source %q is neither a volume name nor an absolute path", bind, src)
	}
	if !strings.HasPrefix(dst, "/") {
		return fmt.Sprintf("volume %q: target %q is not an absolute path", bind, dst)
	}
	if len(parts) == 3 {
		var ro, rw bool
		for _, o := range strings.Split(parts[2], ",") {
			if !slices.Contains(bindOptions, o) {
				return fmt.Sprintf("volume %q: unknown option %q%s", bind, o, didYouMean(o, bindOptions))
			}
			ro = ro || o == "ro"
			rw = rw || o == "rw"
		}
		if ro && rw {
			return fmt.Sprintf("volume %q: options ro and rw exclude each other", bind)
		}
	}
	return ""
}
