package engine

import (
	"errors"
	"fmt"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
)

func TestContainerExitCode(t *testing.T) {
	for _, tc := range []struct {
		state, status string
		code          int
		ok            bool
	}{
		{"exited", "Exited (0) 3 seconds ago", 0, true},
		{"exited", "Exited (3) 2 minutes ago", 3, true},
		{"exited", "Exited (-1) 1 second ago", -1, true},
		{"exited", "Up 2 minutes", 0, false},
		{"running", "Exited (1) 2 minutes ago", 0, false},
	} {
		c := Container{State: tc.state, Status: tc.status}
		if code, ok := c.ExitCode(); code != tc.code || ok != tc.ok {
			t.Errorf("%s %q: ExitCode() = %d, %v; want %d, %v", tc.state, tc.status, code, ok, tc.code, tc.ok)
		}
	}
}

func TestContainerRunning(t *testing.T) {
	for state, want := range map[string]bool{"running": true, "restarting": true, "created": false, "paused": false, "exited": false} {
		if got := (Container{State: state}).Running(); got != want {
			t.Errorf("state %s: Running() = %v, want %v", state, got, want)
		}
	}
}

func TestEndpointEqual(t *testing.T) {
	base := Endpoint{Host: "tcp://web1:2376", TLS: &TLSFiles{CA: "/c/ca.pem", Cert: "/c/cert.pem", Key: "/c/key.pem"}, ReadTimeout: time.Minute}
	same := base
	same.TLS = &TLSFiles{CA: "/c/ca.pem", Cert: "/c/cert.pem", Key: "/c/key.pem"} // another pointer, same files
	if !base.Equal(same) {
		t.Errorf("endpoints with equal TLS files differ")
	}
	for name, change := range map[string]func(*Endpoint){
		"host":         func(e *Endpoint) { e.Host = "tcp://web2:2376" },
		"tls file":     func(e *Endpoint) { e.TLS = &TLSFiles{CA: "/c/other.pem", Cert: "/c/cert.pem", Key: "/c/key.pem"} },
		"no tls":       func(e *Endpoint) { e.TLS = nil },
		"insecure":     func(e *Endpoint) { e.Insecure = true },
		"ssh":          func(e *Endpoint) { e.SSH = &SSHFiles{} },
		"read timeout": func(e *Endpoint) { e.ReadTimeout = time.Hour },
	} {
		other := base
		change(&other)
		if base.Equal(other) || other.Equal(base) {
			t.Errorf("a different %s compares equal", name)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	notFound := fmt.Errorf("remove container web: %w", cerrdefs.ErrNotFound)
	conflict := fmt.Errorf("create network bee2: %w", cerrdefs.ErrConflict)
	other := errors.New("connection refused")
	for _, tc := range []struct {
		err                 error
		isNotFound, isClash bool
	}{
		{notFound, true, false},
		{conflict, false, true},
		{other, false, false},
		{nil, false, false},
	} {
		if got := IsNotFound(tc.err); got != tc.isNotFound {
			t.Errorf("IsNotFound(%v) = %v", tc.err, got)
		}
		if got := IsConflict(tc.err); got != tc.isClash {
			t.Errorf("IsConflict(%v) = %v", tc.err, got)
		}
	}
}

func TestHealthFromStatus(t *testing.T) {
	for status, want := range map[string]string{
		"Up 3 minutes (healthy)":          HealthHealthy,
		"Up 2 seconds (health: starting)": HealthStarting,
		"Up 1 hour (unhealthy)":           HealthUnhealthy,
		"Up 3 minutes":                    "",
		"Exited (0) 2 minutes ago":        "",
		"Up 3 minutes (healthy) extra":    "",
	} {
		if got := HealthFromStatus(status); got != want {
			t.Errorf("HealthFromStatus(%q) = %q, want %q", status, got, want)
		}
	}
	if (Container{State: "running", Health: HealthStarting}).Ready() || !(Container{State: "running"}).Ready() ||
		(Container{State: "exited"}).Ready() {
		t.Error("Ready: running and healthy, or running without a check")
	}
}

// The gate's bound is the start period, then retries probes one interval apart, one more interval and a
// probe's timeout; zero values are the engine's defaults.
func TestHealthVerdict(t *testing.T) {
	if got, want := (HealthSpec{}).Verdict(), 4*30*time.Second+30*time.Second; got != want {
		t.Errorf("defaults: %s, want %s", got, want)
	}
	h := HealthSpec{Interval: time.Second, Timeout: 2 * time.Second, StartPeriod: 10 * time.Second, Retries: 2}
	if got, want := h.Verdict(), 10*time.Second+3*time.Second+2*time.Second; got != want {
		t.Errorf("%+v: %s, want %s", h, got, want)
	}
	if !(&HealthSpec{Test: []string{"NONE"}}).Disabled() || (&HealthSpec{Test: []string{"CMD", "x"}}).Disabled() {
		t.Error("Disabled")
	}
}
