package testdocker

import (
	"testing"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

// WebAppProbe is the health check test of a WebApp container in exec form (the image has no shell):
// settings write it as `test: ["/app", "-probe", "http://127.0.0.1:8080/health"]`.
var WebAppProbe = []string{"/app", "-probe", "http://127.0.0.1:8080/health"}

// WebApp returns the tag of an image running WebAppSource.
func WebApp(t testing.TB, cli *dockerx.Client) string {
	t.Helper()
	return BuildGoImage(t, cli, "webapp", WebAppSource)
}

// WebAppSource is a web application for tests of deploys: a test tells by the answer which version served
// a request, and sets through the environment whether and when the version is healthy. It serves HTTP on
// :8080 (or $PORT):
//
//	GET  /              $VERSION
//	GET  /slow?d=DUR    $VERSION after DUR (a request still in flight when the container is told to stop)
//	GET  /health        200 "healthy" or 503 "unhealthy", as $HEALTHY says
//	POST /health/fail   unhealthy from now on, whatever $HEALTHY says
//	POST /health/ok     healthy from now on
//
// HEALTHY is yes (the default), no, after:DUR (unhealthy for DUR from the start, then healthy) or until:DUR
// (healthy for DUR from the start, then unhealthy). On SIGTERM or SIGINT it stops accepting connections,
// finishes the requests in flight (http.Server.Shutdown, for up to 30 s) and exits 0.
//
// With the arguments -probe URL it is its own health check instead: it exits 0 if a GET of URL answers 200
// within 2 s, else prints why and exits 1.
const WebAppSource = `package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) == 3 && os.Args[1] == "-probe" {
		os.Exit(probe(os.Args[2]))
	}
	if len(os.Args) > 1 {
		fmt.Fprintln(os.Stderr, "usage: app [-probe URL]")
		os.Exit(2)
	}
	healthy, err := healthRule(os.Getenv("HEALTHY"), time.Now())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	// override is 0 while HEALTHY decides, 1 after POST /health/ok, 2 after POST /health/fail.
	var override atomic.Int32
	version := os.Getenv("VERSION")

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, version)
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil {
			http.Error(w, "d: "+err.Error(), http.StatusBadRequest)
			return
		}
		time.Sleep(d)
		fmt.Fprint(w, version)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		ok := healthy(time.Now())
		switch override.Load() {
		case 1:
			ok = true
		case 2:
			ok = false
		}
		if !ok {
			http.Error(w, "unhealthy", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "healthy")
	})
	set := func(v int32, word string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPost {
				http.Error(w, "POST only", http.StatusMethodNotAllowed)
				return
			}
			override.Store(v)
			fmt.Printf("version %s: %s from now on\n", version, word)
			fmt.Fprintln(w, word)
		}
	}
	mux.HandleFunc("/health/ok", set(1, "healthy"))
	mux.HandleFunc("/health/fail", set(2, "unhealthy"))

	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.ListenAndServe() }()
	fmt.Printf("version %s: serving on :%s, HEALTHY=%q\n", version, port, os.Getenv("HEALTHY"))

	// As PID 1 the program gets no default handling of signals: without this it would ignore SIGTERM.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	select {
	case err := <-served:
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	case s := <-sig:
		fmt.Printf("version %s: %v, finishing the requests in flight\n", version, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "shutdown:", err)
		os.Exit(1)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
	}
	fmt.Printf("version %s: stopped\n", version)
}

// healthRule reads HEALTHY into a function of the time.
func healthRule(rule string, start time.Time) (func(time.Time) bool, error) {
	switch {
	case rule == "" || rule == "yes":
		return func(time.Time) bool { return true }, nil
	case rule == "no":
		return func(time.Time) bool { return false }, nil
	}
	word, dur, ok := strings.Cut(rule, ":")
	d, err := time.ParseDuration(dur)
	if !ok || err != nil || (word != "after" && word != "until") {
		return nil, fmt.Errorf("HEALTHY=%q: want yes, no, after:DURATION or until:DURATION", rule)
	}
	at := start.Add(d)
	if word == "after" {
		return func(now time.Time) bool { return !now.Before(at) }, nil
	}
	return func(now time.Time) bool { return now.Before(at) }, nil
}

func probe(url string) int {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		fmt.Println(url + ": " + resp.Status)
		return 1
	}
	return 0
}
`
