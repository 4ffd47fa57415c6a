package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// seen is an engine event with when the bench received it. Every time the bench reports ends at such a
// moment, for the daemon and for the engine alone alike, so both include the same event delivery.
type seen struct {
	dockerx.Event
	at time.Time
}

// eventLog keeps every container event of the run, in order.
type eventLog struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	evs     []seen
	err     error
	changed chan struct{} // closed and replaced when an event arrives or the stream ends
}

// followEvents follows the events of every container carrying the run's prefix label: the daemon's (which
// bee2d labels) and the engine-alone ones (which the bench labels so, without bee2d's owner label, so the
// daemon leaves them alone).
func followEvents(ctx context.Context, cli *dockerx.Client, runID string) (*eventLog, error) {
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &eventLog{cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
	evs, errs := cli.Events(ectx, map[string]string{labels.Prefix: runID})
	go func() {
		defer close(l.done)
		for {
			select {
			case ev, ok := <-evs:
				if !ok {
					l.end(errors.New("event stream ended"))
					return
				}
				l.add(seen{Event: ev, at: time.Now()})
			case err, ok := <-errs:
				if !ok {
					err = errors.New("event stream ended")
				}
				l.end(err)
				return
			}
		}
	}()
	return l, nil
}

func (l *eventLog) add(s seen) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, s)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *eventLog) end(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *eventLog) stop() {
	l.cancel()
	<-l.done
}

// mark is the position of the next event: a trial waits only for events from its own start on.
func (l *eventLog) mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.evs)
}

// waitFor returns the first event at or after position from that matches.
func (l *eventLog) waitFor(ctx context.Context, from int, what string, match func(dockerx.Event) bool) (seen, error) {
	timeout := time.NewTimer(2 * time.Minute)
	defer timeout.Stop()
	for {
		l.mu.Lock()
		for _, s := range l.evs[from:] {
			if match(s.Event) {
				l.mu.Unlock()
				return s, nil
			}
		}
		from = len(l.evs)
		changed, err := l.changed, l.err
		l.mu.Unlock()
		if err != nil {
			return seen{}, fmt.Errorf("waiting for %s: %w", what, err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return seen{}, ctx.Err()
		case <-timeout.C:
			return seen{}, fmt.Errorf("no %s within 2 minutes", what)
		}
	}
}
