package testdocker

import (
	"context"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// Proxy sits between a client and the local engine on a unix socket of its own and records every API
// request, so a test can assert which calls a command made (for example that a no-change apply writes
// nothing and lists containers once).
type Proxy struct {
	// Host is the proxy's address for DOCKER_HOST or a settings file's docker.host.
	Host string

	mu       sync.Mutex
	requests []string
}

var apiVersion = regexp.MustCompile(`^/v[0-9.]+`)

// StartProxy starts a recording proxy to the engine at /var/run/docker.sock; it stops with the test.
func StartProxy(t testing.TB) *Proxy {
	t.Helper()
	// Unix socket paths are short; t.TempDir can be too long.
	dir, err := os.MkdirTemp("", "bee2d-proxy")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Host: "unix://" + sock}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: "docker"})
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", "/var/run/docker.sock")
			},
		},
		FlushInterval: -1,
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.requests = append(p.requests, r.Method+" "+apiVersion.ReplaceAllString(r.URL.Path, ""))
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return p
}

// Requests returns the requests seen so far as "METHOD /path" (API version removed), and forgets them.
func (p *Proxy) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.requests
	p.requests = nil
	return r
}

// Writes filters requests down to those that can change the engine: anything but GET and HEAD, except
// the ping, which the client may send with HEAD or GET.
func Writes(reqs []string) []string {
	var out []string
	for _, r := range reqs {
		if strings.HasPrefix(r, "GET ") || strings.HasPrefix(r, "HEAD ") {
			continue
		}
		out = append(out, r)
	}
	return out
}
