package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/bee2d/bee2d/bench/internal/benchrun"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/gitx"
	"github.com/bee2d/bee2d/pkg/labels"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// measure waits for the daemon's first convergence, takes its memory, leaves it idle for the CPU figure,
// then runs the trials, each of the daemon's beside one of the engine alone.
func (b *bench) measure(ctx context.Context) (*results, error) {
	res := newResults(b)
	res.LoadBefore = benchrun.Loadavg()
	start := time.Now()
	want, err := b.desired(b.settingsText(0))
	if err != nil {
		return nil, err
	}
	logf("waiting for the daemon to converge %d containers", len(want))
	if err := benchrun.WaitConverged(ctx, b.cli, b.daemon, b.runID, want, 10*time.Minute); err != nil {
		return nil, err
	}
	res.ConvergeSeconds = time.Since(start).Seconds()
	logf("converged in %.1fs", res.ConvergeSeconds)
	// The passes that the daemon's own creations woke end within a second or so.
	if err := benchrun.Sleep(ctx, 3*time.Second); err != nil {
		return nil, err
	}
	pid := b.daemon.Cmd.Process.Pid
	if res.RSSConvergedBytes, err = rss(pid); err != nil {
		return nil, err
	}

	if b.opt.idle > 0 {
		logf("idle for %v (RSS %.1f MB)", b.opt.idle, float64(res.RSSConvergedBytes)/(1<<20))
		cpu0, err := cpuSeconds(pid)
		if err != nil {
			return nil, err
		}
		passes0, err := b.passes()
		if err != nil {
			return nil, err
		}
		t0 := time.Now()
		if err := benchrun.Sleep(ctx, b.opt.idle); err != nil {
			return nil, err
		}
		cpu1, err := cpuSeconds(pid)
		if err != nil {
			return nil, err
		}
		passes1, err := b.passes()
		if err != nil {
			return nil, err
		}
		res.Idle = &idle{Seconds: time.Since(t0).Seconds(), CPUSeconds: cpu1 - cpu0, Passes: passes1 - passes0}
		if res.RSSIdleBytes, err = rss(pid); err != nil {
			return nil, err
		}
	}

	for i := 1; i <= b.opt.trials; i++ {
		logf("trial %d/%d", i, b.opt.trials)
		steps := []func(context.Context, *results, int) error{b.editTrial, b.floorRecreate, b.floorCreateStart, b.removeTrial, b.killTrial, b.floorStart}
		for _, step := range steps {
			if err := step(ctx, res, i); err != nil {
				return nil, err
			}
		}
		logf("  edit %s   rm -f %s (from destroy %s)   kill %s (from die %s)   engine: recreate %s  create+start %s  start %s",
			res.last(mEdit), res.last(mRemove), res.last(mRemoveFromEvent), res.last(mKill), res.last(mKillFromEvent),
			res.last(mFloorRecreate), res.last(mFloorCreateStart), res.last(mFloorStart))
	}
	if res.RSSAfterBytes, err = rss(pid); err != nil {
		return nil, err
	}
	res.LoadAfter = benchrun.Loadavg()
	if res.OtherContainers, err = benchrun.OtherContainers(ctx, b.cli, b.runID); err != nil {
		return nil, err
	}
	res.finish()
	return res, nil
}

// editTrial changes the probe's env and times until its new container has started.
func (b *bench) editTrial(ctx context.Context, res *results, round int) error {
	text := b.settingsText(round)
	want, err := b.desired(text)
	if err != nil {
		return err
	}
	hash := want[b.probeName()]
	from := b.events.Mark()
	t0 := time.Now()
	if err := writeAtomic(b.settings, text); err != nil {
		return err
	}
	ev, err := b.events.WaitFor(ctx, from, benchrun.EventWait, "start of the edited probe", func(e dockerx.Event) bool {
		return e.Action == "start" && e.Name == b.probeName() && e.Labels[labels.SpecHash] == hash
	})
	if err != nil {
		return err
	}
	res.add(mEdit, ev.At.Sub(t0))
	return b.quiet(ctx, want)
}

// removeTrial removes the probe by force and times until a new one has started: from the call, and from
// the engine's "destroy" event, where the daemon can first know.
func (b *bench) removeTrial(ctx context.Context, res *results, _ int) error {
	c, err := b.probeContainer(ctx)
	if err != nil {
		return err
	}
	from := b.events.Mark()
	t0 := time.Now()
	if err := b.cli.RemoveContainer(ctx, c.ID); err != nil {
		return err
	}
	gone, err := b.events.WaitFor(ctx, from, benchrun.EventWait, "destroy of the probe", func(e dockerx.Event) bool {
		return e.Action == "destroy" && e.ID == c.ID
	})
	if err != nil {
		return err
	}
	back, err := b.events.WaitFor(ctx, from, benchrun.EventWait, "start of a new probe", func(e dockerx.Event) bool {
		return e.Action == "start" && e.Name == b.probeName() && e.ID != c.ID
	})
	if err != nil {
		return err
	}
	res.add(mRemove, back.At.Sub(t0))
	res.add(mRemoveFromEvent, back.At.Sub(gone.At))
	want, err := b.desired(b.currentSettings())
	if err != nil {
		return err
	}
	return b.quiet(ctx, want)
}

