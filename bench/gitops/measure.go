package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/bee2d/bee2d/bench/internal/benchrun"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/gitops"
	"github.com/bee2d/bee2d/pkg/labels"
)

// measure runs the push trials in each mode, then the large repository.
func (b *bench) measure(ctx context.Context, res *results) error {
	res.LoadBefore = benchrun.Loadavg()
	defer func() { res.LoadAfter = benchrun.Loadavg() }()
	if !b.opt.skipPush {
		var err error
		if res.OtherContainers, err = benchrun.OtherContainers(ctx, b.cli, b.runID); err != nil {
			return err
		}
		for _, m := range []mode{modeWebhook, modePoll} {
			if err := b.pushTrials(ctx, res, m); err != nil {
				return fmt.Errorf("%s mode: %w", m, err)
			}
		}
	}
	if !b.opt.skipBig {
		if err := b.measureBig(ctx, res); err != nil {
			return fmt.Errorf("large repository: %w", err)
		}
	}
	return nil
}

// pushTrials starts the daemon in mode m, waits for it to run the settings last pushed, and times -n pushes;
// beside each webhook push the engine does the same container work alone.
func (b *bench) pushTrials(ctx context.Context, res *results, m mode) error {
	if err := b.startDaemon(m); err != nil {
		return err
	}
	want, err := b.hashes(b.settingsText(b.round))
	if err != nil {
		return err
	}
	start := time.Now()
	logf("waiting for the daemon to converge %d containers", len(want))
	if err := benchrun.WaitConverged(ctx, b.cli, b.daemon, b.runID, want, 5*time.Minute); err != nil {
		return err
	}
	logf("converged in %.1fs", time.Since(start).Seconds())
	// The passes that the daemon's own creations woke end within a second or so.
	if err := benchrun.Sleep(ctx, 3*time.Second); err != nil {
		return err
	}
	for i := 1; i <= b.opt.n; i++ {
		if err := b.pushTrial(ctx, res, m); err != nil {
			return err
		}
		line := fmt.Sprintf("  %s %d/%d: push → started %s", m, i, b.opt.n, res.last(pushMeasurement(m)))
		if m == modeWebhook {
			if err := b.floorCreateStart(ctx, res, b.round); err != nil {
				return err
			}
			if err := b.floorRecreate(ctx, res, b.round); err != nil {
				return err
			}
			line += fmt.Sprintf("   engine: create+start %s  recreate %s", res.last(mFloorCreateStart), res.last(mFloorRecreate))
		}
		logf("%s", line)
	}
	return b.stopDaemon()
}

func loadedMeasurement(m mode) measurement {
	if m == modeWebhook {
		return mLoadedWebhook
	}
	return mLoadedPoll
}

// loadedAt is when the daemon logged that it loaded the settings of commit: after the fetch, the checkout
// and the validation, before the plan. Its clock is the bench's; the log has milliseconds.
func (b *bench) loadedAt(commit string) (time.Time, error) {
	f, err := os.Open(b.daemonLog)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg    string `json:"msg"`
			TS     string `json:"ts"`
			Commit string `json:"commit"`
		}
		if !bytes.Contains(sc.Bytes(), []byte(commit)) || json.Unmarshal(sc.Bytes(), &line) != nil {
			continue
		}
		if line.Msg == "settings loaded" && line.Commit == commit {
			return time.Parse(time.RFC3339Nano, line.TS)
		}
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, fmt.Errorf("the daemon's log %s has no \"settings loaded\" of commit %s (run with -keep to keep it)", b.daemonLog, commit)
}

func pushMeasurement(m mode) measurement {
	if m == modeWebhook {
		return mPushWebhook
	}
	return mPushPoll
}

// pushTrial commits a new env value of the probe, pushes it and times from the push's return (with the
// webhook: including its post) to the engine's start event of the probe's new container. It then checks
// that the daemon reports the commit in force, and waits for the engine to match the settings.
func (b *bench) pushTrial(ctx context.Context, res *results, m mode) error {
	b.round++
	text := b.settingsText(b.round)
	want, err := b.hashes(text)
	if err != nil {
		return err
	}
	hash := want[b.probeName()]
	commit, err := b.commitSettings(ctx, text, fmt.Sprintf("probe round %d", b.round))
	if err != nil {
		return err
	}
	from := b.events.Mark()
	if err := b.git(ctx, b.work, "push", "--quiet", "origin", branch); err != nil {
		return err
	}
	t0 := time.Now()
	if m == modeWebhook {
		if err := b.postWebhook(ctx); err != nil {
			return err
		}
	}
	ev, err := b.events.WaitFor(ctx, from, benchrun.EventWait, "start of the pushed probe", func(e dockerx.Event) bool {
		// Under start-first the new container starts under a name of its own and takes the probe's after.
		return e.Action == "start" && strings.HasPrefix(e.Name, b.probeName()) && e.Labels[labels.SpecHash] == hash
	})
	if err != nil {
		return fmt.Errorf("%w; the daemon's log is %s (run with -keep to keep it)", err, b.daemonLog)
	}
	res.add(pushMeasurement(m), ev.At.Sub(t0))
	loaded, err := b.loadedAt(commit)
	if err != nil {
		return err
	}
	res.add(loadedMeasurement(m), loaded.Sub(t0))
	if err := b.waitCommitMetric(ctx, commit); err != nil {
		return err
	}
	return b.quiet(ctx, want)
}

