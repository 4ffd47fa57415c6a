// Command daemon measures how fast `bee2d daemon` reacts on the local engine, and what it costs while idle.
// It runs the daemon as a subprocess over N sleeper applications plus one probe application and times,
// from outside, through the engine's own event stream:
//
//   - edit → converged: the probe's env changed in the settings file, until the new container has started;
//   - rm -f → restored: the probe removed by force, until a new one has started;
//   - kill → restored: the probe killed with SIGKILL, until it runs again;
//
// each beside the engine doing the same container work with nothing around it (create and start; stop,
// rename, create and start; start), measured in the same run and interleaved with the daemon's trials. Then
// the daemon's resident memory after convergence and its CPU time over an idle period. It reports medians
// and differences; it never asserts a time.
//
//	go run ./bench/daemon [-n 100] [-trials 20] [-idle 5m] [-debounce 50ms] [-json out.json]
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
	trials   int
	idle     time.Duration
	debounce time.Duration
	settle   time.Duration
	bee2d    string
	jsonOut  string
	keep     bool
}

func main() { benchrun.Main("bench/daemon", parseFlags, run) }

func parseFlags(args []string) (options, error) {
	var opt options
	fs := flag.NewFlagSet("daemon", flag.ContinueOnError)
	fs.IntVar(&opt.n, "n", 100, "managed sleeper containers besides the probe")
	fs.IntVar(&opt.trials, "trials", 20, "trials of each kind; medians are reported")
	fs.DurationVar(&opt.idle, "idle", 5*time.Minute, "how long the idle daemon's CPU time is measured")
	fs.DurationVar(&opt.debounce, "debounce", 50*time.Millisecond, "the daemon's --debounce (part of the edit latency)")
	fs.DurationVar(&opt.settle, "settle", 1500*time.Millisecond, "quiet time after each trial, so trials do not overlap the daemon's follow-up passes")
	fs.StringVar(&opt.bee2d, "bee2d", "", "bee2d binary to measure (default: built from ./cmd/bee2d into a temporary directory)")
	fs.StringVar(&opt.jsonOut, "json", "", "also write the numbers to this file")
	fs.BoolVar(&opt.keep, "keep", false, "keep the settings file and the daemon's log (containers are removed anyway)")
	if err := fs.Parse(args); err != nil {
		return opt, err
	}
	if fs.NArg() > 0 {
		return opt, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if opt.n < 0 || opt.trials < 1 || opt.idle < 0 || opt.debounce < 0 || opt.settle < 0 {
		return opt, errors.New("-trials must be at least 1; -n, -idle, -debounce and -settle not negative")
	}
	return opt, nil
}

func run(ctx context.Context, opt options) (err error) {
	b, err := newBench(ctx, opt)
	if err != nil {
		return err
	}
	// Whatever happens from here on, on error or Ctrl-C too, the daemon stops and the run's containers,
	// network and image go.
	defer func() {
		if cerr := b.close(); cerr != nil {
			err = errors.Join(err, cerr)
		}
	}()
	if err := b.prepare(ctx); err != nil {
		return err
	}
	res, err := b.measure(ctx)
	if err != nil {
		return err
	}
	res.print(os.Stdout)
	if opt.jsonOut != "" {
		if err := benchrun.WriteJSON(opt.jsonOut, res); err != nil {
			return err
		}
		fmt.Printf("\nwrote %s\n", opt.jsonOut)
	}
	return nil
}

// logf reports progress on stderr, so stdout holds only the results.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
