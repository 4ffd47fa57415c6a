package gitx

import (
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct{ url, err string }{
		{"https://github.com/o/r.git", ""},
		{"http://git.example.net/r.git", ""},
		{"https://x-access-token:t0ken@github.com/o/r.git", ""},
		{"ssh://git@example.net:2222/r.git", ""},
		{"git@github.com:o/r.git", ""},
		{"git://example.net/r.git", ""},
		{"file:///srv/git/r.git", ""},
		{"/srv/git/r.git", ""},
		{"../r", ""},
		{"", "no repository"},
		{"-uhttps://x", "looks like an option"},
		{"--upload-pack=touch /tmp/x", "looks like an option"},
		{"ext::sh -c touch% /tmp/pwned", "remote-helper"},
		{"EXT::sh", "remote-helper"},
		{"fd::17", "remote-helper"},
		{"foo::https://example.net/r", "not one of"},
		{"https://example.net/r\n.git", "control character"},
		{"https://example.net/r\x00", "control character"},
		{"ftp://example.net/r.git", "not one of"},
		{"https://u:s3cret@example.net\r", "control character"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			err := CheckURL(tc.url)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tc.err != "" && err == nil:
				t.Errorf("accepted, want %q", tc.err)
			case err != nil && !strings.Contains(err.Error(), tc.err):
				t.Errorf("error %q, want %q", err, tc.err)
			case err != nil && strings.Contains(err.Error(), "s3cret"):
				t.Errorf("error %q shows the password", err)
			}
		})
	}
}

func TestCheckBranch(t *testing.T) {
	for b, ok := range map[string]bool{
		"main": true, "release/1.2": true, "": false, "-f": false, "a..b": false, "a b": false,
		"refs/heads/main": false, "x:y": false, "x~1": false, "@{-1}": false,
	} {
		if err := CheckBranch(t.Context(), b); (err == nil) != ok {
			t.Errorf("CheckBranch(%q) = %v, want ok %v", b, err, ok)
		}
	}
}
