// Package selfimage makes the images that run bee2d's own binary on a server: FROM scratch with the binary
// as /bee2d, built on the server once per binary, never pulled.
package selfimage

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

// Engine is what Ensure needs of a server's engine; *dockerx.Client is one.
type Engine interface {
	ListImages(ctx context.Context) ([]dockerx.Image, error)
	BuildImageFromTar(ctx context.Context, context io.Reader, req dockerx.BuildRequest) (string, error)
}

// Image is an image to have on a server.
type Image struct {
	Tag string
	// Binary is copied in as /bee2d, the entrypoint, with Args after it; "" makes an empty image, whose
	// containers are only created, never run.
	Binary string
	Args   []string
	Labels map[string]string
	// Output receives the build's progress as text; nil discards it.
	Output io.Writer
}

// Dockerfile is the Dockerfile img is built from.
func (img Image) Dockerfile() string {
	if img.Binary == "" {
		return "FROM scratch\n"
	}
	entry := make([]string, 0, 1+len(img.Args))
	for _, a := range append([]string{"/bee2d"}, img.Args...) {
		q, _ := json.Marshal(a)
		entry = append(entry, string(q))
	}
	return "FROM scratch\nCOPY bee2d /bee2d\nENTRYPOINT [" + strings.Join(entry, ", ") + "]\n"
}

// Ensure builds img on eng unless eng has an image tagged img.Tag, and tells whether it built it. The tag
// should name what the image holds (a digest of the binary), so that an image found is the one wanted.
func Ensure(ctx context.Context, eng Engine, img Image) (built bool, err error) {
	images, err := eng.ListImages(ctx)
	if err != nil {
		return false, err
	}
	for _, im := range images {
		if slices.Contains(im.Tags, img.Tag) {
			return false, nil
		}
	}
	var bin *os.File
	if img.Binary != "" {
		if bin, err = os.Open(img.Binary); err != nil {
			return false, err
		}
		defer bin.Close()
	}
	pr, pw := io.Pipe()
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		pw.CloseWithError(writeContext(pw, img.Dockerfile(), bin))
	}()
	_, err = eng.BuildImageFromTar(ctx, pr, dockerx.BuildRequest{Tags: []string{img.Tag}, Labels: img.Labels, Output: img.Output})
	// A build that failed early leaves the writer blocked on the pipe: closing it ends the writer.
	pr.CloseWithError(io.ErrClosedPipe)
	<-wrote
	if err != nil {
		return false, err
	}
	return true, nil
}

// writeContext writes the build context: the Dockerfile, and the binary as bee2d when not nil.
func writeContext(w io.Writer, dockerfile string, bin *os.File) error {
	tw := tar.NewWriter(w)
	if err := tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile)), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, dockerfile); err != nil {
		return err
	}
	if bin != nil {
		fi, err := bin.Stat()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: "bee2d", Mode: 0o755, Size: fi.Size(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, bin); err != nil {
			return err
		}
	}
	return tw.Close()
}
