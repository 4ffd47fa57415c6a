package backup

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/dockerx/selfimage"
	"github.com/bee2d/bee2d/pkg/labels"
)

// The helper image holds a static bee2d and is named by its digest; making it removes the helper images of
// other versions, not the empty one. A binary that cannot run on the server gets the empty image instead,
// with the reason.
func TestHelperImage(t *testing.T) {
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	repo := prefix + "/bee2d-helper"
	hasImage := func(tag string) bool {
		t.Helper()
		images, err := cli.ListImages(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(images, func(img dockerx.Image) bool {
			return slices.Contains(img.Tags, tag) && img.Labels[labels.BuiltBy] == labels.Bee2d
		})
	}

	script := filepath.Join(t.TempDir(), "bee2d")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	h, err := prepareHelper(t.Context(), cli, prefix, script, nil)
	if err != nil {
		t.Fatal(err)
	}
	if h.Image != repo+":empty" || h.Runnable || !strings.Contains(h.Why, script+" is not an executable the server can run") {
		t.Errorf("a script as the helper: %+v", h)
	}
	if !hasImage(repo + ":empty") {
		t.Errorf("no image %s:empty", repo)
	}
	if dynamicTest(t) {
		h, err := prepareHelper(t.Context(), cli, prefix, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if h.Image != repo+":empty" || h.Runnable || h.Why != "this bee2d is linked dynamically (build bee2d with CGO_ENABLED=0)" {
			t.Errorf("the test binary as the helper: %+v", h)
		}
	}

	old := repo + ":0123456789abcdef"
	if _, err := selfimage.Ensure(t.Context(), cli, selfimage.Image{Tag: old, Labels: map[string]string{labels.BuiltBy: labels.Bee2d}}); err != nil {
		t.Fatal(err)
	}
	h, err = prepareHelper(t.Context(), cli, prefix, staticBee2d(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !h.Runnable || !regexp.MustCompile(`^`+regexp.QuoteMeta(repo)+`:[0-9a-f]{16}$`).MatchString(h.Image) || h.Why != "" {
		t.Errorf("a static bee2d as the helper: %+v", h)
	}
	if !hasImage(h.Image) || hasImage(old) || !hasImage(repo+":empty") {
		t.Errorf("images after the helper was made: %s %v, %s %v (want removed), %s:empty %v",
			h.Image, hasImage(h.Image), old, hasImage(old), repo, hasImage(repo+":empty"))
	}
}

// dynamicTest tells whether the test binary needs a program interpreter (cgo, as with -race).
func dynamicTest(t *testing.T) bool {
	b, err := selfimage.Inspect(selfimage.ProcSelf)
	if err != nil {
		t.Fatal(err)
	}
	return !b.Static
}
