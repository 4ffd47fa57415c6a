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
