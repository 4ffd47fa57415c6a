package selfimage_test

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/dockerx/selfimage"
)

func TestDockerfile(t *testing.T) {
	for _, c := range []struct {
		name string
		img  selfimage.Image
		want string
	}{
		{"empty", selfimage.Image{}, "FROM scratch\n"},
		{"binary", selfimage.Image{Binary: "/x"}, "FROM scratch\nCOPY bee2d /bee2d\nENTRYPOINT [\"/bee2d\"]\n"},
		{"binary and arguments", selfimage.Image{Binary: "/x", Args: []string{"helper", `a "b"`}},
			"FROM scratch\nCOPY bee2d /bee2d\nENTRYPOINT [\"/bee2d\", \"helper\", \"a \\\"b\\\"\"]\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := c.img.Dockerfile(); got != c.want {
				t.Errorf("Dockerfile:\n%s\nwant:\n%s", got, c.want)
			}
		})
	}
}

// Ensure builds an image with the binary as /bee2d once; then the engine has it.
func TestEnsure(t *testing.T) {
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	bin := filepath.Join(t.TempDir(), "bee2d")
	data := []byte("not really bee2d")
	if err := os.WriteFile(bin, data, 0o700); err != nil {
		t.Fatal(err)
	}
	img := selfimage.Image{Tag: prefix + "/self:1", Binary: bin, Args: []string{"x"}, Labels: map[string]string{"io.bee2d.test": "self"}}
	for i, want := range []bool{true, false} {
		built, err := selfimage.Ensure(t.Context(), cli, img)
		if err != nil || built != want {
			t.Fatalf("Ensure #%d = %v, %v; want %v", i+1, built, err, want)
		}
	}
	images, err := cli.ListImages(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(images, func(im dockerx.Image) bool {
		return slices.Contains(im.Tags, img.Tag) && im.Labels["io.bee2d.test"] == "self"
	}) {
		t.Errorf("no image %s with its label", img.Tag)
	}

	id, err := cli.CreateHelper(t.Context(), dockerx.HelperSpec{Name: prefix + "-self", Image: img.Tag})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := cli.CopyFromContainer(t.Context(), id, "/bee2d")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(tr)
	if h.Mode&0o777 != 0o755 || !bytes.Equal(got, data) {
		t.Errorf("/bee2d: mode %o, %q; want 755, %q", h.Mode&0o777, got, data)
	}
}
