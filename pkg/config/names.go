package config

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	// namePart is what Docker accepts as (part of) a container or volume name.
	namePart = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)
	// imagePathPart is a component of a Docker repository name (distribution's reference grammar): lower-case
	// letters and digits, separated by one ".", one or two "_", or any number of "-".
	imagePathPart = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	// envKeyRE is a portable shell variable name.
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// ValidName tells whether name may be used as a prefix, a service name or a volume name: Docker's
// [a-zA-Z0-9][a-zA-Z0-9_.-]*.
func ValidName(name string) bool {
	return namePart.MatchString(name)
}

// ImageRepoOK tells whether <prefix>/<name>, lower-cased, is a repository name Docker accepts: the tag of an
// image bee2d builds. ValidName allows names such as "web." or "a..b" that Docker refuses there.
func ImageRepoOK(prefix, name string) bool {
	return imagePathPart.MatchString(strings.ToLower(prefix)) && imagePathPart.MatchString(strings.ToLower(name))
}

// didYouMean returns ` (did you mean "x"?)` for the candidate closest to name, or "" when none is close.
func didYouMean(name string, candidates []string) string {
	if s := suggest(name, candidates); s != "" {
		return fmt.Sprintf(" (did you mean %q?)", s)
	}
	return ""
}

// suggest returns the first candidate, in the order given, at the smallest edit distance from name, provided that
// distance is at most 2 and smaller than name itself (so "x" does not suggest "db").
func suggest(name string, candidates []string) string {
	best, bestDist := "", 3
	n := len([]rune(name))
	for _, c := range candidates {
		if c == name {
			continue
		}
		d := levenshtein(strings.ToLower(name), strings.ToLower(c))
		if d < bestDist && d < n {
			best, bestDist = c, d
		}
	}
	return best
}

// levenshtein is the edit distance between a and b in runes.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
