package testdocker_test

import (
	"context"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/internal/testdocker"
)

// Without Main, an image belongs to the test that built it and goes when that test ends.
func TestBuildGoImageWithoutMainIsRemovedWithTheTest(t *testing.T) {
	cli := testdocker.Require(t)
	var tag string
	t.Run("build", func(t *testing.T) {
		tag = testdocker.Sleeper(t, cli)
		if !strings.HasPrefix(tag, testdocker.NamePrefix) || !strings.Contains(tag, "/sleeper:") {
			t.Errorf("tag = %q", tag)
		}
		if ok, err := cli.ImageExists(t.Context(), tag); err != nil || !ok {
			t.Fatalf("ImageExists(%s) = %v, %v", tag, ok, err)
		}
	})
	if ok, err := cli.ImageExists(context.Background(), tag); err != nil || ok {
		t.Errorf("after the test: ImageExists(%s) = %v, %v; want it removed", tag, ok, err)
	}
}

func TestUniquePrefix(t *testing.T) {
	a, b := testdocker.UniquePrefix(t), testdocker.UniquePrefix(t)
	if a == b || !strings.HasPrefix(a, testdocker.NamePrefix) || strings.ToLower(a) != a {
		t.Errorf("prefixes %q, %q", a, b)
	}
}
