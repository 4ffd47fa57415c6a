package daemon

import (
	"context"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/daemon/reload"
	"github.com/bee2d/bee2d/pkg/labels"
)

// reloadTask runs the reload rules of the server's applications (see package reload): the files are read
// and the signals sent through the server's connection, so it works for remote servers alike. It runs after
// every pass, since a pass may have recreated an application, and on its own every rule's interval, since
// files written into a volume (a certificate CertBot renewed) raise no Docker event.
type reloadTask struct {
	server  string
	tracker *reload.Tracker
	prober  *reload.Prober
	// looked is when each rule (app and watch) was last looked at.
	looked map[string]time.Time
}

func newReloads(server string) Task {
	return &reloadTask{server: server, looked: map[string]time.Time{}}
}

func (t *reloadTask) Name() string        { return "reload" }
func (t *reloadTask) Needs() []Capability { return []Capability{CanReload} }
func (t *reloadTask) FollowsPasses() bool { return true }

func (t *reloadTask) Run(ctx context.Context, r *Run) Result {
	s := r.Settings
	if t.tracker == nil && !hasReloads(s, t.server) {
		return Result{}
	}
	if t.tracker == nil {
		t.tracker = &reload.Tracker{Server: t.server, Metrics: r.Metrics}
		t.prober = &reload.Prober{}
	}
	snap, err := r.Snapshot(ctx)
	if err != nil {
		return Result{Err: err}
	}
	prefix := s.Prefix(t.server)
	t.prober.Prefix = prefix
	t.tracker.Log = r.Log
	running := func(app string) string {
		name := config.ContainerName(prefix, config.KindApp, app)
		for _, c := range snap.Containers {
			if c.Name == name && c.State == "running" && labels.Managed(c.Labels, prefix, t.server) {
				return c.ID
			}
		}
		return ""
	}
	now := r.Now()
	tasks := reload.Tasks(s, t.server, running)
	var next time.Time
	seen := map[string]bool{}
	for i, task := range tasks {
		key := task.App + "\x00" + task.Rule.Watch()
		seen[key] = true
		if last, ok := t.looked[key]; ok && !r.Pass && now.Before(last.Add(task.Rule.Every())) {
			// Not this rule's time: left out of this run, as an application that is not running is, which
			// keeps what the tracker knows of it.
			tasks[i].ContainerID = ""
		} else {
			t.looked[key] = now
		}
		if due := t.looked[key].Add(task.Rule.Every()); next.IsZero() || due.Before(next) {
			next = due
		}
	}
	for key := range t.looked {
		if !seen[key] {
			delete(t.looked, key)
		}
	}
	eng := r.Conn.(reload.Client) // CanReload
	t.tracker.Run(ctx, t.prober.Ops(eng), tasks)
	return Result{Next: next}
}

func hasReloads(s *config.Settings, server string) bool {
	for _, app := range s.ServicesOn(server, config.KindApp) {
		if len(app.Reload) > 0 {
			return true
		}
	}
	return false
}
