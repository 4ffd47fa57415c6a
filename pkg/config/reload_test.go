package config

import (
	"maps"
	"reflect"
	"testing"
	"time"
)

func TestReloadRulesAndBuildArgs(t *testing.T) {
	s := mustParse(t, `
servers:
  web1: {}
applications:
  haproxy:
    server: web1
    build_dir: HAProxy
    build_args: {BASE: "haproxy:3.2", PATCH: 3, DEBUG: false}
    volumes: ["letsencrypt:/etc/letsencrypt:ro", "logs:/var/log"]
    reload:
      - {watch: "letsencrypt:/live", verify: tls}
      - {watch: "logs:/", signal: usr1, verify: "tls:8443", interval: 2m}
`)
	app := s.Application("haproxy")
	if want := map[string]string{"BASE": "haproxy:3.2", "PATCH": "3", "DEBUG": "false"}; !maps.Equal(app.BuildArgs, want) {
		t.Errorf("build args %v; want %v", app.BuildArgs, want)
	}
	want := []ReloadRule{
		{Volume: "letsencrypt", Path: "/live", Target: "/etc/letsencrypt", Signal: "SIGHUP", VerifyTLSPort: 443, Pos: Pos{11, 9}},
		{Volume: "logs", Path: "/", Target: "/var/log", Signal: "SIGUSR1", VerifyTLSPort: 8443, Interval: 2 * time.Minute, Pos: Pos{12, 9}},
	}
	if !reflect.DeepEqual(app.Reload, want) {
		t.Errorf("reload rules\n%+v\nwant\n%+v", app.Reload, want)
	}
	if got := app.Reload[0].Dir(); got != "/etc/letsencrypt/live" {
		t.Errorf("Dir() = %s", got)
	}
	if got := app.Reload[1].Dir(); got != "/var/log" {
		t.Errorf("Dir() = %s", got)
	}
	if a, b := app.Reload[0].Every(), app.Reload[1].Every(); a != DefaultReloadInterval || b != 2*time.Minute {
		t.Errorf("Every() = %s, %s; want %s, 2m", a, b, DefaultReloadInterval)
	}
}
