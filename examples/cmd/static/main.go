// Command static is the example stack's file server: it serves one directory (a named volume) over HTTP and,
// when asked, seeds that directory with an index page the first time it finds it empty.
//
// Environment: ROOT (default /www), PORT (default 8080), SEED (text for the seeded page; empty: no seeding).
package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io/fs"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("static: ")
	root := getenv("ROOT", "/www")
	addr := ":" + getenv("PORT", "8080")

	if text := os.Getenv("SEED"); text != "" {
		seeded, err := seed(root, text, time.Now())
		switch {
		case err != nil:
			// A read-only mount is a valid setup: serve what is there.
			log.Printf("not seeded: %v", err)
		case seeded:
			log.Printf("seeded %s", filepath.Join(root, "index.html"))
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := serve(ctx, addr, handler(root)); err != nil {
		log.Fatal(err)
	}
}

// seed writes root/index.html unless it exists, and reports whether it wrote it. The page records when it was
// written, so a page that outlives its container shows that it lives in the volume, not in the image.
func seed(root, text string, now time.Time) (bool, error) {
	index := filepath.Join(root, "index.html")
	if _, err := os.Stat(index); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, err
	}
	host, _ := os.Hostname()
	page := fmt.Sprintf(`<!doctype html>
<title>bee2ex</title>
<h1>%s</h1>
<p>This page lives in the volume mounted at %s. Container %s wrote it there at %s;
a later container that finds it keeps it, so this time stays the same across recreates.</p>
`, html.EscapeString(text), html.EscapeString(root), html.EscapeString(host), now.UTC().Format(time.RFC3339))

	// Temp file, fsync, rename: a crash never leaves a half page under the final name.
	tmp, err := os.CreateTemp(root, ".index-*.tmp")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(page); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, err
	}
	if err := tmp.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp.Name(), index); err != nil {
		return false, err
	}
	return true, nil
}

// handler serves root, answers /healthz, and names the peer it saw so that a response through the front shows
// the front's address on the shared network.
func handler(root string) http.Handler {
	files := http.FileServer(http.Dir(root))
	host, _ := os.Hostname()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s from %s", r.Method, r.URL.Path, r.RemoteAddr)
		w.Header().Set("X-Bee2ex-Static", host)
		w.Header().Set("X-Bee2ex-Peer", r.RemoteAddr)
		if r.URL.Path == "/" {
			if _, err := os.Stat(filepath.Join(root, "index.html")); errors.Is(err, fs.ErrNotExist) {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				fmt.Fprintf(w, "bee2ex static: %s has no index.html yet (empty volume); set SEED or copy files into it\n", root)
				return
			}
		}
		files.ServeHTTP(w, r)
	})
	return mux
}

// serve runs an HTTP server until ctx ends, then shuts it down within five seconds.
func serve(ctx context.Context, addr string, h http.Handler) error {
	srv := &http.Server{Addr: addr, Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("listening on %s", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return err
	}
	log.Printf("stopped")
	return nil
}

func getenv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
