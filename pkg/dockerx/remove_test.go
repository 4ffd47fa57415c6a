package dockerx

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeEngine answers the ping and a container's removal: the first `failures` answers fail, as Docker 20.10 does
// when it cannot delete a container's directory, then the removal succeeds.
type fakeEngine struct {
	mu       sync.Mutex
	failures int
	removes  int
}

func (f *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", "1.41")
	switch {
	case strings.HasSuffix(r.URL.Path, "/_ping"):
		w.Write([]byte("OK"))
	case r.Method == http.MethodDelete && strings.Contains(r.URL.Path, "/containers/"):
		f.mu.Lock()
		f.removes++
		fail := f.removes <= f.failures
		f.mu.Unlock()
		if fail {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"message":"unable to remove filesystem for 0123abcd: unlinkat /var/lib/docker/containers/0123abcd: directory not empty"}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		http.NotFound(w, r)
	}
}

func connectFake(t *testing.T, f *fakeEngine) (c *Client) {
	t.Helper()
	// Not t.TempDir: a unix socket's path is short. (internal/testdocker imports this package.)
	dir, err := os.MkdirTemp("", "bee2d-fake-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: f}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err = Connect(context.Background(), Endpoint{Host: "unix://" + sock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRemoveContainerRetriesTheEngineFilesystemRace(t *testing.T) {
	defer func(d time.Duration) { removeRetry = d }(removeRetry)
	removeRetry = time.Millisecond
	for _, tc := range []struct {
		failures, removes int
		ok                bool
	}{
		{failures: 0, removes: 1, ok: true},
		{failures: 2, removes: 3, ok: true},
		// Three tries after the first, then the engine's error is returned.
		{failures: 10, removes: 4, ok: false},
	} {
		f := &fakeEngine{failures: tc.failures}
		err := connectFake(t, f).RemoveContainer(context.Background(), "0123abcd")
		if (err == nil) != tc.ok {
			t.Errorf("%d failures: err = %v, want ok %v", tc.failures, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "remove container 0123abcd") {
			t.Errorf("%d failures: the error does not name the container: %v", tc.failures, err)
		}
		if f.removes != tc.removes {
			t.Errorf("%d failures: %d removal calls, want %d", tc.failures, f.removes, tc.removes)
		}
	}
}
