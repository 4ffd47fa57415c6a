package daemon

import (
	"slices"
	"sync"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// headCache remembers the branch heads of git sources, so the daemon asks each remote once per poll
// interval rather than on every pass.
type headCache struct {
	mu      sync.Mutex
	entries map[string]headEntry // by url + "\x00" + branch
}

type headEntry struct {
	commit string
	err    error
	at     time.Time
}

// lookup returns a HeadFunc that answers from the cache while an entry is younger than the shortest poll
// of the services using that source, and asks ask otherwise.
func (c *headCache) lookup(s *config.Settings, ask reconcile.HeadFunc, now func() time.Time) reconcile.HeadFunc {
	return func(url, branch string) (string, error) {
		key := url + "\x00" + branch
		ttl := pollOf(s, url, branch)
		c.mu.Lock()
		e, ok := c.entries[key]
		c.mu.Unlock()
		if ok && now().Sub(e.at) < ttl {
			return e.commit, e.err
		}
		commit, err := ask(url, branch)
		c.mu.Lock()
		c.entries[key] = headEntry{commit: commit, err: err, at: now()}
		c.mu.Unlock()
		return commit, err
	}
}

// nextExpiry is when the first cached head of the server's git sources goes stale.
func (c *headCache) nextExpiry(s *config.Settings, server string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var earliest time.Time
	for _, svc := range append(s.ServicesOn(server, config.KindApp), s.ServicesOn(server, config.KindJob)...) {
		if svc.Git == "" {
			continue
		}
		e, ok := c.entries[svc.Git+"\x00"+svc.Branch]
		if !ok {
			continue
		}
		t := e.at.Add(pollOf(s, svc.Git, svc.Branch))
		if earliest.IsZero() || t.Before(earliest) {
			earliest = t
		}
	}
	return earliest
}

// pollOf is the shortest poll interval among the services that use a git source.
func pollOf(s *config.Settings, url, branch string) time.Duration {
	poll := time.Duration(0)
	for _, svc := range append(slices.Clone(s.Applications), s.Jobs...) {
		if svc.Git != url || svc.Branch != branch {
			continue
		}
		p := svc.Poll
		if p <= 0 {
			p = config.DefaultPoll
		}
		if poll == 0 || p < poll {
			poll = p
		}
	}
	if poll == 0 {
		poll = config.DefaultPoll
	}
	return poll
}
