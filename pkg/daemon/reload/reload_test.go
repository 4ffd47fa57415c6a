package reload

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
)

// certPEM makes a self-signed certificate for name with the given serial, with its key, as a combined
// file holds them.
func certPEM(t *testing.T, name string, serial int64, notAfter time.Time) (string, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name, "www." + name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return string(certPEM) + string(keyPEM), pair
}

// archive is a directory as the engine's archive endpoint streams it.
func archive(t *testing.T, dir string, files map[string]string, links map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	for name, content := range files {
		tw.WriteHeader(&tar.Header{Name: dir + "/" + name, Typeflag: tar.TypeReg, Mode: 0o600, Size: int64(len(content))})
		tw.Write([]byte(content))
	}
	for name, target := range links {
		tw.WriteHeader(&tar.Header{Name: dir + "/" + name, Typeflag: tar.TypeSymlink, Linkname: target})
	}
	tw.Close()
	return buf.Bytes()
}

func TestReadFiles(t *testing.T) {
	expiry := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	pemA, _ := certPEM(t, "example.com", 0x2a, expiry)
	data := archive(t, "live", map[string]string{
		"example.com-combined.pem":      pemA,
		"README":                        "not a certificate",
		".example.com-combined.pem.tmp": "being written",
	}, map[string]string{"example.com/cert.pem": "../../archive/example.com/cert1.pem"})
	f, err := readFiles(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Prints) != 3 || f.Prints["example.com/cert.pem"] != "link:../../archive/example.com/cert1.pem" {
		t.Errorf("prints %v; want the two files and the link, not the hidden file", f.Prints)
	}
	c, ok := f.Certs["example.com-combined.pem"]
	if !ok || c.Name != "example.com" || c.Serial != "2a" || !c.NotAfter.Equal(expiry) || len(f.Certs) != 1 {
		t.Errorf("certs %+v", f.Certs)
	}
	g := Files{Prints: map[string]string{"README": f.Prints["README"], "gone": "x", "example.com/cert.pem": "link:other"}}
	if got := strings.Join(f.Changed(g), " "); got != "example.com-combined.pem example.com/cert.pem gone" {
		t.Errorf("changed: %s", got)
	}
}

// fakeServer is an application as the tracker sees it: the files in its watched directory, the
// certificates it serves (what it loaded at its last start or reload), and whether a reload takes.
type fakeServer struct {
	t       *testing.T
	files   map[string]string
	served  map[string]string // name -> serial
	broken  bool              // a signal does not load the files
	signals []string
	verify  error
}

func (s *fakeServer) load() {
	s.served = map[string]string{}
	for _, content := range s.files {
		if c, ok := parseCert([]byte(content)); ok {
			s.served[c.Name] = c.Serial
		}
	}
}

func (s *fakeServer) ops() Ops {
	return Ops{
		Files: func(ctx context.Context, id, dir string) (Files, error) {
			if dir != "/etc/letsencrypt/live" {
				s.t.Errorf("read %s", dir)
			}
			return readFiles(bytes.NewReader(archive(s.t, "live", s.files, nil)))
		},
		Signal: func(ctx context.Context, id, signal string) error {
			s.signals = append(s.signals, id+" "+signal)
			if !s.broken {
				s.load()
			}
			return nil
		},
		Verify: func(ctx context.Context, id string, port int, want map[string]string, timeout time.Duration) (map[string]string, error) {
			if port != 443 {
				s.t.Errorf("verify on port %d", port)
			}
			return s.served, s.verify
		},
	}
}

