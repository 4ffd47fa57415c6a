package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/bee2d/bee2d/bench/internal/benchrun"
	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// trialTimeout bounds the wait for any one event of a trial beyond the gate's own time.
const trialTimeout = 2 * time.Minute

// measure waits for the daemon's first convergence, then runs the rounds: per mode a good deploy beside the
// engine alone (in alternating order), then a bad one.
func (b *bench) measure(ctx context.Context) (*results, error) {
	res := newResults(b)
	res.LoadBefore = benchrun.Loadavg()
	want, err := b.desired(b.currentSettings())
	if err != nil {
		return nil, err
	}
	logf("waiting for the daemon to deploy %s", b.appName())
	if err := b.quiet(ctx, want.Hash, 10*time.Minute); err != nil {
		return nil, err
	}
	for round := 1; round <= b.opt.rounds; round++ {
		for _, mode := range b.opt.modes {
			m := res.Modes[mode]
			version := fmt.Sprintf("r%d-%s", round, strings.TrimSuffix(mode, "-first"))
			text := b.settingsText(version, "yes", mode)
			good := func() error { return b.goodTrial(ctx, m, text, version) }
			floor := func() error { return b.floorTrial(ctx, m, text, round) }
			steps := []func() error{good, floor}
			if round%2 == 0 {
				steps = []func() error{floor, good}
			}
			steps = append(steps, func() error { return b.badTrial(ctx, m, mode, round, version) })
			for _, step := range steps {
				if err := step(); err != nil {
					res.Partial = true
					res.finish(b.opt)
					return res, fmt.Errorf("round %d, %s: %w", round, mode, err)
				}
			}
			logf("round %d/%d %s: edit→healthy %s (engine %s), done %s; bad: verdict %s, old serving alone %s (%s from its start), rolled back %s",
				round, b.opt.rounds, mode, m.last(mEdit), m.last(mFloor), m.last(mDone), m.last(mVerdict), m.last(mServing), m.last(mGateServing), m.last(mRolledBack))
		}
	}
	res.LoadAfter = benchrun.Loadavg()
	res.finish(b.opt)
	return res, nil
}

// goodTrial deploys a new healthy version and times until the engine reports it healthy, and until bee2d
// has finished: the old container removed and the new one under the application's name.
func (b *bench) goodTrial(ctx context.Context, m *modeResults, text, version string) error {
	want, err := b.desired(text)
	if err != nil {
		return err
	}
	old, err := b.appContainer(ctx)
	if err != nil {
		return err
	}
	from := b.events.Mark()
	t0 := time.Now()
	if err := writeAtomic(b.settings, text); err != nil {
		return err
	}
	healthy, err := b.events.WaitFor(ctx, from, b.opt.gate()+trialTimeout, "healthy report of "+version, func(e dockerx.Event) bool {
		return e.Action == evHealthy && e.Labels[labels.SpecHash] == want.Hash
	})
	if err != nil {
		return err
	}
	m.add(mEdit, healthy.At.Sub(t0))
	gone, err := b.events.WaitFor(ctx, from, trialTimeout, "removal of the old container", func(e dockerx.Event) bool {
		return e.Action == "destroy" && e.ID == old.ID
	})
	if err != nil {
		return err
	}
	named, err := b.events.WaitFor(ctx, from, trialTimeout, "the new container under "+b.appName(), func(e dockerx.Event) bool {
		return e.ID == healthy.ID && e.Name == b.appName()
	})
	if err != nil {
		return err
	}
	m.add(mDone, later(gone.At, named.At).Sub(t0))
	return b.quiet(ctx, want.Hash, trialTimeout)
}

// floorTrial times the engine alone creating and starting the application's container of the round's good
// version (text), under another name and without bee2d's owner label (so the daemon leaves it alone), until
// it reports it healthy.
func (b *bench) floorTrial(ctx context.Context, m *modeResults, text string, round int) error {
	c, err := b.desired(text)
	if err != nil {
		return err
	}
	spec := c.ContainerSpec
	spec.Name = fmt.Sprintf("%s-floor-%d", b.runID, round)
	spec.Labels = map[string]string{labels.Prefix: b.runID}
	from := b.events.Mark()
	t0 := time.Now()
	id, err := b.cli.CreateContainer(ctx, spec)
	if err != nil {
		return err
	}
	if err := b.cli.StartContainer(ctx, id); err != nil {
		return err
	}
	healthy, err := b.events.WaitFor(ctx, from, b.opt.gate()+trialTimeout, "healthy report of the engine's container", func(e dockerx.Event) bool {
		return e.Action == evHealthy && e.ID == id
	})
	if err != nil {
		return err
	}
	m.add(mFloor, healthy.At.Sub(t0))
	if err := b.cli.StopContainer(ctx, id, 5*time.Second); err != nil {
		return err
	}
	if err := b.cli.RemoveContainer(ctx, id); err != nil {
		return err
	}
	return benchrun.Sleep(ctx, b.opt.settle)
}

