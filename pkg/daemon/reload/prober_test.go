package reload

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/dockerx/selfimage"
	"github.com/bee2d/bee2d/pkg/labels"
)

// The probe image is named by the first 6 bytes of the binary's SHA-256 and labelled as the probe's; a
// binary that cannot run alone in it is refused with the reason.
func TestProbeImage(t *testing.T) {
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	dir := t.TempDir()
	if err := testdocker.WriteGoBuildDir(dir, "package main\n\nfunc main() {}\n"); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "app")
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := prefix + "/bee2d-probe:" + hex.EncodeToString(sum[:6])
	for range 2 { // the second finds the image
		got, err := (&Prober{Prefix: strings.ToUpper(prefix), Binary: bin}).image(t.Context(), cli)
		if err != nil || got != want {
			t.Fatalf("image = %q, %v; want %q", got, err, want)
		}
	}
	images, err := cli.ListImages(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(images, func(img dockerx.Image) bool {
		return slices.Contains(img.Tags, want) && img.Labels[labels.Probe] == "tls"
	}) {
		t.Errorf("no image %s labelled %s=tls", want, labels.Probe)
	}

	script := filepath.Join(t.TempDir(), "bee2d")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	refused := map[string]string{script: "no probe: " + script + " is not a Linux executable"}
	if dynamic(t) {
		refused[""] = "no probe: this bee2d is linked dynamically (build it with CGO_ENABLED=0, as make build does)"
	}
	for binary, msg := range refused {
		if _, err := (&Prober{Prefix: prefix, Binary: binary}).image(t.Context(), cli); err == nil || err.Error() != msg {
			t.Errorf("Binary %q: err = %v, want %s", binary, err, msg)
		}
	}
}

// dynamic tells whether the test binary needs a program interpreter (cgo, as with -race).
func dynamic(t *testing.T) bool {
	b, err := selfimage.Inspect(selfimage.ProcSelf)
	if err != nil {
		t.Fatal(err)
	}
	return !b.Static
}
