package gitx

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/bee2d/bee2d/pkg/config"
)

// FetchRef checks out ref of url into dir, which must not exist, and returns the commit checked out. ref is
// a branch or tag name, a full ref such as refs/pull/12/head or refs/merge-requests/3/head, or a commit
// hash. It fetches only that commit where the remote allows; an abbreviated hash needs the whole history.
// On an error nothing is left at dir.
func FetchRef(ctx context.Context, url, ref, dir string) (string, error) {
	if err := CheckURL(url); err != nil {
		return "", err
	}
	if ref == "" || strings.HasPrefix(ref, "-") || strings.ContainsAny(ref, ": \t\n\r\x00") {
		return "", fmt.Errorf("ref %q is not a branch, tag, ref or commit", ref)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if _, err := os.Lstat(dir); err == nil {
		return "", fmt.Errorf("fetch %s: %s exists", ref, dir)
	}
	ctx, cancel := context.WithTimeout(ctx, CloneTimeout)
	defer cancel()
	commit, err := fetchRef(ctx, url, ref, dir)
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return commit, nil
}

func fetchRef(ctx context.Context, url, ref, dir string) (string, error) {
	if _, err := git(ctx, "", "", "init", "--quiet", "--", dir); err != nil {
		return "", err
	}
	repo := command{dir: dir, url: url}
	_, err := repo.run(ctx, "fetch", "--quiet", "--no-tags", "--depth", "1", "--", url, ref)
	target := "FETCH_HEAD"
	if err != nil {
		var ge *Error
		if !errors.As(err, &ge) || !strings.Contains(ge.Msg, "couldn't find remote ref") {
			return "", err
		}
		if checkHash(ref) != nil {
			return "", fmt.Errorf("git %s: no branch, tag or ref %q", config.RedactURL(url), ref)
		}
		// An abbreviated hash, or a remote that does not serve single commits: fetch every branch and tag.
		if _, err := repo.run(ctx, "fetch", "--quiet", "--no-tags", "--", url,
			"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"); err != nil {
			return "", err
		}
		target = ref
	}
	out, err := repo.run(ctx, "rev-parse", "--verify", "--quiet", target+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("git %s: no commit %q", config.RedactURL(url), ref)
	}
	commit := strings.TrimSpace(string(out))
	if _, err := repo.run(ctx, "checkout", "--quiet", "--detach", commit); err != nil {
		return "", err
	}
	return commit, nil
}