// badTrial deploys a version that never becomes healthy and times until the old version serves alone again:
// start-first, when the bad container has stopped (the old one never did); stop-first, when the old one
// answers again and the bad one has stopped. That from the edit, and from the bad container's start, where
// the gate's clock starts. Also until the engine's unhealthy verdict, and until bee2d has finished: the bad
// one kept as <name>.failed-<hash12>, the old one under the application's name.
func (b *bench) badTrial(ctx context.Context, m *modeResults, mode string, round int, oldVersion string) error {
	text := b.settingsText(fmt.Sprintf("bad-r%d", round), "no", mode)
	bad, err := b.desired(text)
	if err != nil {
		return err
	}
	old, err := b.appContainer(ctx)
	if err != nil {
		return err
	}
	from := b.events.Mark()
	t0 := time.Now()
	if err := writeAtomic(b.settings, text); err != nil {
		return err
	}
	created, err := b.events.WaitFor(ctx, from, trialTimeout, "the bad version's container", func(e dockerx.Event) bool {
		return e.Action == "create" && e.Labels[labels.SpecHash] == bad.Hash
	})
	if err != nil {
		return err
	}
	started, err := b.events.WaitFor(ctx, from, trialTimeout, "the bad version's start", func(e dockerx.Event) bool {
		return e.Action == "start" && e.ID == created.ID
	})
	if err != nil {
		return err
	}
	died, err := b.events.WaitFor(ctx, from, b.opt.gate()+trialTimeout, "the bad version's stop", func(e dockerx.Event) bool {
		return e.Action == "die" && e.ID == created.ID
	})
	if err != nil {
		return err
	}
	serving := died.At
	if mode == config.StopFirst {
		if _, err := b.events.WaitFor(ctx, from, trialTimeout, "the old container's start", func(e dockerx.Event) bool {
			return e.Action == "start" && e.ID == old.ID
		}); err != nil {
			return err
		}
		answered, err := b.answers(ctx, old.ID, oldVersion)
		if err != nil {
			return err
		}
		serving = later(serving, answered)
	}
	m.add(mServing, serving.Sub(t0))
	m.add(mGateServing, serving.Sub(started.At))
	if v, ok := b.events.Find(from, func(e dockerx.Event) bool { return e.Action == evUnhealthy && e.ID == created.ID }); ok {
		m.add(mVerdict, v.At.Sub(t0))
	}
	kept, err := b.events.WaitFor(ctx, from, trialTimeout, "the bad container kept as .failed-", func(e dockerx.Event) bool {
		return e.ID == created.ID && strings.HasPrefix(e.Name, b.appName()+".failed-")
	})
	if err != nil {
		return err
	}
	done := kept.At
	if mode == config.StopFirst {
		back, err := b.events.WaitFor(ctx, from, trialTimeout, "the old container under its name again", func(e dockerx.Event) bool {
			return e.Action == "rename" && e.ID == old.ID && e.Name == b.appName()
		})
		if err != nil {
			return err
		}
		done = later(done, back.At)
	}
	m.add(mRolledBack, done.Sub(t0))
	if c, err := b.appContainer(ctx); err != nil || c.ID != old.ID {
		return fmt.Errorf("after the rollback %s is not the old container %.12s (%v)", b.appName(), old.ID, err)
	}
	return b.quiet(ctx, old.Labels[labels.SpecHash], trialTimeout)
}

// answers polls the container's own address until it answers GET / with version, and returns when it did.
func (b *bench) answers(ctx context.Context, id, version string) (time.Time, error) {
	c, err := testdocker.Inspect("", id)
	if err != nil {
		return time.Time{}, err
	}
	ep, ok := c.NetworkSettings.Networks[b.network]
	if !ok || ep.IPAddress == "" {
		return time.Time{}, fmt.Errorf("%.12s has no address on %s", id, b.network)
	}
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	defer hc.CloseIdleConnections()
	url := "http://" + net.JoinHostPort(ep.IPAddress, "8080") + "/"
	deadline := time.Now().Add(trialTimeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := hc.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == version {
				return time.Now(), nil
			}
			last = fmt.Sprintf("%s %q", resp.Status, body)
		} else {
			last = err.Error()
		}
		if err := benchrun.Sleep(ctx, 5*time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
	return time.Time{}, fmt.Errorf("%s never answered %s: %s", url, version, last)
}

// quiet waits until the application's container runs with the spec hash, healthy, with no other container
// of the application left but stopped failed versions, and then for the settle time, so that the daemon's
// passes after a trial are over before the next.
func (b *bench) quiet(ctx context.Context, hash string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var problem string
	for time.Now().Before(deadline) {
		select {
		case err := <-b.daemon.Exited:
			return fmt.Errorf("the daemon exited (%v); its log is %s", err, b.logFile)
		default:
		}
		list, err := b.cli.ListContainers(ctx)
		if err != nil {
			return err
		}
		problem = b.appName() + " is missing"
		for _, c := range list {
			switch {
			case c.Name == b.appName():
				if c.Labels[labels.SpecHash] != hash || !c.Running() || c.Health != "healthy" {
					problem = fmt.Sprintf("%s is %s (%s) with spec hash %s", c.Name, c.State, c.Health, c.Labels[labels.SpecHash])
				} else if problem == b.appName()+" is missing" {
					problem = ""
				}
			case strings.HasPrefix(c.Name, b.appName()+".failed-") && !c.Running():
			case strings.HasPrefix(c.Name, b.appName()):
				problem = c.Name + " should not exist"
			}
		}
		if problem == "" {
			return benchrun.Sleep(ctx, b.opt.settle)
		}
		if err := benchrun.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("not converged within %v: %s; the daemon's log is %s (run with -keep to keep it)", timeout, problem, b.logFile)
}

func (b *bench) appContainer(ctx context.Context) (dockerx.Container, error) {
	list, err := b.cli.ListContainers(ctx)
	if err != nil {
		return dockerx.Container{}, err
	}
	for _, c := range list {
		if c.Name == b.appName() {
			return c, nil
		}
	}
	return dockerx.Container{}, fmt.Errorf("no %s", b.appName())
}

func (b *bench) currentSettings() string {
	text, err := os.ReadFile(b.settings)
	if err != nil {
		return ""
	}
	return string(text)
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
