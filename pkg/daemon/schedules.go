package daemon

import (
	"context"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
)

// scheduleTask watches the times that call for a pass of their own: a job's schedule firing (the pass then
// runs the job) and a git source's poll interval running out (the pass then asks the remote for its head).
// It runs after every pass, which may have refreshed the heads, and when the earliest of those times comes.
type scheduleTask struct {
	server string
	next   map[string]nextFire // by job name
}

// nextFire is when a job's schedule fires next.
type nextFire struct {
	spec string
	at   time.Time
}

func newSchedules(server string) Task {
	return &scheduleTask{server: server, next: map[string]nextFire{}}
}

func (t *scheduleTask) Name() string        { return "schedule" }
func (t *scheduleTask) Needs() []Capability { return nil }
func (t *scheduleTask) FollowsPasses() bool { return true }

func (t *scheduleTask) Run(_ context.Context, r *Run) Result {
	if r.w.pass == nil {
		return Result{} // no convergence to run jobs or builds
	}
	conv := r.w.converge()
	now := r.Now()
	due := t.fired(r.Settings, now)
	var res Result
	if len(due) > 0 {
		conv.forceJobs(due)
		res.Pass = true
	}
	consider := func(at time.Time) {
		if !at.IsZero() && (res.Next.IsZero() || at.Before(res.Next)) {
			res.Next = at
		}
	}
	for _, n := range t.next {
		consider(n.at)
	}
	if stale := conv.heads.nextExpiry(r.Settings, t.server); !stale.IsZero() {
		if now.Before(stale) {
			consider(stale)
		} else {
			res.Pass = true // the pass asks the remote again; this task runs after it and looks anew
		}
	}
	return res
}

// fired returns the jobs of this server whose schedule fired since the last look, with why, and arms the
// next firing of each.
func (t *scheduleTask) fired(s *config.Settings, now time.Time) map[string]string {
	due := map[string]string{}
	seen := map[string]bool{}
	for _, j := range s.ServicesOn(t.server, config.KindJob) {
		if j.Schedule == "" {
			continue
		}
		seen[j.Name] = true
		sched, err := config.ParseSchedule(j.Schedule)
		if err != nil {
			continue // validated when loaded
		}
		next, ok := t.next[j.Name]
		if !ok || next.spec != j.Schedule {
			// A new or changed schedule starts counting now: it does not fire for the past.
			t.next[j.Name] = nextFire{spec: j.Schedule, at: sched.Next(now)}
			continue
		}
		if !now.Before(next.at) {
			due[j.Name] = "schedule " + j.Schedule + " fired"
			t.next[j.Name] = nextFire{spec: j.Schedule, at: sched.Next(now)}
		}
	}
	for name := range t.next {
		if !seen[name] {
			delete(t.next, name)
		}
	}
	return due
}
