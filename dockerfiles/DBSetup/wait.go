package main

import (
	"context"
	"fmt"
	"time"
)

// connectTimeout bounds one attempt to connect; retryEvery is the pause between attempts.
const (
	connectTimeout = 5 * time.Second
	retryEvery     = time.Second
)

// statementTimeout bounds one statement (CREATE DATABASE copies a template, which a busy disk makes slow).
const statementTimeout = 2 * time.Minute

// connectWithin calls connect until it succeeds, fails for good (permanent says so: a wrong password will
// not become right), or wait has passed. The last error says why the server was not reached.
func connectWithin[C any](ctx context.Context, wait time.Duration, logf func(string, ...any), what string,
	connect func(context.Context) (C, error), permanent func(error) bool) (C, error) {
	start := time.Now()
	deadline := start.Add(wait)
	var zero C
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, connectTimeout)
		c, err := connect(actx)
		cancel()
		if err == nil {
			if attempt > 1 {
				logf("%s: the server answered after %v", what, time.Since(start).Round(100*time.Millisecond))
			}
			return c, nil
		}
		if permanent(err) {
			return zero, err
		}
		if ctx.Err() != nil {
			return zero, ctx.Err()
		}
		if time.Now().Add(retryEvery).After(deadline) {
			return zero, fmt.Errorf("not reachable within %v: %w", wait, err)
		}
		if attempt == 1 {
			logf("%s: waiting for the server: %v", what, err)
		}
		select {
		case <-ctx.Done():
			return zero, ctx.Err()
		case <-time.After(retryEvery):
		}
	}
}
