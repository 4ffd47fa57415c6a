package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/gitx"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// session is one command's view of the settings: which servers it works on and how it logs.
type session struct {
	settings *config.Settings
	servers  []string
	log      *zap.Logger
	// progress receives build and pull output: the terminal, or nothing.
	progress io.Writer
	// jobOutput gives the writer of a job's output; nil drops it.
	jobOutput func(job string) io.Writer
}

func newSession(s *config.Settings, c common, stderr io.Writer) (*session, error) {
	log, err := newLogger(c.logLevel, stderr)
	if err != nil {
		return nil, err
	}
	sess := &session{settings: s, log: log}
	if isTerminal(os.Stdout) {
		sess.progress = os.Stdout
	}
	if c.server != "" {
		if s.Server(c.server) == nil {
			return nil, fmt.Errorf("no server %q in %s", c.server, s.File)
		}
		sess.servers = []string{c.server}
	} else {
		for _, srv := range s.Servers {
			sess.servers = append(sess.servers, srv.Name)
		}
	}
	return sess, nil
}

// newLogger logs for people: console lines on stderr, without stack traces.
func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	enc := zap.NewDevelopmentEncoderConfig()
	enc.EncodeTime = zapcore.TimeEncoderOfLayout(time.TimeOnly)
	// Servers log at once: writes to w are serialised.
	core := zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.Lock(zapcore.AddSync(w)), lvl)
	return zap.New(core), nil
}

// server is one connected server with its desired state.
type server struct {
	name    string
	client  *dockerx.Client
	desired *reconcile.Desired
	sess    *session
}

// eachServer runs fn on every selected server at once, then prints their outputs in settings order.
// A server that fails does not stop the others; the errors come back joined, each naming its server.
func (sess *session) eachServer(ctx context.Context, fn func(context.Context, *server) (string, error), stdout io.Writer) error {
	outs := make([]string, len(sess.servers))
	errs := make([]error, len(sess.servers))
	var wg sync.WaitGroup
	for i, name := range sess.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			srv, err := sess.connect(ctx, name)
			if err != nil {
				errs[i] = fmt.Errorf("server %s: %w", name, err)
				return
			}
			defer srv.client.Close()
			outs[i], err = fn(ctx, srv)
			if err != nil {
				errs[i] = fmt.Errorf("server %s: %w", name, err)
			}
		}()
	}
	wg.Wait()
	for _, o := range outs {
		fmt.Fprint(stdout, o)
	}
	return errors.Join(errs...)
}

// connect computes the server's desired state first, so that a bad build directory is reported before any
// connection is made, then connects.
func (sess *session) connect(ctx context.Context, name string) (*server, error) {
	d, err := reconcile.DesireFrom(sess.settings, name, reconcile.Sources{Digest: dockerx.ContextDigest, Head: gitx.Heads(ctx)})
	if err != nil {
		return nil, err
	}
	ep, err := reconcile.EndpointFor(sess.settings, name)
	if err != nil {
		return nil, err
	}
	reconcile.WarnInsecure(sess.log.With(zap.String("server", name)), ep)
	cli, err := dockerx.Connect(ctx, ep)
	if err != nil {
		return nil, err
	}
	return &server{name: name, client: cli, desired: d, sess: sess}, nil
}

func (srv *server) plan(ctx context.Context, opt reconcile.Options) (*reconcile.Plan, *reconcile.Snapshot, error) {
	return reconcile.PlanServer(ctx, srv.client, srv.desired, opt)
}

// converge runs one pass, as the daemon does: observe, plan, execute, with the plan logged as it is
// applied. It returns the summary; what the plan leaves alone is an error.
func (srv *server) converge(ctx context.Context, opt reconcile.Options) (string, error) {
	res, err := reconcile.Apply(ctx, srv.client, reconcile.Pass{
		Desired: srv.desired,
		Options: opt,
		Executor: reconcile.Executor{
			Output:    srv.sess.progress,
			Parallel:  defaultParallel,
			JobOutput: srv.sess.jobOutput,
			Clone:     gitx.CloneTemp,
		},
	}, srv.sess.log.With(zap.String("server", srv.name)))
	var observe *reconcile.ObserveError
	if errors.As(err, &observe) {
		return "", observe.Err
	}
	if res.Plan.Empty() {
		return fmt.Sprintf("server %s: no changes\n", srv.name), res.Blocked()
	}
	r := res.Result
	summary := fmt.Sprintf("server %s: %d applied, %d failed, %d skipped\n", srv.name, r.Applied, r.Failed, r.Skipped)
	return summary, errors.Join(err, res.Blocked())
}

// defaultParallel bounds the container actions run at once on one server. The engine creates and starts
// containers at the same rate with 4, 8, 16 or 32 in flight (bench/apply's -sweep), because it sets them up
// one at a time behind a lock; more in flight only makes each call wait longer, and the executor learns of
// a failure later.
const defaultParallel = 8
