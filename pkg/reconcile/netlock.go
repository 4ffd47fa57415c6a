package reconcile

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bee2d/bee2d/pkg/engine"
)

// Docker 20.10 counts a network's endpoints in a store that concurrent stops and removals of its
// containers update without a lock; some decrements are lost, and the network then refuses removal ("has
// active endpoints") though nothing is on it, until dockerd restarts (moby/moby#42119). Engines of API
// 1.43 (Docker 24) and later no longer keep that count. On older ones the executor stops and removes the
// containers that share a network one at a time; other changes still run in parallel.

// serialStopsBefore is the first API version whose engines need no serialised stops.
const serialStopsBefore = "1.43"

// apiVersioner is an engine that tells the API version it speaks; *dockerx.Client does.
type apiVersioner interface {
	APIVersion() string
}

// networkLocks hold one mutex per network name.
type networkLocks struct {
	mu     sync.Mutex
	byName map[string]*sync.Mutex
}

// withNetworkLocks returns a copy of e for one execution, with locks when its engine needs them: an engine
// older than API 1.43, or one that does not say (the safe side).
func (e *Executor) withNetworkLocks() *Executor {
	c := *e
	c.netLocks = nil
	if v, ok := e.Engine.(apiVersioner); !ok || apiBefore(v.APIVersion(), serialStopsBefore) {
		c.netLocks = &networkLocks{byName: map[string]*sync.Mutex{}}
	}
	return &c
}

// lock takes the locks of every network in names, in sorted order so that two containers sharing two
// networks cannot wait for each other, and returns what releases them.
func (l *networkLocks) lock(names []string) (unlock func()) {
	if l == nil || len(names) == 0 {
		return func() {}
	}
	names = slices.Compact(slices.Sorted(slices.Values(names)))
	var held []*sync.Mutex
	for _, n := range names {
		l.mu.Lock()
		m := l.byName[n]
		if m == nil {
			m = &sync.Mutex{}
			l.byName[n] = m
		}
		l.mu.Unlock()
		m.Lock()
		held = append(held, m)
	}
	return func() {
		for _, m := range slices.Backward(held) {
			m.Unlock()
		}
	}
}

// stopContainer stops a live container, alone among the containers of its networks where the engine
// needs that.
func (e *Executor) stopContainer(ctx context.Context, c *engine.Container, timeout time.Duration) error {
	defer e.netLocks.lock(c.Networks)()
	return e.Engine.StopContainer(ctx, c.ID, timeout)
}

// removeContainer removes a live container (stopping it if it runs), alone among the containers of its
// networks where the engine needs that.
func (e *Executor) removeContainer(ctx context.Context, c *engine.Container) error {
	defer e.netLocks.lock(c.Networks)()
	return e.Engine.RemoveContainer(ctx, c.ID)
}

// recreateNetwork removes a network and creates it with the settings'. The plan removed its containers
// before; a network already gone is only created.
func (e *Executor) recreateNetwork(ctx context.Context, a Action) error {
	if err := e.removeNetwork(ctx, a.Resource); err != nil {
		return err
	}
	return e.Engine.CreateNetworkFrom(ctx, *a.Network)
}

// removeNetwork removes a network the plan found without containers; one already gone counts as removed.
func (e *Executor) removeNetwork(ctx context.Context, name string) error {
	err := e.Engine.RemoveNetwork(ctx, name)
	switch {
	case err == nil, engine.IsNotFound(err):
		return nil
	case e.netLocks != nil && strings.Contains(err.Error(), "active endpoints"):
		return &staleEndpointsError{err: err}
	}
	return err
}

// staleEndpointsError is a network an older engine refuses to remove for endpoints that may be gone.
type staleEndpointsError struct{ err error }

func (e *staleEndpointsError) Error() string {
	return e.err.Error() + " (if no container is on it, the engine lost count of its endpoints, moby/moby#42119: restarting dockerd clears it)"
}
func (e *staleEndpointsError) Unwrap() error { return e.err }

// apiBefore tells whether API version v is older than min; a version that does not read as major.minor
// counts as older.
func apiBefore(v, min string) bool {
	parse := func(s string) (int, int, error) {
		maj, minor, ok := strings.Cut(s, ".")
		if !ok {
			return 0, 0, fmt.Errorf("version %q", s)
		}
		a, err1 := strconv.Atoi(maj)
		b, err2 := strconv.Atoi(minor)
		return a, b, errors.Join(err1, err2)
	}
	vMaj, vMin, err := parse(v)
	if err != nil {
		return true
	}
	mMaj, mMin, err := parse(min)
	if err != nil {
		return true
	}
	return vMaj < mMaj || (vMaj == mMaj && vMin < mMin)
}

// failedDep returns the first resource an action needs whose action failed or was skipped.
func (r *execution) failedDep(a Action) string {
	for _, dep := range a.Deps() {
		if r.hasFailed(dep) {
			return dep
		}
	}
	return ""
}
