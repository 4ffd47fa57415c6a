package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The metrics listener is on loopback unless told otherwise; any other address is served, with a warning
// that names it. No engine is needed: the server's socket does not exist, and the daemon serves its
// metrics while it retries.
func TestMetricsListenerLoopbackByDefault(t *testing.T) {
	code, out := runCmd(t, "daemon", "--help")
	if code != 0 || !strings.Contains(out, `-listen string`) || !strings.Contains(out, `(default "127.0.0.1:9380")`) {
		t.Errorf("daemon --help: exit %d, the default --listen is not 127.0.0.1:9380:\n%s", code, out)
	}

	settings := filepath.Join(t.TempDir(), "settings.yml")
	sock := filepath.Join(t.TempDir(), "none.sock")
	if err := os.WriteFile(settings, []byte(fmt.Sprintf("servers:\n  s: {docker: {host: \"unix://%s\"}}\n", sock)), 0o600); err != nil {
		t.Fatal(err)
	}
	const warning = "metrics listener is not on loopback: anyone who reaches it sees server and container names"
	for _, tt := range []struct {
		listen string
		warn   bool
	}{
		{"127.0.0.1:0", false},
		{"localhost:0", false},
		{"0.0.0.0:0", true},
	} {
		t.Run(tt.listen, func(t *testing.T) {
			logs := &lockedBuffer{}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, []string{"daemon", "-c", settings, "--listen", tt.listen, "--log-format", "json"}, &lockedBuffer{}, logs)
			}()
			var serving []map[string]any
			deadline := time.Now().Add(eventually)
			for len(serving) == 0 && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
				serving = logged(logs.String(), "serving metrics")
			}
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("daemon exited %d", code)
			}
			if len(serving) != 1 {
				t.Fatalf("no \"serving metrics\" in the log:\n%s", logs.String())
			}
			addr, _ := serving[0]["listen"].(string)
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatalf("listen %q: %v", addr, err)
			}
			if ip := net.ParseIP(host); ip == nil || ip.IsLoopback() == tt.warn {
				t.Errorf("listening on %s", addr)
			}
			warned := logged(logs.String(), warning)
			if got := len(warned) == 1; got != tt.warn {
				t.Errorf("warning logged %d times, want it %v:\n%s", len(warned), tt.warn, logs.String())
			}
			if tt.warn && warned[0]["listen"] != addr {
				t.Errorf("the warning names %v, not %s", warned[0]["listen"], addr)
			}
			// The listener is closed with the daemon.
			if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
				t.Errorf("%s still answers after the daemon stopped", addr)
			}
		})
	}
}
