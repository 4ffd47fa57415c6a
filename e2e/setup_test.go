package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// need fails under CI=true and skips elsewhere: CI must never pass by skipping.
func need(t *testing.T, format string, args ...any) {
	t.Helper()
	testdocker.Need(t, fmt.Sprintf(format, args...))
}

// basePackages are what the images are built on: Debian's haproxy, nginx and certbot instead of the
// official images, which cannot be pulled here, and the PostgreSQL and MariaDB servers that DBSetup is tested
// against. One list serves every test, so the base image is made once.
var basePackages = []string{"haproxy", "nginx-light", "certbot", "python3-cffi-backend", "postgresql", "mariadb-server"}

// baseImage returns the offline base image, made with debootstrap the first time and kept by its tag,
// which names the package list, so that later runs reuse it.
func baseImage(t *testing.T, cli *dockerx.Client) string {
	t.Helper()
	tag := baseTag(basePackages)
	images, err := cli.ListImages(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, im := range images {
		for _, tg := range im.Tags {
			if tg == tag {
				return tag
			}
		}
	}
	debootstrap, err := exec.LookPath("debootstrap")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/debootstrap"); serr != nil {
			need(t, "debootstrap not found (apt-get install debootstrap) to make the base image %s", tag)
		}
		debootstrap = "/usr/sbin/debootstrap"
	}
	if os.Geteuid() != 0 {
		need(t, "debootstrap needs root to make the base image %s", tag)
	}
	root := filepath.Join(t.TempDir(), "rootfs")
	start := time.Now()
	cmd := exec.CommandContext(t.Context(), debootstrap, "--variant=minbase", "--include="+strings.Join(basePackages, ","),
		"bookworm", root, "http://deb.debian.org/debian")
	if out, err := cmd.CombinedOutput(); err != nil {
		tail := string(out)
		tail = tail[max(0, len(tail)-3000):]
		t.Fatalf("debootstrap: %v\n%s", err, tail)
	}
	pr, pw := io.Pipe()
	tar := exec.Command("tar", "-C", root, "-c", ".")
	tar.Stdout = pw
	if err := tar.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { pw.CloseWithError(tar.Wait()) }()
	if err := cli.ImportImage(t.Context(), pr, tag); err != nil {
		t.Fatal(err)
	}
	t.Logf("made base image %s in %v", tag, time.Since(start).Round(time.Second))
	return tag
}

// baseTag names the package list in the base image's tag, so that a changed list makes a new image. A list
// too long for a tag (128 characters) keeps its start and ends in a hash of the whole list instead, so that two
// long lists with the same start still get two tags.
func baseTag(packages []string) string {
	tag := "bee2d-e2e/base:bookworm-" + strings.Join(packages, "-")
	if len(tag) <= len("bee2d-e2e/base:")+128 {
		return tag
	}
	sum := sha256.Sum256([]byte(strings.Join(packages, ",")))
	return tag[:len("bee2d-e2e/base:")+128-13] + "-" + hex.EncodeToString(sum[:6])
}

// goTool installs a Go command into a cache directory kept between runs, and returns its path.
func goTool(t *testing.T, pkg string) string {
	t.Helper()
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "bee2d-e2e", "bin")
	name := filepath.Base(strings.Split(pkg, "@")[0])
	if _, err := os.Stat(filepath.Join(bin, name)); err == nil {
		return filepath.Join(bin, name)
	}
	cmd := exec.CommandContext(t.Context(), "go", "install", pkg)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		need(t, "go install %s: %v\n%s", pkg, err, out)
	}
	return filepath.Join(bin, name)
}

// goBuild compiles a package of this module (./cmd/bee2d) into a static binary at out, with flags.
func goBuild(t *testing.T, out, pkg string, flags ...string) {
	t.Helper()
	args := append(append([]string{"build"}, flags...), "-o", out, pkg)
	cmd := exec.CommandContext(t.Context(), "go", args...)
	cmd.Dir = ".."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

// bee2dBinary builds the bee2d binary into dir, as `make build` does (static: the TLS probe and the backup
// helper run it on the server), and returns its path.
func bee2dBinary(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bee2d")
	goBuild(t, bin, "./cmd/bee2d")
	return bin
}

// freePort returns a TCP port of addr that was free a moment ago.
func freePort(t *testing.T, host string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// portFree fails the test when a port the stack publishes is taken on this machine.
func portFree(t *testing.T, port int) {
	t.Helper()
	l, err := net.Listen("tcp", ":"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("port %d is taken on this machine; HAProxy publishes it: %v", port, err)
	}
	l.Close()
}

// serverCert writes a CA and a certificate for the given addresses signed by it (the ACME server's own
// HTTPS certificate, for CertBot to trust through REQUESTS_CA_BUNDLE).
func serverCert(t *testing.T, dir string, ips ...string) (caFile, certFile, keyFile string) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bee2d e2e ACME CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: ips[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	caFile, certFile, keyFile = filepath.Join(dir, "ca.pem"), filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for f, b := range map[string]*pem.Block{caFile: {Type: "CERTIFICATE", Bytes: caDER}, certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile: {Type: "EC PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(f, pem.EncodeToMemory(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return caFile, certFile, keyFile
}

// process starts a program for the rest of the test, its output in a log file shown when the test fails.
func process(t *testing.T, logName string, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), logName+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		// One SIGTERM: bee2d then finishes the actions in flight (a second signal would cut them short).
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() || os.Getenv("E2E_LOGS") != "" {
			b, _ := os.ReadFile(logPath)
			s := string(b)
			t.Logf("--- %s log (end):\n%s", logName, s[max(0, len(s)-12000):])
		}
	})
	return cmd
}

// eventually retries f until it returns nil or the time is up, and returns its last error.
func eventually(ctx context.Context, within time.Duration, f func() error) error {
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}