// killTrial kills the probe with SIGKILL and times until it runs again: from the call, and from the
// engine's "die" event.
func (b *bench) killTrial(ctx context.Context, res *results, _ int) error {
	c, err := b.probeContainer(ctx)
	if err != nil {
		return err
	}
	from := b.events.Mark()
	t0 := time.Now()
	if err := kill(ctx, c.ID); err != nil {
		return err
	}
	died, err := b.events.WaitFor(ctx, from, benchrun.EventWait, "death of the probe", func(e dockerx.Event) bool {
		return e.Action == "die" && e.ID == c.ID
	})
	if err != nil {
		return err
	}
	back, err := b.events.WaitFor(ctx, from, benchrun.EventWait, "start of the killed probe", func(e dockerx.Event) bool {
		return e.Action == "start" && e.Name == b.probeName()
	})
	if err != nil {
		return err
	}
	res.add(mKill, back.At.Sub(t0))
	res.add(mKillFromEvent, back.At.Sub(died.At))
	want, err := b.desired(b.currentSettings())
	if err != nil {
		return err
	}
	return b.quiet(ctx, want)
}

// floorSpec is the probe's container as bee2d makes it, under another name and without bee2d's owner
// label, so the daemon leaves it alone; the prefix label lets the bench's event stream see it.
func (b *bench) floorSpec(round int) (dockerx.ContainerSpec, error) {
	s, err := config.Parse(b.settings, []byte(b.currentSettings()))
	if err != nil {
		return dockerx.ContainerSpec{}, err
	}
	d, err := reconcile.DesireFrom(s, "local", reconcile.Sources{Digest: dockerx.ContextDigest, Head: gitx.Heads(context.Background())})
	if err != nil {
		return dockerx.ContainerSpec{}, err
	}
	for _, c := range d.Containers {
		if c.Service == probe {
			spec := c.ContainerSpec
			spec.Name = fmt.Sprintf("%s-floor-%d", b.runID, round)
			spec.Labels = map[string]string{labels.Prefix: b.runID}
			return spec, nil
		}
	}
	return dockerx.ContainerSpec{}, fmt.Errorf("no %s in the settings", probe)
}

// floorCreateStart times the engine creating and starting the probe's container.
func (b *bench) floorCreateStart(ctx context.Context, res *results, round int) error {
	spec, err := b.floorSpec(round)
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
	spec, err := b.floorSpec(round)
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

// floorStart times the engine starting the probe's container again after a kill, from the "die" event
// as the daemon's "from the die event" row is: the engine holds the container until it has cleaned up
// after it, so a start sent at once waits for that, as the daemon must.
func (b *bench) floorStart(ctx context.Context, res *results, round int) error {
	spec, err := b.floorSpec(round)
	if err != nil {
		return err
	}
	from := b.events.Mark()
	id, err := benchrun.CreateStart(ctx, b.cli, spec)
	if err != nil {
		return err
	}
	started := func(e dockerx.Event) bool { return e.Action == "start" && e.ID == id }
	if _, err := b.events.WaitFor(ctx, from, benchrun.EventWait, "start of the engine's container", started); err != nil {
		return err
	}
	from = b.events.Mark()
	if err := kill(ctx, id); err != nil {
		return err
	}
	died, err := b.events.WaitFor(ctx, from, benchrun.EventWait, "death of the engine's container", func(e dockerx.Event) bool {
		return e.Action == "die" && e.ID == id
	})
	if err != nil {
		return err
	}
	from = b.events.Mark()
	if err := b.cli.StartContainer(ctx, id); err != nil {
		return err
	}
	ev, err := b.events.WaitFor(ctx, from, benchrun.EventWait, "start of the engine's container again", started)
	if err != nil {
		return err
	}
	res.add(mFloorStart, ev.At.Sub(died.At))
	return b.removeFloor(ctx, id)
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

func (b *bench) probeContainer(ctx context.Context) (dockerx.Container, error) {
	list, err := b.cli.ListContainers(ctx)
	if err != nil {
		return dockerx.Container{}, err
	}
	for _, c := range list {
		if c.Name == b.probeName() {
			return c, nil
		}
	}
	return dockerx.Container{}, fmt.Errorf("no %s", b.probeName())
}

func (b *bench) currentSettings() string {
	text, err := os.ReadFile(b.settings)
	if err != nil {
		return ""
	}
	return string(text)
}

// passes counts the reconcile passes the daemon has logged so far.
func (b *bench) passes() (int, error) {
	f, err := os.Open(b.logFile)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if bytes.Contains(sc.Bytes(), []byte(`"msg":"pass done"`)) {
			n++
		}
	}
	return n, sc.Err()
}

// kill sends SIGKILL to a container through the engine API, as `docker kill` does; pkg/dockerx has no call
// for it.
func kill(ctx context.Context, id string) error {
	sock := "/var/run/docker.sock"
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			return fmt.Errorf("DOCKER_HOST %s: the bench kills through a unix socket only", h)
		}
		sock = strings.TrimPrefix(h, "unix://")
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://docker/containers/"+id+"/kill?signal=KILL", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		body, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("kill %.12s: %s: %s", id, resp.Status, bytes.TrimSpace(body))
	}
	return nil
}

// rss is the process's resident memory, VmRSS of /proc/<pid>/status, in bytes.
func rss(pid int) (int64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on every Linux architecture Go runs on.
const clockTicks = 100

// cpuSeconds is the process's user plus system CPU time, utime + stime of /proc/<pid>/stat.
func cpuSeconds(pid int) (float64, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces; the fields after it start with the state (3rd).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(fields[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %q", pid, stat)
	}
	return float64(utime+stime) / clockTicks, nil
}
