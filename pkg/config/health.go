package config

import (
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Healthcheck is an application's health check (healthcheck key). Without one the image's own HEALTHCHECK,
// if any, is in force.
type Healthcheck struct {
	// Test is the check: with Shell, one command line run by the container's shell (CMD-SHELL); otherwise
	// the program and its arguments (CMD). Empty keeps the image's test with the timings given here.
	Test  []string
	Shell bool
	// Disable turns the image's check off.
	Disable bool
	// Zero durations and retries leave the engine's defaults: 30 s, 30 s, none, 3.
	Interval, Timeout, StartPeriod time.Duration
	Retries                        int
	// OnUnhealthy is what the daemon does when the container turns unhealthy after it was healthy:
	// UnhealthyNone or UnhealthyRestart.
	OnUnhealthy string
}

// The values of healthcheck.on_unhealthy.
const (
	UnhealthyNone    = "none"
	UnhealthyRestart = "restart"
)

// The values of deploy: how an application is replaced.
const (
	// StopFirst stops the old container before the new one starts (the default).
	StopFirst = "stop-first"
	// StartFirst starts the new container beside the old one and stops the old one once the new one is
	// healthy.
	StartFirst = "start-first"
)

var healthKeys = []string{"test", "interval", "timeout", "start_period", "retries", "disable", "on_unhealthy"}

// minHealthDuration is the shortest interval, timeout or start period the engine accepts.
const minHealthDuration = time.Millisecond

// healthcheck reads an application's healthcheck key.
func (d *decoder) healthcheck(n *yaml.Node, path string) *Healthcheck {
	fields, ok := d.mapping(n, path)
	if !ok {
		return nil
	}
	h := &Healthcheck{OnUnhealthy: UnhealthyNone}
	var test *yaml.Node
	for _, f := range fields {
		fp := joinPath(path, f.Key)
		switch f.Key {
		case "test":
			test = f.Val
			h.Test, h.Shell = d.healthTest(f.Val, fp)
		case "interval", "timeout", "start_period":
			v, ok := d.healthDuration(f.Val, fp)
			if !ok {
				continue
			}
			switch f.Key {
			case "interval":
				h.Interval = v
			case "timeout":
				h.Timeout = v
			default:
				h.StartPeriod = v
			}
		case "retries":
			if v, ok := d.integer(f.Val, fp); ok {
				if v < 1 || v > 1000 {
					d.errorf(f.Val, fp, "retries must be 1 to 1000, got %d", v)
					continue
				}
				h.Retries = int(v)
			}
		case "disable":
			h.Disable = d.boolean(deref(f.Val), fp)
		case "on_unhealthy":
			if v, ok := d.nonEmpty(f, fp); ok {
				if v != UnhealthyNone && v != UnhealthyRestart {
					d.errorf(f.Val, fp, "on_unhealthy must be none or restart, got %q", v)
					continue
				}
				h.OnUnhealthy = v
			}
		default:
			d.unknownKey(f, path, healthKeys)
		}
	}
	if h.Disable && (test != nil && len(h.Test) > 0 || h.OnUnhealthy == UnhealthyRestart) {
		d.errorf(n, path, "disable: true turns the check off; it cannot also have a test or on_unhealthy: restart")
	}
	return h
}

// healthTest reads test: a string is a shell command line (CMD-SHELL); a list is the program and its
// arguments, or, written as compose writes it, starts with CMD, CMD-SHELL or NONE.
func (d *decoder) healthTest(n *yaml.Node, path string) ([]string, bool) {
	n = deref(n)
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
		if strings.TrimSpace(n.Value) == "" {
			d.errorf(n, path, "empty test")
			return nil, false
		}
		return []string{n.Value}, true
	}
	args := d.command(n, path)
	if len(args) == 0 {
		return nil, false
	}
	switch args[0] {
	case "CMD":
		if len(args) == 1 {
			d.errorf(n, path, "CMD needs a program to run")
			return nil, false
		}
		return args[1:], false
	case "CMD-SHELL":
		if len(args) != 2 {
			d.errorf(n, path, "CMD-SHELL takes one command line")
			return nil, false
		}
		return args[1:], true
	case "NONE":
		d.errorf(n, path, "write disable: true to turn the image's check off")
		return nil, false
	}
	return args, false
}

// healthDuration reads a duration such as 10s or 1m30s.
func (d *decoder) healthDuration(n *yaml.Node, path string) (time.Duration, bool) {
	n = deref(n)
	if isNull(n) {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, path, "expected a duration such as 10s or 1m30s, got %s", describe(n))
		return 0, false
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < minHealthDuration || v > 24*time.Hour {
		d.errorf(n, path, "invalid duration %q: want one from 1ms to 24h, such as 10s or 1m30s", n.Value)
		return 0, false
	}
	return v, true
}

// deploy reads an application's deploy key.
func (d *decoder) deploy(f pair, path string) string {
	v, ok := d.nonEmpty(f, path)
	if !ok {
		return ""
	}
	if v != StopFirst && v != StartFirst {
		d.errorf(f.Val, path, "deploy must be stop-first or start-first, got %q", v)
		return ""
	}
	return v
}
