// Command gitops measures how fast `bee2d daemon --git` turns a `git push` into a running container on the
// local engine, and how long a new commit of a large settings repository takes to fetch, check out and
// validate. The repositories are bare repositories of the bench, served to the daemon over git's smart HTTP
// (git http-backend behind net/http/cgi on 127.0.0.1), so the daemon fetches as it would from a forge.
//
//   - push → started: a commit changing one env value of the probe application is pushed, until the engine's
//     `start` event of the probe's new container; with the webhook (--git-poll 0, the bench posts the signed
//     webhook right after the push returns, and the time includes the post) and with a 1 s poll;
//   - beside each webhook push, the engine creating and starting the same container with nothing around it
//     (and doing what a recreate asks of it), the floor;
//   - a repository of 200 applications and about 5 MB: fetch into the mirror, check out, load and validate
//     a new commit, in process through pkg/gitx and pkg/config, beside plain git doing the same.
//
// It reports medians, percentiles and differences; it never asserts a time.
//
//	go run ./bench/gitops [-n 20] [-bee2d bin/bee2d] [-json out.json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/bee2d/bee2d/bench/internal/benchrun"
)

// options are the command line.
type options struct {
	n        int
	sleepers int
	poll     time.Duration
	bigApps  int
	bigMB    int
	settle   time.Duration
	bee2d    string
	jsonOut  string
	keep     bool
	skipPush bool
	skipBig  bool
	deploy   string
}

func main() { benchrun.Main("bench/gitops", parseFlags, run) }

func parseFlags(args []string) (options, error) {
	var opt options
	fs := flag.NewFlagSet("gitops", flag.ContinueOnError)
	fs.IntVar(&opt.n, "n", 20, "pushes in each mode, and commits of the large repository; medians are reported")
	fs.IntVar(&opt.sleepers, "sleepers", 4, "applications besides the probe in the pushed settings (their containers stay)")
	fs.DurationVar(&opt.poll, "poll", time.Second, "the daemon's --git-poll in the poll mode")
	fs.IntVar(&opt.bigApps, "big-apps", 200, "applications in the large repository")
	fs.IntVar(&opt.bigMB, "big-mb", 5, "size of the large repository's files, in MB")
	fs.DurationVar(&opt.settle, "settle", 1500*time.Millisecond, "quiet time after each trial, so trials do not overlap the daemon's follow-up passes")
	fs.StringVar(&opt.bee2d, "bee2d", "", "bee2d binary to measure (default: built from ./cmd/bee2d into bin/bee2d)")
	fs.StringVar(&opt.jsonOut, "json", "", "also write the numbers to this file")
	fs.BoolVar(&opt.keep, "keep", false, "keep the run's directory: repositories, the daemons' state and logs (containers are removed anyway)")
	fs.BoolVar(&opt.skipPush, "skip-push", false, "skip the push trials (no daemon, no containers)")
	fs.BoolVar(&opt.skipBig, "skip-big", false, "skip the large repository")
	fs.StringVar(&opt.deploy, "deploy", "stop-first", "the probe application's deploy: stop-first (bee2d's default: the old container stops before the new one starts) or start-first")
	if err := fs.Parse(args); err != nil {
		return opt, err
	}
	if fs.NArg() > 0 {
		return opt, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if opt.deploy != "stop-first" && opt.deploy != "start-first" {
		return opt, fmt.Errorf("-deploy %q: want stop-first or start-first", opt.deploy)
	}
	if opt.n < 1 || opt.sleepers < 0 || opt.poll < time.Second || opt.bigApps < 1 || opt.bigMB < 0 || opt.settle < 0 {
		return opt, errors.New("-n and -big-apps must be at least 1, -poll at least 1s; -sleepers, -big-mb and -settle not negative")
	}
	return opt, nil
}

func run(ctx context.Context, opt options) (err error) {
	b, err := newBench(ctx, opt)
	if err != nil {
		return err
	}
	// Whatever happens from here on, on error or Ctrl-C too, the daemon stops and the run's containers,
	// network, image, repositories and files go.
	defer func() {
		if cerr := b.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if err := b.prepare(ctx); err != nil {
		return err
	}
	res := newResults(b)
	merr := b.measure(ctx, res)
	if merr != nil && res.empty() {
		return merr
	}
	// What was measured before a failure is still worth reading; the table says it is partial.
	if merr != nil {
		res.Partial = merr.Error()
	}
	res.finish()
	res.print(os.Stdout)
	if opt.jsonOut != "" {
		if err := benchrun.WriteJSON(opt.jsonOut, res); err != nil {
			return errors.Join(merr, err)
		}
		fmt.Printf("\nwrote %s\n", opt.jsonOut)
	}
	return merr
}

// logf reports progress on stderr, so stdout holds only the results.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
