package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "from backend "+r.URL.Path+" for "+r.Header.Get("X-Forwarded-Host"))
	}))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	front := httptest.NewServer(handler(target))
	defer front.Close()

	for _, tc := range []struct {
		path, want string
		code       int
	}{
		{"/index.html", "from backend /index.html for " + strings.TrimPrefix(front.URL, "http://"), http.StatusOK},
		{"/healthz", "ok\n", http.StatusOK},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp, err := http.Get(front.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.code || string(body) != tc.want {
				t.Fatalf("GET %s = %d %q, want %d %q", tc.path, resp.StatusCode, body, tc.code, tc.want)
			}
			if got := resp.Header.Get("X-Bee2ex-Upstream"); tc.path != "/healthz" && got != target.Host {
				t.Errorf("X-Bee2ex-Upstream = %q, want %q", got, target.Host)
			}
		})
	}
}

func TestUnreachableUpstream(t *testing.T) {
	dead := httptest.NewServer(http.NotFoundHandler())
	target, _ := url.Parse(dead.URL)
	dead.Close()
	rec := httptest.NewRecorder()
	handler(target).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), target.Host) {
		t.Fatalf("GET / with the upstream down = %d %q, want 502 naming %s", rec.Code, rec.Body.String(), target.Host)
	}
}
