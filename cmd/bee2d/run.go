package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c common
	fs := newFlags("run", "run -c settings.yml SERVER [JOB]", &c, false, stderr)
	if err := fs.Parse(args); err != nil {
		return exitCode(errUsage, stderr)
	}
	rest := fs.Args()
	if len(rest) < 1 || len(rest) > 2 {
		fmt.Fprintln(stderr, "bee2d run: want SERVER [JOB]")
		fs.Usage()
		return exitError
	}
	if err := parse(fs, &c, nil); err != nil {
		return exitCode(err, stderr)
	}
	job := ""
	if len(rest) == 2 {
		job = rest[1]
	}
	return runJobs(ctx, c, rest[0], job, stdout, stderr)
}

// runJobs runs a server's jobs, or one, now, streaming their output with a prefix. The exit code is the
// first failing job's, so scripts can act on it.
func runJobs(ctx context.Context, c common, serverName, job string, stdout, stderr io.Writer) int {
	s, err := load(c, stderr)
	if err != nil {
		return exitCode(err, stderr)
	}
	if s.Server(serverName) == nil {
		return exitCode(fmt.Errorf("no server %q in %s", serverName, s.File), stderr)
	}
	if job != "" {
		if j := s.JobOn(serverName, job); j == nil {
			return exitCode(fmt.Errorf("no job %q on server %s", job, serverName), stderr)
		}
	} else if len(s.ServicesOn(serverName, config.KindJob)) == 0 {
		return exitCode(fmt.Errorf("server %s has no jobs", serverName), stderr)
	}
	c.server = serverName
	sess, err := newSession(s, c, stderr)
	if err != nil {
		return exitCode(err, stderr)
	}
	var mu sync.Mutex
	sess.jobOutput = func(name string) io.Writer {
		return &prefixWriter{prefix: "[" + name + "] ", w: stdout, mu: &mu}
	}
	err = sess.eachServer(ctx, func(ctx context.Context, srv *server) (string, error) {
		return srv.converge(ctx, reconcile.Options{Mode: reconcile.RunJobs, Only: job})
	}, stdout)
	var jobErr *reconcile.JobError
	if errors.As(err, &jobErr) {
		fmt.Fprintf(stderr, "bee2d: %v\n", err)
		if jobErr.Code > 0 && jobErr.Code < 256 {
			return jobErr.Code
		}
		return exitError
	}
	return exitCode(err, stderr)
}

// prefixWriter writes each line with a prefix, keeping lines of concurrent writers whole.
type prefixWriter struct {
	prefix string
	w      io.Writer
	mu     *sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.mu.Lock()
		_, err := fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf[:i])
		p.mu.Unlock()
		if err != nil {
			return len(b), err
		}
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}
