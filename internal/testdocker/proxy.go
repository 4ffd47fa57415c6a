package testdocker

import (
	"bytes"
	"context"
	"io"
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

// Proxy sits between a client and an engine on a unix socket of its own and records every API request,
// so a test can assert which calls a command made (for example that a no-change apply writes nothing and
// lists containers once). It can also inject faults at a precise point of a conversation: hold requests
// until the test lets them go (to kill the client while a call is pending), and cut the event streams.
type Proxy struct {
	// Host is the proxy's address for DOCKER_HOST or a settings file's docker.host.
	Host string

	mu       sync.Mutex
	requests []string
	holds    []*Hold
	// cutEvents refuses new event streams; streams holds the cancel of each one open.
	cutEvents bool
	streams   map[*http.Request]context.CancelFunc
}

var apiVersion = regexp.MustCompile(`^/v[0-9.]+`)

// StartProxy starts a recording proxy to the engine at /var/run/docker.sock; it stops with the test.
func StartProxy(t testing.TB) *Proxy {
	t.Helper()
	return StartProxyTo(t, "unix:///var/run/docker.sock")
}

// StartProxyTo starts a recording proxy to the engine on the unix socket host (unix:///path), such as an
// Engine's Host; it stops with the test.
func StartProxyTo(t testing.TB, host string) *Proxy {
	t.Helper()
	target, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		t.Fatalf("testdocker.StartProxyTo: %q is not a unix socket", host)
	}
	ln, sock := ListenUnix(t, "bee2d-proxy", "docker.sock")
	p := &Proxy{Host: "unix://" + sock, streams: map[*http.Request]context.CancelFunc{}}
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "http", Host: "docker"})
		},
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", target)
			},
		},
		FlushInterval: -1,
		// An engine that is down ends the connection, as a dead engine's socket or host would, rather
		// than answer 502 as a live gateway would.
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := apiVersion.ReplaceAllString(r.URL.Path, "")
		req := r.Method + " " + path
		p.mu.Lock()
		p.requests = append(p.requests, req)
		var hold *Hold
		for _, h := range p.holds {
			if h.matches(r.Method, path, r.URL.RawQuery) {
				hold = h
				break
			}
		}
		p.mu.Unlock()
		if hold != nil && r.Body != nil {
			// The server notices a client that goes away only once the request's body is read: read it
			// before holding, and send the copy on.
			body, err := io.ReadAll(r.Body)
			if err != nil {
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		if hold != nil && !hold.wait(r.Context(), req) {
			// The client went away while held: the engine never hears of the call, as if the client had
			// died just before making it.
			return
		}
		if r.Method == http.MethodGet && path == "/events" {
			p.serveEvents(w, r, rp)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		p.mu.Lock()
		for _, h := range p.holds {
			h.release()
		}
		p.holds = nil
		p.mu.Unlock()
		srv.Close()
	})
	return p
}

// ListenUnix listens on a unix socket called name in a new temporary directory named after pattern, removed
// with the test, and returns the socket's path. Unix socket paths are short; t.TempDir can be too long.
func ListenUnix(t testing.TB, pattern, name string) (net.Listener, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, name)
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	return ln, sock
}

// serveEvents proxies one event stream, unless streams are cut; CutEvents ends it.
func (p *Proxy) serveEvents(w http.ResponseWriter, r *http.Request, rp *httputil.ReverseProxy) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	p.mu.Lock()
	if p.cutEvents {
		p.mu.Unlock()
		http.Error(w, "event streams cut by the test", http.StatusServiceUnavailable)
		return
	}
	r = r.WithContext(ctx)
	p.streams[r] = cancel
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.streams, r)
		p.mu.Unlock()
	}()
	// Cancelling the upstream request makes the reverse proxy abort the response mid-stream: the client
	// sees its connection end, as when a network path breaks.
	rp.ServeHTTP(w, r)
}

// CutEvents ends every event stream in progress and refuses new ones (503) until RestoreEvents; every
// other call goes through as before.
func (p *Proxy) CutEvents() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutEvents = true
	for _, cancel := range p.streams {
		cancel()
	}
}

// RestoreEvents lets event streams through again.
func (p *Proxy) RestoreEvents() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutEvents = false
}

// EventStreams is how many event streams are open through the proxy.
func (p *Proxy) EventStreams() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.streams)
}

// Hold is a set of requests the proxy keeps from the engine until the test releases them.
type Hold struct {
	method string
	path   *regexp.Regexp
	// query, if set, must match the request's raw query too.
	query *regexp.Regexp
	// held receives each request held, as "METHOD /path"; dropped each one whose client went away.
	held, dropped chan string
	released      chan struct{}
	once          sync.Once
}

// Hold makes the proxy keep every request with this method whose path (without the API version) matches
// the regular expression pathPattern, anchored at both ends, from reaching the engine until Release. A
// held request whose client goes away is dropped: the engine never sees it.
func (p *Proxy) Hold(method, pathPattern string) *Hold {
	h := &Hold{method: method, path: regexp.MustCompile("^(?:" + pathPattern + ")$"),
		held: make(chan string, 100), dropped: make(chan string, 100), released: make(chan struct{})}
	p.mu.Lock()
	p.holds = append(p.holds, h)
	p.mu.Unlock()
	return h
}

// Held receives each request as it is held, as "METHOD /path".
func (h *Hold) Held() <-chan string { return h.held }

// Dropped receives each held request whose client went away, which the engine will never see. A test
// that kills a client waits for it before Release: until the proxy has noticed, Release would still let
// the request through.
func (h *Hold) Dropped() <-chan string { return h.dropped }

// Release lets the held requests and any later match go on to the engine.
func (p *Proxy) Release(h *Hold) {
	p.mu.Lock()
	p.holds = removeHold(p.holds, h)
	p.mu.Unlock()
	h.release()
}

func (h *Hold) release() { h.once.Do(func() { close(h.released) }) }

func (h *Hold) matches(method, path, query string) bool {
	return method == h.method && h.path.MatchString(path) && (h.query == nil || h.query.MatchString(query))
}

// HoldQuery is Hold for the requests whose raw query (still URL-encoded) also matches queryPattern,
// unanchored: a rename to one name and not another, say.
func (p *Proxy) HoldQuery(method, pathPattern, queryPattern string) *Hold {
	h := p.Hold(method, pathPattern)
	p.mu.Lock()
	h.query = regexp.MustCompile(queryPattern)
	p.mu.Unlock()
	return h
}

// wait holds a request until release, or until its client goes away (false).
func (h *Hold) wait(ctx context.Context, req string) bool {
	select {
	case h.held <- req:
	default: // nobody reads: the request is held all the same
	}
	select {
	case <-h.released:
		return true
	case <-ctx.Done():
		select {
		case h.dropped <- req:
		default:
		}
		return false
	}
}

func removeHold(hs []*Hold, h *Hold) []*Hold {
	out := hs[:0]
	for _, x := range hs {
		if x != h {
			out = append(out, x)
		}
	}
	return out
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
