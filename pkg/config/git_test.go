package config

import "testing"

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:s3cret@example.com/repo.git":    "https://user:***@example.com/repo.git",
		"https://ghp_t0ken@github.com/o/r.git":        "https://***@github.com/o/r.git",
		"ssh://git@example.com/repo.git":              "ssh://git@example.com/repo.git",
		"git@github.com:/sumdog/dyject_web.git":       "git@github.com:/sumdog/dyject_web.git",
		"/srv/git/site.git":                           "/srv/git/site.git",
		"https://example.com/a@b/repo.git":            "https://example.com/a@b/repo.git",
		"https://u:p%40ss@example.com:8443/x.git?y=1": "https://u:***@example.com:8443/x.git?y=1",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
}
