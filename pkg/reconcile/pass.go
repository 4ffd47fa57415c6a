package reconcile

import (
	"context"
	"errors"
	"fmt"

	"go.uber.org/zap"
)

// Host is a server's engine as a convergence uses it: it lists live state and it acts.
type Host interface {
	Engine
	Observer
}

// Pass is one convergence of one server: observe, plan, execute. `bee2d apply`, `-d` and the daemon's
// convergence task all run it through Apply.
type Pass struct {
	Desired *Desired
	Options Options
	Hints   Hints
	// Hold, if set, is given the plan and the snapshot it was made from before the plan runs; it takes
	// actions out of the plan and returns the resources held, with why: the daemon holds back a container
	// whose start keeps failing while the rest of the server converges.
	Hold func(*Plan, *Snapshot) map[string]string
	// Executor runs the plan; Apply sets its Engine, Prefix, Server and Log.
	Executor Executor
}

// Converged is what a pass saw and did.
type Converged struct {
	// Plan is what ran (after Hold); Snapshot the live state it was planned from.
	Plan     *Plan
	Snapshot *Snapshot
	// Held are the resources Hold took out of the plan, with why.
	Held map[string]string
	// Result counts the actions executed; zero when the plan was empty.
	Result Result
	// NetworksSeen is the desired networks' digest when the plan found nothing to do about networks, for
	// the next pass's Hints.NetworksSeen; empty when it did (a pass after it looks again).
	NetworksSeen string
}

// Blocked joins what the plan leaves alone although it differs from the settings, one error each.
func (c *Converged) Blocked() error {
	var err error
	for _, b := range c.Plan.Blocked {
		err = errors.Join(err, fmt.Errorf("%s: %s", b.Resource, b.Reason))
	}
	return err
}

// ObserveError is a pass that could not see the server: its engine did not answer a list call. Nothing was
// changed.
type ObserveError struct{ Err error }

func (e *ObserveError) Error() string { return e.Err.Error() }
func (e *ObserveError) Unwrap() error { return e.Err }

// Apply observes the server, plans, logs what waits and what is left alone, and executes the plan. An
// error that is an *ObserveError changed nothing; any other comes from the actions, each of which the
// executor tried.
func Apply(ctx context.Context, host Host, p Pass, log *zap.Logger) (*Converged, error) {
	plan, snap, err := PlanServerWith(ctx, host, p.Desired, p.Options, p.Hints)
	if err != nil {
		return nil, &ObserveError{err}
	}
	c := &Converged{Plan: plan, Snapshot: snap}
	if !plan.touchesNetworks(p.Desired, snap) {
		c.NetworksSeen = p.Desired.NetworksDigest()
	}
	if p.Hold != nil {
		c.Held = p.Hold(plan, snap)
	}
	for _, w := range plan.Waiting {
		log.Info("waiting", zap.String("name", w.Resource), zap.String("reason", w.Reason))
	}
	for _, b := range plan.Blocked {
		log.Warn("left alone", zap.String("name", b.Resource), zap.String("reason", b.Reason))
	}
	if plan.Empty() {
		return c, nil
	}
	ex := p.Executor
	ex.Engine, ex.Log = host, log
	ex.Prefix, ex.Server = p.Desired.Prefix, p.Desired.Server
	c.Result, err = ex.Execute(ctx, plan)
	return c, err
}
