// Package reload is the work of the daemon's reload task, an application's reload rules: it reads the fingerprints of
// the watched files through the Docker API, signals the application when they change, checks that a TLS
// server now serves the certificates among them, and reports certificate expiry.
package reload

import (
	"archive/tar"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"time"
)

// maxRead bounds what one watched directory may hold: its files are read whole on every pass.
const maxRead = 64 << 20

// Files is the state of one watched directory: a fingerprint per entry, and the certificates found.
type Files struct {
	// Prints maps each entry's path below the directory to a fingerprint: the content's hash for a file,
	// the target for a symbolic link. Hidden entries (a name starting with a dot, such as a file being
	// written before its rename) are left out.
	Prints map[string]string
	// Certs are the files that start with a PEM certificate, by path.
	Certs map[string]Cert
}

// Cert is the first certificate of a PEM file: what a TLS server configured with the file serves.
type Cert struct {
	// Name is the name to ask for by SNI: the subject's common name when the certificate is valid for
	// it, else its first DNS name.
	Name     string
	Serial   string // hexadecimal, lower case
	NotAfter time.Time
}

// Changed lists the paths added, removed or modified from before to f, sorted.
func (f Files) Changed(before Files) []string {
	var out []string
	for p, v := range f.Prints {
		if before.Prints[p] != v {
			out = append(out, p)
		}
	}
	for p := range before.Prints {
		if _, ok := f.Prints[p]; !ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// readFiles reads a directory as the engine's archive endpoint streams it: a tar whose entries start with
// the directory's own name.
func readFiles(r io.Reader) (Files, error) {
	f := Files{Prints: map[string]string{}, Certs: map[string]Cert{}}
	tr := tar.NewReader(r)
	total := int64(0)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return f, nil
		}
		if err != nil {
			return Files{}, err
		}
		// Strip the directory's own name: live/a.pem is a.pem.
		_, rel, ok := strings.Cut(path.Clean(h.Name), "/")
		if !ok || hidden(rel) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeSymlink:
			f.Prints[rel] = "link:" + h.Linkname
		case tar.TypeReg:
			total += h.Size
			if total > maxRead {
				return Files{}, fmt.Errorf("more than %d MiB of files: watch a smaller directory", maxRead>>20)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				return Files{}, err
			}
			sum := sha256.Sum256(data)
			f.Prints[rel] = hex.EncodeToString(sum[:])
			if c, ok := parseCert(data); ok {
				f.Certs[rel] = c
			}
		}
	}
}

func hidden(rel string) bool {
	for _, part := range strings.Split(rel, "/") {
		if strings.HasPrefix(part, ".") {
			return true
		}
	}
	return false
}

// parseCert reads the first PEM block of a file when it is a certificate.
func parseCert(data []byte) (Cert, bool) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return Cert{}, false
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return Cert{}, false
	}
	name := c.Subject.CommonName
	if !slices.Contains(c.DNSNames, name) && len(c.DNSNames) > 0 {
		name = c.DNSNames[0]
	}
	if name == "" {
		return Cert{}, false
	}
	return Cert{Name: name, Serial: c.SerialNumber.Text(16), NotAfter: c.NotAfter}, true
}

// expiries returns the latest expiry per certificate name.
func expiries(certs ...map[string]Cert) map[string]time.Time {
	out := map[string]time.Time{}
	for _, m := range certs {
		for _, p := range slices.Sorted(maps.Keys(m)) {
			c := m[p]
			if c.NotAfter.After(out[c.Name]) {
				out[c.Name] = c.NotAfter
			}
		}
	}
	return out
}
