package benchrun

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// EventWait is how long a bench waits for an event it expects before it gives up on the trial.
const EventWait = 2 * time.Minute

// Seen is an engine event with when the bench received it. Every time a bench reports ends at such a
// moment, for the daemon and for the engine alone alike, so both include the same event delivery.
type Seen struct {
	dockerx.Event
	At time.Time
}

// EventLog keeps the container events of a run, in order.
type EventLog struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	evs     []Seen
	err     error
	changed chan struct{} // closed and replaced when an event arrives or the stream ends
}

// FollowEvents follows the events of every container carrying the run's prefix label: the daemon's (which
// bee2d labels) and the engine-alone ones (which a bench labels so, without bee2d's owner label, so the
// daemon leaves them alone). keep, when set, says which events to keep (a bench of health checks drops
// the probes' exec events).
func FollowEvents(ctx context.Context, cli *dockerx.Client, runID string, keep func(dockerx.Event) bool) *EventLog {
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	l := &EventLog{cancel: cancel, done: make(chan struct{}), changed: make(chan struct{})}
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
				if keep == nil || keep(ev) {
					l.add(Seen{Event: ev, At: time.Now()})
				}
			case err, ok := <-errs:
				if !ok {
					err = errors.New("event stream ended")
				}
				l.end(err)
				return
			}
		}
	}()
	return l
}

func (l *EventLog) add(s Seen) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, s)
	close(l.changed)
	l.changed = make(chan struct{})
}

func (l *EventLog) end(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
	close(l.changed)
	l.changed = make(chan struct{})
}

// Stop ends the stream and waits for its reader.
func (l *EventLog) Stop() {
	l.cancel()
	<-l.done
}

// Mark is the position of the next event: a trial waits only for events from its own start on.
func (l *EventLog) Mark() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.evs)
}

// Find returns the first event at or after position from that matches, if it has arrived.
func (l *EventLog) Find(from int, match func(dockerx.Event) bool) (Seen, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.evs[from:] {
		if match(s.Event) {
			return s, true
		}
	}
	return Seen{}, false
}

// WaitFor returns the first event at or after position from that matches, waiting up to within for it.
func (l *EventLog) WaitFor(ctx context.Context, from int, within time.Duration, what string, match func(dockerx.Event) bool) (Seen, error) {
	timeout := time.NewTimer(within)
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
			return Seen{}, fmt.Errorf("waiting for %s: %w", what, err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Seen{}, ctx.Err()
		case <-timeout.C:
			return Seen{}, fmt.Errorf("no %s within %v", what, within)
		}
	}
}
