package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// runDaemon starts `bee2d daemon` in process and returns its metrics address and log; it stops with the
// test.
func runDaemon(t *testing.T, settings string, extra ...string) (string, *lockedBuffer) {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	logs := &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	args := append([]string{"daemon", "-c", settings, "--listen", addr, "--resync", "1h", "--debounce", "50ms", "--log-level", "debug"}, extra...)
	go func() { done <- run(ctx, args, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("daemon exited %d\n%s", code, logs)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("daemon did not stop")
		}
	})
	return addr, logs
}

// metric reads one sample from /metrics; ok is false when the series is absent.
func metric(t *testing.T, addr, series string) (float64, bool) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if name, value, ok := strings.Cut(line, " "); ok && name == series {
			v, err := strconv.ParseFloat(value, 64)
			return v, err == nil
		}
	}
	return 0, false
}

// waitUntil polls cond until it holds or a generous deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out waiting until %s", what)
}

func (st *stack) served() string {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", st.port))
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func TestDaemonRunsJobsOnCommitsAndSchedules(t *testing.T) {
	st, repo := newJobStack(t)
	st.write(strings.Replace(st.read(), "    branch: main\n", "    branch: main\n    poll: 1s\n", 1))
	addr, logs := runDaemon(t, st.settings)
	job := st.prefix + "-job-site"
	runs := func(result string) float64 {
		v, _ := metric(t, addr, `bee2_job_runs_total{job="site",result="`+result+`",server="local"}`)
		return v
	}

	waitUntil(t, "the first version is served", func() bool { return strings.Contains(st.served(), "first version") })
	if got := runs("success"); got != 1 {
		t.Fatalf("successful runs = %v, want 1", got)
	}

	t.Run("a commit reruns the job once, whatever else wakes the daemon", func(t *testing.T) {
		repo.commit("second version of the site")
		// More wake-ups at the same time: a settings write that changes nothing, and container events
		// from the run itself. They coalesce; the commit makes one run.
		st.write(st.read())
		waitUntil(t, "the second version is served", func() bool { return strings.Contains(st.served(), "second version") })
		time.Sleep(3 * time.Second) // three poll intervals: a duplicate run would have started by now
		if got := runs("success"); got != 2 {
			t.Errorf("successful runs = %v, want 2 (one per commit)", got)
		}
		head := repo.git("rev-parse", "HEAD")
		if !strings.Contains(logs.String(), `"commit":"`+head+`"`) {
			t.Errorf("the commit built is not logged")
		}
		if c := st.containers()[job]; c.Labels["io.bee2d.commit"] != head {
			t.Errorf("job container labelled with commit %q, want %s", c.Labels["io.bee2d.commit"], head)
		}
	})

	t.Run("a failing commit is reported, retried with back-off, and a fix succeeds", func(t *testing.T) {
		repo.commit("FAIL 4")
		waitUntil(t, "the exit code reaches the metric", func() bool {
			v, ok := metric(t, addr, `bee2_job_last_exit_code{job="site",server="local"}`)
			return ok && v == 4
		})
		if !regexp.MustCompile(`"msg":"job run failed".*"exit_code":4`).MatchString(logs.String()) {
			t.Errorf("the failure is not logged with its exit code")
		}
		time.Sleep(4 * time.Second)
		failures := runs("failure")
		// Back-off doubles from 1 s: in about 4 s at most 3 retries fit, never a tight loop.
		if failures < 1 || failures > 4 {
			t.Errorf("failed runs = %v in about 4 s; want a few, backed off", failures)
		}
		if !strings.Contains(st.served(), "second version") {
			t.Errorf("a failed run changed the served site")
		}
		repo.commit("fourth version of the site")
		waitUntil(t, "the fix is served", func() bool { return strings.Contains(st.served(), "fourth version") })
		// The site is written before the job exits; the metric follows the exit.
		waitUntil(t, "the exit code of the fix reaches the metric", func() bool {
			v, ok := metric(t, addr, `bee2_job_last_exit_code{job="site",server="local"}`)
			return ok && v == 0
		})
	})

	t.Run("a schedule fires", func(t *testing.T) {
		before := runs("success")
		st.write(strings.Replace(st.read(), "    poll: 1s\n", "    poll: 1s\n    schedule: \"@every 2s\"\n", 1))
		waitUntil(t, "two scheduled runs", func() bool { return runs("success") >= before+2 })
		if !strings.Contains(logs.String(), `"cause":"schedule @every 2s fired"`) {
			t.Errorf("the scheduled run does not say why it ran")
		}
	})
}
