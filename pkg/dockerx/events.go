package dockerx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// ErrEventStreamClosed is sent when the engine ends the event stream without an error.
var ErrEventStreamClosed = errors.New("event stream closed by the engine")

// Events streams the container events whose labels include all of labels. The stream has no timeout:
// it ends when ctx ends (the error channel then closes) or when the connection breaks (the error channel
// gets the error). Events can be missed while nobody listens, so a caller that reconnects must re-list.
func (c *Client) Events(ctx context.Context, labels map[string]string) (<-chan Event, <-chan error) {
	f := filters.NewArgs(filters.Arg("type", string(events.ContainerEventType)))
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	msgs, errs := c.api.Events(ctx, events.ListOptions{Filters: f})
	out := make(chan Event)
	outErr := make(chan error, 1)
	go func() {
		defer close(out)
		defer close(outErr)
		for {
			select {
			case m := <-msgs:
				ev := Event{
					Action: string(m.Action),
					ID:     m.Actor.ID,
					Name:   strings.TrimPrefix(m.Actor.Attributes["name"], "/"),
					Labels: m.Actor.Attributes,
					Time:   time.Unix(0, m.TimeNano),
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case err := <-errs:
				if ctx.Err() != nil {
					return
				}
				if err == nil || errors.Is(err, io.EOF) {
					err = ErrEventStreamClosed
				}
				outErr <- fmt.Errorf("events from %s: %w", c.Host(), err)
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, outErr
}
