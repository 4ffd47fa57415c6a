package backup

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/bee2d/bee2d/pkg/dockerx/selfimage"
	"github.com/bee2d/bee2d/pkg/labels"
)

// The helper image is FROM scratch with bee2d's own binary in it, tagged <prefix>/bee2d-helper:<digest of the
// binary>: built once per server and bee2d version, never pulled. It works where that binary is static and
// built for the server's platform. Elsewhere (another CPU architecture, a bee2d linked against libc) an empty
// image stands in: its container is only created, to read the volumes through the engine's archive endpoint.

const helperRepo = "bee2d-helper"

// helper says how a run reaches the volumes.
type helper struct {
	Image string
	// Runnable tells that Image runs the helper program; otherwise it is the empty image, and Why says why.
	Runnable bool
	Why      string
}

// prepareHelper makes sure the server has the helper image (or the empty one) and says which it is.
func prepareHelper(ctx context.Context, eng Engine, prefix, binary string, out io.Writer) (helper, error) {
	repo := strings.ToLower(prefix) + "/" + helperRepo
	imageLabels := map[string]string{labels.BuiltBy: labels.Bee2d}
	bin, why, err := helperBinary(ctx, eng, binary)
	if err != nil {
		return helper{}, err
	}
	if why != "" {
		tag := repo + ":empty"
		_, err := selfimage.Ensure(ctx, eng, selfimage.Image{Tag: tag, Labels: imageLabels, Output: out})
		return helper{Image: tag, Why: why}, err
	}
	digest, err := selfimage.Digest(bin)
	if err != nil {
		return helper{}, err
	}
	tag := repo + ":" + digest[:16]
	built, err := selfimage.Ensure(ctx, eng, selfimage.Image{Tag: tag, Binary: bin, Args: []string{HelperCommand},
		Labels: imageLabels, Output: out})
	if err != nil {
		return helper{}, err
	}
	if built {
		removeOldHelpers(ctx, eng, tag)
	}
	return helper{Image: tag, Runnable: true}, nil
}

// helperBinary finds the binary to run as the helper (binary, else this very program) and checks that it runs
// on the server; when it does not, why says why.
func helperBinary(ctx context.Context, eng Engine, binary string) (bin, why string, err error) {
	bin, err = selfimage.Find(binary)
	if err != nil {
		return "", fmt.Sprintf("cannot find bee2d's own executable: %v", err), nil
	}
	plat, err := eng.Platform(ctx)
	if err != nil {
		return "", "", err
	}
	shown := bin
	if bin == selfimage.ProcSelf {
		shown = "this bee2d"
	}
	b, err := selfimage.Inspect(bin)
	if err != nil {
		return "", fmt.Sprintf("%s is not an executable the server can run: %v", shown, err), nil
	}
	switch b.Fit(plat) {
	case selfimage.OtherOS:
		why = fmt.Sprintf("the server runs %s, not linux", plat.OS)
	case selfimage.OtherArch:
		why = fmt.Sprintf("%s is built for %s and the server is %s", shown, b.Arch, plat.Arch)
	case selfimage.Dynamic:
		why = fmt.Sprintf("%s is linked dynamically (build bee2d with CGO_ENABLED=0)", shown)
	}
	return bin, why, nil
}

// removeOldHelpers removes the helper images of other bee2d versions; one still in use stays.
func removeOldHelpers(ctx context.Context, eng Engine, keep string) {
	repo, _, _ := strings.Cut(keep, ":")
	images, err := eng.ListImages(ctx)
	if err != nil {
		return
	}
	for _, img := range images {
		if img.Labels[labels.BuiltBy] != labels.Bee2d {
			continue
		}
		for _, t := range img.Tags {
			r, v, _ := strings.Cut(t, ":")
			if r == repo && t != keep && v != "empty" {
				eng.RemoveImage(ctx, t)
			}
		}
	}
}
