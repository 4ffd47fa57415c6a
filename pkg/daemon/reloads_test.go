package daemon

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

// reloadEngine is a fake engine whose containers hold the files of one watched directory, and that records
// the signals it is sent. It has no probes: the rule it serves does not verify.
type reloadEngine struct {
	*fakeEngine
	fmu     sync.Mutex
	files   map[string]string // below the watched directory
	reads   int
	signals []string
}

func (e *reloadEngine) CopyFromContainer(_ context.Context, _, dir string) (io.ReadCloser, error) {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	e.reads++
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	base := dir[len("/etc/certs/"):]
	tw.WriteHeader(&tar.Header{Name: base + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	for _, name := range slices.Sorted(maps.Keys(e.files)) {
		tw.WriteHeader(&tar.Header{Name: base + "/" + name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(e.files[name]))})
		tw.Write([]byte(e.files[name]))
	}
	tw.Close()
	return io.NopCloser(&buf), nil
}

func (e *reloadEngine) SignalContainer(_ context.Context, id, signal string) error {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	e.signals = append(e.signals, signal+" "+id)
	return nil
}

func (e *reloadEngine) Platform(context.Context) (dockerx.Platform, error) {
	return dockerx.Platform{OS: "linux", Arch: "amd64"}, nil
}
func (e *reloadEngine) BuildImageFromTar(context.Context, io.Reader, dockerx.BuildRequest) (string, error) {
	return "", nil
}
func (e *reloadEngine) CreateProbe(context.Context, dockerx.ProbeSpec) (string, error) {
	return "", nil
}
func (e *reloadEngine) RunHelper(context.Context, string, io.Reader, io.Writer, io.Writer) (int, error) {
	return 0, nil
}

func (e *reloadEngine) write(name, content string) {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	e.files[name] = content
}

func (e *reloadEngine) seen() (reads int, signals []string) {
	e.fmu.Lock()
	defer e.fmu.Unlock()
	return e.reads, slices.Clone(e.signals)
}

const proxyWithReload = `
servers:
  web1: {}
docker:
  prefix: bee2
applications:
  proxy:
    server: web1
    image: good:1
    volumes: ["certs:/etc/certs"]
    reload:
      - {watch: "certs:/live", interval: 15s}
`

// Files written into a volume raise no Docker event: the reload task looks at its directory every
// interval by itself, so a new certificate is reloaded within the interval, with no pass and no list
// of the other resources.
func TestReloadLooksEveryInterval(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := &reloadEngine{fakeEngine: newFakeEngine(), files: map[string]string{"a.pem": "one"}}
		conn := &connector{eng: eng.fakeEngine}
		_, w, _ := testDaemon(t, proxyWithReload, conn, nil)
		w.d.Connect = func(context.Context, dockerx.Endpoint) (Conn, error) { return eng, nil }
		go w.run(t.Context())
		w.kick()
		synctest.Wait()
		proxy, ok := eng.byName("bee2-app-proxy")
		if !ok || proxy.State != "running" {
			t.Fatalf("the proxy was not started: %+v", proxy)
		}
		reads, signals := eng.seen()
		if reads != 1 || len(signals) != 0 {
			t.Fatalf("after the first pass: %d reads, signals %v; want 1 read and none", reads, signals)
		}
		passes, _, _ := w.state()

		time.Sleep(10 * time.Second)
		eng.write("a.pem", "two") // CertBot renews
		synctest.Wait()
		if _, signals := eng.seen(); len(signals) != 0 {
			t.Fatalf("signalled before the interval came: %v", signals)
		}
		time.Sleep(5 * time.Second)
		synctest.Wait()
		reads, signals = eng.seen()
		if want := []string{"SIGHUP " + proxy.ID}; !slices.Equal(signals, want) || reads != 2 {
			t.Errorf("15s after the first look: %d reads, signals %v; want 2 reads and %v", reads, signals, want)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		reads, signals = eng.seen()
		if len(signals) != 1 || reads != 6 {
			t.Errorf("a minute later: %d reads (want 6, one every 15s), %d signals (want 1: nothing changed)", reads, len(signals))
		}
		if now, _, _ := w.state(); now != passes {
			t.Errorf("the looks ran %d passes; they need none", now-passes)
		}
		w.cancel()
		synctest.Wait()
	})
}
