// Command health measures health-gated deploys of `bee2d daemon` on the local engine. It runs the daemon as a
// subprocess over one web application with a health check (the test web application of internal/testdocker,
// probing itself) and times, from outside, through the engine's own event stream:
//
//   - edit → new version healthy: the application's version changed in the settings file, until the engine
//     reports the new container healthy (it serves from then on), and until bee2d has finished the deploy
//     (the old container gone, the new one under the final name);
//   - engine create + start → healthy: the same container spec created and started by the bench alone,
//     until the engine reports it healthy, interleaved with the daemon's rounds;
//   - rollback: a version that never becomes healthy, until the old version serves alone again, against
//     the gate's timeout (start_period + (retries+1) × interval + timeout).
//
// Each for deploy: start-first and stop-first in turn. It reports medians and differences; it never asserts
// a time.
//
//	go run ./bench/health [-rounds 10] [-deploy start-first,stop-first] [-interval 200ms] [-json out.json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/bee2d/bee2d/bench/internal/benchrun"
	"github.com/bee2d/bee2d/pkg/config"
)

// options are the command line.
type options struct {
	rounds      int
	modes       []string
	interval    time.Duration
	timeout     time.Duration
	startPeriod time.Duration
	retries     int
	debounce    time.Duration
	settle      time.Duration
	bee2d       string
	jsonOut     string
	keep        bool
}

// gate is how long bee2d waits for a new version's verdict, as the settings' health check gives it.
func (o options) gate() time.Duration {
	return o.startPeriod + time.Duration(o.retries+1)*o.interval + o.timeout
}

func main() { benchrun.Main("bench/health", parseFlags, run) }

func parseFlags(args []string) (options, error) {
	var opt options
	var modes string
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.IntVar(&opt.rounds, "rounds", 10, "rounds; each has a good and a bad deploy per mode and an engine-alone sample")
	fs.StringVar(&modes, "deploy", config.StartFirst+","+config.StopFirst, "deploy modes to measure, comma-separated")
	fs.DurationVar(&opt.interval, "interval", 200*time.Millisecond, "the health check's interval")
	fs.DurationVar(&opt.timeout, "timeout", 3*time.Second, "the health check's timeout (the probe itself gives up after 2s)")
	fs.DurationVar(&opt.startPeriod, "start-period", 0, "the health check's start period")
	fs.IntVar(&opt.retries, "retries", 3, "the health check's retries")
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
	for _, m := range strings.Split(modes, ",") {
		m = strings.TrimSpace(m)
		if m != config.StartFirst && m != config.StopFirst {
			return opt, fmt.Errorf("-deploy: %q is neither %s nor %s", m, config.StartFirst, config.StopFirst)
		}
		if !slices.Contains(opt.modes, m) {
			opt.modes = append(opt.modes, m)
		}
	}
	if opt.rounds < 1 || opt.retries < 1 || opt.interval < time.Millisecond || opt.timeout < time.Millisecond ||
		opt.startPeriod < 0 || opt.debounce < 0 || opt.settle < 0 {
		return opt, errors.New("-rounds and -retries must be at least 1, -interval and -timeout at least 1ms; -start-period, -debounce and -settle not negative")
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
	if res != nil {
		res.print(os.Stdout)
		if opt.jsonOut != "" {
			if jerr := benchrun.WriteJSON(opt.jsonOut, res); jerr != nil {
				return errors.Join(err, jerr)
			}
			fmt.Printf("\nwrote %s\n", opt.jsonOut)
		}
	}
	return err
}

// logf reports progress on stderr, so stdout holds only the results.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
