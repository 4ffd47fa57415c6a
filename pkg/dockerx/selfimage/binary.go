package selfimage

import (
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

// ProcSelf is this running program, even after an upgrade replaced its file.
const ProcSelf = "/proc/self/exe"

// Find returns the binary to put in an image: given when not empty, else this very program, read through
// ProcSelf where there is one.
func Find(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if _, err := os.Stat(ProcSelf); err == nil {
		return ProcSelf, nil
	}
	return os.Executable()
}

// Binary is what an executable is built for, as its ELF header says.
type Binary struct {
	// Arch is Go's name for its architecture, as the engine reports its own; ELF's name, lower-cased, for one
	// Go does not know.
	Arch string
	// Static tells that it has no program interpreter: it runs alone in a FROM scratch image.
	Static bool
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

// Inspect reads what the executable at path is built for; an error means it is no ELF executable.
func Inspect(path string) (Binary, error) {
	f, err := elf.Open(path)
	if err != nil {
		return Binary{}, err
	}
	defer f.Close()
	b := Binary{Arch: elfArch[f.Machine], Static: true}
	if b.Arch == "" {
		b.Arch = strings.ToLower(strings.TrimPrefix(f.Machine.String(), "EM_"))
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b.Static = false
		}
	}
	return b, nil
}

// Misfit is why a binary cannot run alone in a FROM scratch container on a platform.
type Misfit int

// The misfits, in the order Fit checks them: a static build fixes only the last.
const (
	Fits      Misfit = iota
	OtherOS          // the engine does not run Linux containers
	OtherArch        // the binary is built for another architecture
	Dynamic          // the binary needs a program interpreter (cgo)
)

// Fit tells whether b runs alone in a FROM scratch container on plat, and if not, why.
func (b Binary) Fit(plat dockerx.Platform) Misfit {
	switch {
	case plat.OS != "linux":
		return OtherOS
	case b.Arch != plat.Arch:
		return OtherArch
	case !b.Static:
		return Dynamic
	}
	return Fits
}

// digests caches Digest by path, size and time: a binary is read once, not at every image made from it.
var digests sync.Map

type digestKey struct {
	path  string
	size  int64
	mtime int64
}

// Digest is the hex SHA-256 of the file at path, which an image's tag names it by.
func Digest(path string) (string, error) {
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
