package gitx

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/bee2d/bee2d/pkg/config"
)

// schemes are the URL schemes git may fetch settings over; the others (and remote helpers) are refused.
var schemes = map[string]bool{"https": true, "http": true, "ssh": true, "git+ssh": true, "ssh+git": true, "git": true, "file": true}

// CheckURL refuses a repository value that would make git do something other than fetch: an option in place
// of the URL, the ext:: transport and the other remote helpers (which run commands), an unknown scheme, or
// control characters. It accepts https://, http://, ssh://, git://, file://, scp-like user@host:path, and
// a local path. The settings refuse the same values.
func CheckURL(u string) error {
	lower := strings.ToLower(u)
	scheme, _, hasScheme := strings.Cut(lower, "://")
	switch {
	case u == "":
		return errors.New("no repository given")
	case strings.IndexFunc(u, unicode.IsControl) >= 0:
		return errors.New("the repository contains a control character")
	case strings.HasPrefix(u, "-"):
		return fmt.Errorf("repository %q looks like an option, not a repository", config.RedactURL(u))
	case strings.HasPrefix(lower, "ext::"), strings.Contains(lower, "::") && !hasScheme:
		return fmt.Errorf("repository %q: the ext:: and other remote-helper transports are refused", config.RedactURL(u))
	case hasScheme && !schemes[scheme]:
		return fmt.Errorf("repository %q: scheme %s:// is not one of https, http, ssh, git and file", config.RedactURL(u), scheme)
	}
	return nil
}

// CheckBranch refuses a branch name git would not take, or would take for an option.
func CheckBranch(ctx context.Context, branch string) error {
	if branch == "" || strings.HasPrefix(branch, "-") || strings.HasPrefix(branch, "refs/") {
		return fmt.Errorf("branch %q is not a branch name", branch)
	}
	if _, err := git(ctx, "", "", "check-ref-format", "refs/heads/"+branch); err != nil {
		return fmt.Errorf("branch %q is not a valid branch name", branch)
	}
	return nil
}
