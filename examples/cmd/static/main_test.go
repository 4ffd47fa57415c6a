package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	body, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(body)
}

func TestEmptyVolumeAnswers(t *testing.T) {
	code, body := get(t, handler(t.TempDir()), "/")
	if code != http.StatusOK || !strings.Contains(body, "empty volume") {
		t.Fatalf("GET / on an empty root = %d %q, want 200 and a note about the empty volume", code, body)
	}
}

func TestSeedOnceThenServe(t *testing.T) {
	root := t.TempDir()
	first := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for i, tc := range []struct {
		at   time.Time
		want bool
	}{{first, true}, {first.Add(time.Hour), false}} {
		seeded, err := seed(root, "Hello <volume>", tc.at)
		if err != nil || seeded != tc.want {
			t.Fatalf("seed #%d = %v, %v; want %v, nil", i+1, seeded, err, tc.want)
		}
	}
	code, body := get(t, handler(root), "/")
	if code != http.StatusOK || !strings.Contains(body, "Hello &lt;volume&gt;") || !strings.Contains(body, "2026-01-02T03:04:05Z") {
		t.Fatalf("GET / = %d %q, want the first seeded page", code, body)
	}
	entries, _ := os.ReadDir(root)
	if len(entries) != 1 {
		t.Fatalf("root holds %d entries, want only index.html", len(entries))
	}
}

func TestSeedUnwritableRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "missing")
	if seeded, err := seed(root, "x", time.Now()); err == nil || seeded {
		t.Fatalf("seed into a missing directory = %v, %v; want an error", seeded, err)
	}
}

func TestHealthz(t *testing.T) {
	if code, body := get(t, handler(t.TempDir()), "/healthz"); code != http.StatusOK || body != "ok\n" {
		t.Fatalf("GET /healthz = %d %q", code, body)
	}
}