func TestTrackerSignalsOnChangeAndVerifies(t *testing.T) {
	m := metrics.New()
	tr := &Tracker{Server: "web1", Metrics: m}
	rule := config.ReloadRule{Volume: "letsencrypt", Path: "/live", Target: "/etc/letsencrypt", Signal: "SIGHUP", VerifyTLSPort: 443}
	task := Task{App: "haproxy", Rule: rule, ContainerID: "c1"}
	expiry := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pem1, _ := certPEM(t, "example.com", 1, expiry)
	srv := &fakeServer{t: t, files: map[string]string{"example.com-combined.pem": pem1}}
	srv.load()
	count := func(result string) float64 {
		return testutil.ToFloat64(metricsReload(m, "web1", "haproxy", result))
	}

	// First sight: the container serves what the files hold, so nothing is sent.
	tr.Run(t.Context(), srv.ops(), []Task{task})
	if len(srv.signals) != 0 || count(ResultSuccess) != 0 || count(ResultFailure) != 0 {
		t.Fatalf("first sight sent %v", srv.signals)
	}
	if got := testutil.ToFloat64(metricsExpiry(m, "web1", "example.com")); got != float64(expiry.Unix()) {
		t.Errorf("expiry metric %v", got)
	}

	// No change: nothing sent.
	tr.Run(t.Context(), srv.ops(), []Task{task})
	if len(srv.signals) != 0 {
		t.Fatalf("sent without a change: %v", srv.signals)
	}

	// A renewal: one signal, verified.
	expiry2 := expiry.Add(90 * 24 * time.Hour)
	pem2, _ := certPEM(t, "example.com", 2, expiry2)
	srv.files["example.com-combined.pem"] = pem2
	tr.Run(t.Context(), srv.ops(), []Task{task})
	if strings.Join(srv.signals, ",") != "c1 SIGHUP" || count(ResultSuccess) != 1 {
		t.Fatalf("after a renewal: signals %v, successes %v", srv.signals, count(ResultSuccess))
	}
	if got := testutil.ToFloat64(metricsExpiry(m, "web1", "example.com")); got != float64(expiry2.Unix()) {
		t.Errorf("expiry metric %v after the renewal", got)
	}

	// A reload that does not take is a failure, tried again on the next pass until it takes.
	pem3, _ := certPEM(t, "example.com", 3, expiry2)
	srv.files["example.com-combined.pem"] = pem3
	srv.broken = true
	tr.Run(t.Context(), srv.ops(), []Task{task})
	tr.Run(t.Context(), srv.ops(), []Task{task})
	if len(srv.signals) != 3 || count(ResultFailure) != 2 {
		t.Fatalf("a reload that does not take: signals %v, failures %v", srv.signals, count(ResultFailure))
	}
	srv.broken = false
	tr.Run(t.Context(), srv.ops(), []Task{task})
	tr.Run(t.Context(), srv.ops(), []Task{task})
	if len(srv.signals) != 4 || count(ResultSuccess) != 2 {
		t.Fatalf("after the fix: signals %v, successes %v", srv.signals, count(ResultSuccess))
	}

	// A new container read the files when it started: no signal.
	task.ContainerID = "c2"
	tr.Run(t.Context(), srv.ops(), []Task{task})
	if len(srv.signals) != 4 {
		t.Fatalf("a new container was signalled: %v", srv.signals)
	}

	// Files changed while bee2d did not look (a new bee2d, say): the container serves the old ones.
	pem4, _ := certPEM(t, "example.com", 4, expiry2)
	srv.files["example.com-combined.pem"] = pem4
	fresh := &Tracker{Server: "web1", Metrics: m}
	fresh.Run(t.Context(), srv.ops(), []Task{task})
	if len(srv.signals) != 5 || srv.served["example.com"] != "4" {
		t.Fatalf("stale certificates at first sight: signals %v, served %v", srv.signals, srv.served)
	}

	// Verification that cannot look counts the reload as unverified.
	pem5, _ := certPEM(t, "example.com", 5, expiry2)
	srv.files["example.com-combined.pem"] = pem5
	srv.verify = errors.New("no probe")
	fresh.Run(t.Context(), srv.ops(), []Task{task})
	if count(ResultUnverified) != 1 {
		t.Errorf("unverified: %v", count(ResultUnverified))
	}

	// A rule gone: its application's series go too.
	fresh.Run(t.Context(), srv.ops(), nil)
	if n := testutil.CollectAndCount(m.Registry(), "bee2_certificate_expiry_timestamp_seconds"); n != 0 {
		t.Errorf("%d expiry series left after the rule went", n)
	}
}

func TestTrackerWithoutVerify(t *testing.T) {
	tr := &Tracker{Server: "web1"}
	srv := &fakeServer{t: t, files: map[string]string{"a.conf": "one"}}
	task := Task{App: "mail", Rule: config.ReloadRule{Volume: "v", Path: "/live", Target: "/etc/letsencrypt", Signal: "SIGUSR1"}, ContainerID: "m1"}
	tr.Run(t.Context(), srv.ops(), []Task{task})
	srv.files["a.conf"] = "two"
	tr.Run(t.Context(), srv.ops(), []Task{task})
	tr.Run(t.Context(), srv.ops(), []Task{task})
	if strings.Join(srv.signals, ",") != "m1 SIGUSR1" {
		t.Errorf("signals %v; want one SIGUSR1 for one change", srv.signals)
	}
	// A container that is not running is left alone.
	srv.files["a.conf"] = "three"
	task.ContainerID = ""
	tr.Run(t.Context(), srv.ops(), []Task{task})
	if len(srv.signals) != 1 {
		t.Errorf("a stopped container was signalled")
	}
}

// TestProbe runs the probe against a TLS server that serves two certificates by SNI.
func TestProbe(t *testing.T) {
	_, a := certPEM(t, "a.example", 0xa1, time.Now().Add(time.Hour))
	_, b := certPEM(t, "b.example", 0xb2, time.Now().Add(time.Hour))
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { c.(*tls.Conn).Handshake(); c.Close() }()
		}
	}()
	addr := ln.Addr().String()
	var out, errOut bytes.Buffer
	if code := ProbeMain([]string{addr, "5", "a.example=A1", "b.example=b2"}, &out, &errOut); code != 0 {
		t.Fatalf("probe exited %d: %s%s", code, out.String(), errOut.String())
	}
	if got := parseProbe(out.String()); got["a.example"] != "a1" || got["b.example"] != "b2" {
		t.Errorf("probe said %q", out.String())
	}
	out.Reset()
	start := time.Now()
	if code := ProbeMain([]string{addr, "1", "b.example=ffff"}, &out, &errOut); code != 1 || !strings.Contains(out.String(), "b.example b2") {
		t.Errorf("a wrong serial: exit %d, %q", code, out.String())
	}
	if took := time.Since(start); took < time.Second || took > 10*time.Second {
		t.Errorf("a wrong serial was waited for %v; want about the 1s given", took)
	}
	out.Reset()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closed.Close()
	if code := ProbeMain([]string{closed.Addr().String(), "0", "a.example=a1"}, &out, &errOut); code != 1 || !strings.Contains(out.String(), "a.example error:") {
		t.Errorf("nothing listening: exit %d, %q", code, out.String())
	}
	if code := ProbeMain([]string{addr}, &out, &errOut); code != 2 {
		t.Errorf("bad arguments: exit %d", code)
	}
}