// postWebhook asks the daemon for a fetch as a forge would after a push: a signed POST /hooks/git.
func (b *bench) postWebhook(ctx context.Context) error {
	body := []byte(`{"ref":"refs/heads/` + branch + `"}`)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+b.listenAddr+"/hooks/git", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Bee2d-Signature-256", gitops.SignGitHub(b.secret, body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("webhook: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// waitCommitMetric waits until the daemon's /metrics names commit as the settings in force: the container
// that started must come from the commit pushed, not from some other source of the same settings.
func (b *bench) waitCommitMetric(ctx context.Context, commit string) error {
	want := fmt.Sprintf(`bee2_settings_commit_info{commit="%s"} 1`, commit)
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.listenAddr+"/metrics", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		last = ""
		for sc.Scan() {
			line := sc.Text()
			if line == want {
				resp.Body.Close()
				return nil
			}
			if strings.HasPrefix(line, "bee2_settings_commit_info{") && strings.HasSuffix(line, " 1") {
				last = line
			}
		}
		resp.Body.Close()
		if err := benchrun.Sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
	if last == "" {
		last = "no bee2_settings_commit_info at 1"
	}
	return fmt.Errorf("the daemon's /metrics does not name commit %s in force within 30s (it shows: %s)", commit, last)
}

// floorSpec is the probe's container as bee2d makes it, under another name and with bee2d's owner label
// swapped for one of the bench's (as many labels), so the daemon leaves it alone; the prefix label lets
// the bench's event stream see it.
func (b *bench) floorSpec(round int, name string) (dockerx.ContainerSpec, error) {
	d, err := b.desired(b.settingsText(round))
	if err != nil {
		return dockerx.ContainerSpec{}, err
	}
	for _, c := range d.Containers {
		if c.Service == probe {
			spec := c.ContainerSpec
			spec.Name = name
			spec.Labels = map[string]string{}
			for k, v := range c.Labels {
				spec.Labels[k] = v
			}
			delete(spec.Labels, labels.Owner)
			spec.Labels["io.bee2d.bench"] = "floor"
			return spec, nil
		}
	}
	return dockerx.ContainerSpec{}, fmt.Errorf("no %s in the settings", probe)
}

// floorCreateStart times the engine creating and starting the probe's container.
func (b *bench) floorCreateStart(ctx context.Context, res *results, round int) error {
	spec, err := b.floorSpec(round, fmt.Sprintf("%s-floor-%d", b.runID, round))
	if err != nil {
		return err
	}
	id, took, err := benchrun.TimeCreateStart(ctx, b.cli, b.events, spec)
	if err != nil {
		return err
	}
	res.add(mFloorCreateStart, took)
	return b.removeFloor(ctx, id)
}

// floorRecreate times what a recreate asks of the engine, in the order bee2d's executor asks it: rename
// the running container aside, stop it while the new one is created, start the new one.
func (b *bench) floorRecreate(ctx context.Context, res *results, round int) error {
	spec, err := b.floorSpec(round, fmt.Sprintf("%s-floor-%d", b.runID, round))
	if err != nil {
		return err
	}
	old, id, took, err := benchrun.TimeRecreate(ctx, b.cli, b.events, spec)
	if err != nil {
		return err
	}
	res.add(mFloorRecreate, took)
	return b.removeFloor(ctx, old, id)
}

// removeFloor removes the engine-alone containers, untimed, and lets the engine settle before the next
// trial.
func (b *bench) removeFloor(ctx context.Context, ids ...string) error {
	if err := benchrun.RemoveContainers(ctx, b.cli, ids...); err != nil {
		return err
	}
	return benchrun.Sleep(ctx, b.opt.settle)
}

// quiet waits until the engine matches want and then for the settle time, so that the daemon's passes
// after a trial (removing the replaced container, the passes its events wake) are over before the next.
func (b *bench) quiet(ctx context.Context, want map[string]string) error {
	if err := benchrun.WaitConverged(ctx, b.cli, b.daemon, b.runID, want, 2*time.Minute); err != nil {
		return err
	}
	return benchrun.Sleep(ctx, b.opt.settle)
}
