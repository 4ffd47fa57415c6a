package backup

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/bee2d/bee2d/pkg/dockerx"
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

// elfArch maps ELF machines to Go's architecture names, as the engine reports them.
var elfArch = map[elf.Machine]string{
	elf.EM_X86_64:  "amd64",
	elf.EM_AARCH64: "arm64",
	elf.EM_386:     "386",
	elf.EM_ARM:     "arm",
	elf.EM_PPC64:   "ppc64le",
	elf.EM_S390:    "s390x",
	elf.EM_RISCV:   "riscv64",
}

// binaryPlatform reads the architecture of an executable and whether it is static (no program interpreter).
func binaryPlatform(path string) (arch string, static bool, err error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	arch = elfArch[f.Machine]
	if arch == "" {
		arch = strings.ToLower(strings.TrimPrefix(f.Machine.String(), "EM_"))
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return arch, false, nil
		}
	}
	return arch, true, nil
}

// digests caches the digest of helper binaries by path, size and time.
var digests sync.Map

type digestKey struct {
	path  string
	size  int64
	mtime int64
}

func fileDigest(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	key := digestKey{path, fi.Size(), fi.ModTime().UnixNano()}
	if d, ok := digests.Load(key); ok {
		return d.(string), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	d := hex.EncodeToString(h.Sum(nil))
	digests.Store(key, d)
	return d, nil
}

// helperBinary is the binary to run as the helper: the one given, else this very program, read through
// /proc/self/exe, which stays the running binary even after an upgrade replaced the file.
func helperBinary(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe", nil
	}
	return os.Executable()
}

// prepareHelper makes sure the server has the helper image (or the empty one) and says which it is.
func prepareHelper(ctx context.Context, eng Engine, prefix, binary string, out io.Writer) (helper, error) {
	repo := strings.ToLower(prefix) + "/" + helperRepo
	why := ""
	var digest string
	bin, err := helperBinary(binary)
	if err == nil {
		var plat dockerx.Platform
		if plat, err = eng.Platform(ctx); err != nil {
			return helper{}, err
		}
		arch, static, berr := binaryPlatform(bin)
		shown := bin
		if bin == "/proc/self/exe" {
			shown = "this bee2d"
		}
		switch {
		case berr != nil:
			why = fmt.Sprintf("%s is not an executable the server can run: %v", shown, berr)
		case plat.OS != "linux":
			why = fmt.Sprintf("the server runs %s, not linux", plat.OS)
		case arch != plat.Arch:
			why = fmt.Sprintf("%s is built for %s and the server is %s", shown, arch, plat.Arch)
		case !static:
			why = fmt.Sprintf("%s is linked dynamically (build bee2d with CGO_ENABLED=0)", shown)
		default:
			if digest, err = fileDigest(bin); err != nil {
				return helper{}, err
			}
		}
	} else {
		why = fmt.Sprintf("cannot find bee2d's own executable: %v", err)
	}
	if digest == "" {
		tag := repo + ":empty"
		err := ensureImage(ctx, eng, tag, map[string][]byte{"Dockerfile": []byte("FROM scratch\n")}, nil, out)
		return helper{Image: tag, Why: why}, err
	}
	tag := repo + ":" + digest[:16]
	f, err := os.Open(bin)
	if err != nil {
		return helper{}, err
	}
	defer f.Close()
	dockerfile := "FROM scratch\nCOPY bee2d /bee2d\nENTRYPOINT [\"/bee2d\", \"" + HelperCommand + "\"]\n"
	if err := ensureImage(ctx, eng, tag, map[string][]byte{"Dockerfile": []byte(dockerfile)}, f, out); err != nil {
		return helper{}, err
	}
	return helper{Image: tag, Runnable: true}, nil
}

// ensureImage builds tag from files (and bin as /bee2d, when not nil) unless the server has it; other helper
// images of the same repository, from earlier bee2d versions, are then removed.
func ensureImage(ctx context.Context, eng Engine, tag string, files map[string][]byte, bin *os.File, out io.Writer) error {
	ok, err := eng.ImageExists(ctx, tag)
	if err != nil || ok {
		return err
	}
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeContext(pw, files, bin))
	}()
	_, err = eng.BuildImageFromTar(ctx, pr, dockerx.BuildRequest{
		Tags:   []string{tag},
		Labels: map[string]string{labels.BuiltBy: labels.Bee2d},
		Output: out,
	})
	pr.CloseWithError(io.ErrClosedPipe)
	if err != nil {
		return err
	}
	if bin != nil {
		removeOldHelpers(ctx, eng, tag)
	}
	return nil
}

func writeContext(w io.Writer, files map[string][]byte, bin *os.File) error {
	tw := tar.NewWriter(w)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, bytes.NewReader(data)); err != nil {
			return err
		}
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
