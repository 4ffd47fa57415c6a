// Command front is the example stack's entry point: an HTTP reverse proxy on a published port that forwards every
// request to the static server, which it reaches by container name on the network bee2d gives the server.
//
// Environment: PORT (default 8480), BACKEND (container name, required; settings write it as $static),
// BACKEND_PORT (default 8080).
package main

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("front: ")
	backend := os.Getenv("BACKEND")
	if backend == "" {
		log.Fatal("BACKEND is not set (the static server's container name)")
	}
	target := &url.URL{Scheme: "http", Host: net.JoinHostPort(backend, getenv("BACKEND_PORT", "8080"))}
	addr := ":" + getenv("PORT", "8480")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := serve(ctx, addr, handler(target)); err != nil {
		log.Fatal(err)
	}
}

// handler answers /healthz itself and proxies everything else to target. Each response names the upstream, and
// a failure to reach it is a 502 that says which name did not answer.
func handler(target *url.URL) http.Handler {
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
			r.SetXForwarded()
		},
		ModifyResponse: func(resp *http.Response) error {
			resp.Header.Set("X-Bee2ex-Upstream", target.Host)
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Printf("upstream %s: %v", target.Host, err)
			http.Error(w, fmt.Sprintf("bee2ex front: upstream %s unreachable: %v", target.Host, err), http.StatusBadGateway)
		},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("/", proxy)
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
