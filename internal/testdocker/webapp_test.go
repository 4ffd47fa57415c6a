package testdocker_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/engine"
)

// The web application answers with its version, is healthy as HEALTHY says and as POST /health/fail and
// /health/ok set it, reaching the engine's verdict through its own -probe, and finishes a request in flight
// when it is stopped.
func TestWebApp(t *testing.T) {
	cli := testdocker.Require(t)
	image := testdocker.WebApp(t, cli)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	check := &engine.HealthSpec{Test: append([]string{"CMD"}, testdocker.WebAppProbe...),
		Interval: 100 * time.Millisecond, Timeout: 3 * time.Second, Retries: 2}

	run := func(t *testing.T, name string, env ...string) (id, base string) {
		t.Helper()
		port := freePort(t)
		id, err := cli.CreateContainer(t.Context(), dockerx.ContainerSpec{Name: prefix + "-" + name, Image: image, Env: env,
			Ports: []dockerx.PortSpec{{HostIP: "127.0.0.1", HostPort: port, ContainerPort: 8080}}, Health: check})
		if err != nil {
			t.Fatal(err)
		}
		if err := cli.StartContainer(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		return id, fmt.Sprintf("http://127.0.0.1:%d", port)
	}
	// verdict waits until the engine's health of the container is want.
	verdict := func(t *testing.T, id, want string) {
		t.Helper()
		var h engine.Health
		for range 600 {
			var err error
			if h, err = cli.ContainerHealth(t.Context(), id); err != nil {
				t.Fatal(err)
			}
			if h.Status == want || !h.Running {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if h.Status != want {
			t.Fatalf("health %q (running %v, last probe %q), want %q\n%s", h.Status, h.Running, h.Output, want, testdocker.Logs("", id))
		}
	}

	t.Run("healthy after a while, then failed and healed by hand", func(t *testing.T) {
		id, base := run(t, "later", "VERSION=v7", "HEALTHY=after:1s")
		verdict(t, id, engine.HealthHealthy)
		if code, body := get(t, base+"/"); code != 200 || body != "v7" {
			t.Errorf("GET / = %d %q, want 200 v7", code, body)
		}
		post(t, base+"/health/fail")
		verdict(t, id, engine.HealthUnhealthy)
		if code, _ := get(t, base+"/health"); code != http.StatusServiceUnavailable {
			t.Errorf("GET /health = %d after /health/fail", code)
		}
		post(t, base+"/health/ok")
		verdict(t, id, engine.HealthHealthy)
	})

	t.Run("never healthy", func(t *testing.T) {
		id, base := run(t, "never", "VERSION=bad", "HEALTHY=no")
		verdict(t, id, engine.HealthUnhealthy)
		if code, body := get(t, base+"/"); code != 200 || body != "bad" {
			t.Errorf("GET / = %d %q: an unhealthy version still answers", code, body)
		}
	})

	t.Run("healthy until a time", func(t *testing.T) {
		id, _ := run(t, "until", "VERSION=v1", "HEALTHY=until:2s")
		verdict(t, id, engine.HealthHealthy)
		verdict(t, id, engine.HealthUnhealthy)
	})

	t.Run("a stop finishes the request in flight", func(t *testing.T) {
		id, base := run(t, "stop", "VERSION=v2")
		if code, _ := get(t, base+"/health"); code != 200 {
			t.Fatalf("GET /health = %d", code)
		}
		type answer struct {
			code int
			body string
		}
		done := make(chan answer, 1)
		go func() {
			code, body := get(t, base+"/slow?d=1500ms")
			done <- answer{code, body}
		}()
		time.Sleep(300 * time.Millisecond) // the request is in flight
		if err := cli.StopContainer(t.Context(), id, 20*time.Second); err != nil {
			t.Fatal(err)
		}
		if a := <-done; a.code != 200 || a.body != "v2" {
			t.Errorf("the request in flight got %d %q", a.code, a.body)
		}
		c, err := testdocker.Inspect("", id)
		if err != nil {
			t.Fatal(err)
		}
		if c.State.Running || c.State.ExitCode != 0 {
			t.Errorf("after the stop: running %v, exit %d\n%s", c.State.Running, c.State.ExitCode, testdocker.Logs("", id))
		}
		if logs := testdocker.Logs("", id); !strings.Contains(logs, "version v2: stopped") {
			t.Errorf("no graceful stop in the log:\n%s", logs)
		}
	})
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// get retries while the published port does not answer yet (the container is starting).
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	var err error
	for range 100 {
		var resp *http.Response
		if resp, err = http.Get(url); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("GET %s: %v", url, err)
	return 0, ""
}

func post(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Post(url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("POST %s: %s", url, resp.Status)
	}
}
