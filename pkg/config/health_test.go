package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestHealthcheckForms(t *testing.T) {
	s := mustParse(t, `
servers: {web1: {}}
applications:
  shell:
    server: web1
    image: a:1
    healthcheck:
      test: curl -fs http://127.0.0.1/health || exit 1
      interval: 5s
      timeout: 2s
      start_period: 1m
      retries: 5
      on_unhealthy: restart
    deploy: start-first
  exec:
    server: web1
    image: a:1
    healthcheck: {test: [/app, -probe]}
  compose:
    server: web1
    image: a:1
    healthcheck: {test: [CMD-SHELL, "pg_isready -q"]}
  timings:
    server: web1
    image: a:1
    healthcheck: {interval: 250ms}
  off:
    server: web1
    image: a:1
    healthcheck: {disable: true}
    deploy: stop-first
`)
	sh := s.App("web1", "shell").Health
	if !sh.Shell || !slices.Equal(sh.Test, []string{"curl -fs http://127.0.0.1/health || exit 1"}) || sh.Interval != 5*time.Second ||
		sh.Timeout != 2*time.Second || sh.StartPeriod != time.Minute || sh.Retries != 5 || sh.OnUnhealthy != UnhealthyRestart {
		t.Errorf("shell: %+v", sh)
	}
	if s.App("web1", "shell").Deploy != StartFirst || s.App("web1", "off").Deploy != StopFirst || s.App("web1", "exec").Deploy != "" {
		t.Errorf("deploy keys not read")
	}
	if h := s.App("web1", "exec").Health; h.Shell || !slices.Equal(h.Test, []string{"/app", "-probe"}) || h.OnUnhealthy != UnhealthyNone {
		t.Errorf("exec: %+v", h)
	}
	if h := s.App("web1", "compose").Health; !h.Shell || !slices.Equal(h.Test, []string{"pg_isready -q"}) {
		t.Errorf("compose form: %+v", h)
	}
	if h := s.App("web1", "timings").Health; len(h.Test) != 0 || h.Interval != 250*time.Millisecond {
		t.Errorf("timings only: %+v", h)
	}
	if h := s.App("web1", "off").Health; !h.Disable {
		t.Errorf("disable: %+v", h)
	}
}

func TestHealthcheckErrors(t *testing.T) {
	for _, tt := range []struct{ yml, want string }{
		{"healthcheck: {interval: 5}", "inline.yml:7:29: applications.web.healthcheck.interval: expected a duration such as 10s or 1m30s, got an integer"},
		{"healthcheck: {interval: 5x}", `applications.web.healthcheck.interval: invalid duration "5x"`},
		{"healthcheck: {retries: 0}", "applications.web.healthcheck.retries: retries must be 1 to 1000, got 0"},
		{"healthcheck: {test: \"  \"}", "applications.web.healthcheck.test: empty test"},
		{"healthcheck: {test: [NONE]}", "write disable: true"},
		{"healthcheck: {test: [CMD]}", "CMD needs a program to run"},
		{"healthcheck: {on_unhealthy: reboot}", `on_unhealthy must be none or restart, got "reboot"`},
		{"healthcheck: {disable: true, test: /x}", "disable: true turns the check off"},
		{"healthcheck: {intervall: 5s}", `unknown key "intervall"`},
		{"deploy: blue-green", `deploy must be stop-first or start-first, got "blue-green"`},
	} {
		_, err := parse(t, "servers: {web1: {}}\napplications:\n  web:\n    server: web1\n    image: a:1\n\n    "+tt.yml+"\n")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.yml, err, tt.want)
		}
	}
	_, err := parse(t, "servers: {web1: {}}\njobs:\n  build:\n    server: web1\n    image: a:1\n    healthcheck: {test: /x}\n")
	if err == nil || !strings.Contains(err.Error(), "jobs.build.healthcheck: healthcheck is only for applications") {
		t.Errorf("job with a healthcheck: %v", err)
	}
}
