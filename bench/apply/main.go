// Command apply measures how long bee2d takes to converge N applications on the local engine, against
// Docker Compose v2 on the same services and against the engine's own floor (the same containers created
// and started straight through the API), all in one run on one engine. It reports medians and ratios; it
// never asserts a time.
//
//	go run ./bench/apply [-n 100] [-rounds 5] [-bee2d bin/bee2d] [-json out.json]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bee2d/bee2d/bench/internal/benchrun"
)

// options are the command line.
type options struct {
	n           int
	rounds      int
	warmup      int
	parallel    int
	sweep       []int
	sweepRounds int
	bee2d       string
	baseline    string
	compose     string
	jsonOut     string
	keep        bool
}

func main() { benchrun.Main("bench/apply", parseFlags, run) }

func parseFlags(args []string) (options, error) {
	var opt options
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	fs.IntVar(&opt.n, "n", 100, "number of applications (containers)")
	fs.IntVar(&opt.rounds, "rounds", 5, "measured rounds; the median is reported")
	fs.IntVar(&opt.warmup, "warmup", 1, "unmeasured rounds first, so caches are warm for every contender alike")
	fs.IntVar(&opt.parallel, "parallel", 0, "concurrency of the floor; 0 reads defaultParallel from cmd/bee2d/session.go")
	sweep := fs.String("sweep", "4,8,16,32,100", "concurrencies of the extra floor pass (empty: none)")
	fs.IntVar(&opt.sweepRounds, "sweep-rounds", 3, "samples per concurrency in the extra floor pass")
	fs.StringVar(&opt.bee2d, "bee2d", "", "bee2d binary to measure (default: build bin/bee2d from ./cmd/bee2d)")
	fs.StringVar(&opt.baseline, "baseline", "", "an earlier bee2d binary, measured in the same rounds: its cold and no-change applies, and bee2d's against them")
	fs.StringVar(&opt.compose, "compose", "", "docker-compose v2 binary (default: bench/tools/compose.sh, bench/bin/docker-compose)")
	fs.StringVar(&opt.jsonOut, "json", "", "also write the numbers to this file")
	fs.BoolVar(&opt.keep, "keep", false, "keep the generated settings and compose files (containers are removed anyway)")
	if err := fs.Parse(args); err != nil {
		return opt, err
	}
	if fs.NArg() > 0 {
		return opt, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if opt.n < 1 || opt.rounds < 1 || opt.warmup < 0 || opt.parallel < 0 || opt.sweepRounds < 1 {
		return opt, errors.New("-n, -rounds and -sweep-rounds must be at least 1; -warmup and -parallel not negative")
	}
	for _, f := range strings.FieldsFunc(*sweep, func(r rune) bool { return r == ',' || r == ' ' }) {
		c, err := strconv.Atoi(f)
		if err != nil || c < 1 {
			return opt, fmt.Errorf("-sweep: %q is not a concurrency", f)
		}
		opt.sweep = append(opt.sweep, c)
	}
	return opt, nil
}

func run(ctx context.Context, opt options) (err error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return err
	}
	if opt.parallel == 0 {
		if opt.parallel, err = bee2dParallel(filepath.Join(root, "cmd", "bee2d", "session.go")); err != nil {
			return err
		}
	}

	b, err := newBench(ctx, opt, root)
	if err != nil {
		return err
	}
	// Whatever happens from here on, on error or Ctrl-C too, the bench's containers, networks and image go.
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
	res.print(os.Stdout)
	if opt.jsonOut != "" {
		if err := res.writeJSON(opt.jsonOut); err != nil {
			return errors.Join(merr, err)
		}
		fmt.Printf("\nwrote %s\n", opt.jsonOut)
	}
	return merr
}

// measure takes the warm-up rounds, the measured rounds and the concurrency sweep. Each contender starts
// from nothing and is torn down after (teardown is not timed); the order of the contenders rotates from
// round to round, so none always runs right after another's teardown.
func (b *bench) measure(ctx context.Context, res *results) error {
	others, err := b.otherContainers(ctx)
	if err != nil {
		return err
	}
	res.OtherContainers = others
	contenders := []func(context.Context, *results) error{b.roundBee2d, b.roundCompose, b.roundFloor}
	if b.opt.baseline != "" {
		contenders = append(contenders, b.roundBaseline)
	}
	total := b.opt.warmup + b.opt.rounds
	for r := range total {
		warm := r < b.opt.warmup
		if warm {
			logf("warm-up %d/%d", r+1, b.opt.warmup)
		} else {
			logf("round %d/%d", r-b.opt.warmup+1, b.opt.rounds)
		}
		sink := res
		if warm {
			sink = newResults(b) // thrown away
		}
		for i := range contenders {
			sink.noteLoad()
			if err := contenders[(r+i)%len(contenders)](ctx, sink); err != nil {
				return err
			}
		}
	}

	for sr := range b.opt.sweepRounds {
		if len(b.opt.sweep) == 0 {
			break
		}
		logf("floor by concurrency, pass %d/%d", sr+1, b.opt.sweepRounds)
		for i := range b.opt.sweep {
			c := b.opt.sweep[(sr+i)%len(b.opt.sweep)]
			d, err := b.floor(ctx, c)
			// A concurrency the engine cannot take (a call past its timeout) is a finding, not the end.
			if err != nil && ctx.Err() == nil {
				logf("  floor parallel %-3d failed: %v", c, err)
				res.addSweepError(c, err)
			} else if err != nil {
				return err
			} else {
				logf("  floor parallel %-3d %6.2fs", c, d.Seconds())
				res.addSweep(c, d)
			}
			if err := b.teardown(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// roundBee2d times a cold apply and then a no-change apply on the converged state.
func (b *bench) roundBee2d(ctx context.Context, res *results) error {
	return b.roundOf(ctx, res, b.bee2dBin, "bee2d", mBee2dCold, mBee2dNoop)
}

// roundBaseline does the same with the earlier bee2d of -baseline.
func (b *bench) roundBaseline(ctx context.Context, res *results) error {
	return b.roundOf(ctx, res, b.opt.baseline, "baseline", mBaseCold, mBaseNoop)
}

func (b *bench) roundOf(ctx context.Context, res *results, bin, who string, cold, noop measurement) error {
	d, out, err := b.timed(ctx, bin, "apply", "-c", b.settingsFile)
	if err != nil {
		return fmt.Errorf("%s cold apply: %w\n%s", who, err, out)
	}
	ids, err := b.converged(ctx, ownerBee2d)
	if err != nil {
		return fmt.Errorf("after %s cold apply: %w\n%s", who, err, out)
	}
	res.add(cold, d)

	d, out, err = b.timed(ctx, bin, "apply", "-c", b.settingsFile)
	if err != nil {
		return fmt.Errorf("%s no-change apply: %w\n%s", who, err, out)
	}
	if !strings.Contains(string(out), "no changes") {
		return fmt.Errorf("%s no-change apply changed something:\n%s", who, out)
	}
	if err := b.unchanged(ctx, ownerBee2d, ids); err != nil {
		return fmt.Errorf("after %s no-change apply: %w\n%s", who, err, out)
	}
	res.add(noop, d)
	logf("  %-8s cold %6.2fs   no-change %6.3fs", who, res.last(cold), res.last(noop))
	return b.teardown(ctx)
}

// roundCompose times a cold `up -d` and then a no-op `up -d` on the converged state.
func (b *bench) roundCompose(ctx context.Context, res *results) error {
	up := []string{"-p", b.project, "-f", b.composeFile, "up", "-d"}
	d, out, err := b.timed(ctx, b.composeBin, up...)
	if err != nil {
		return fmt.Errorf("compose cold up: %w\n%s", err, out)
	}
	ids, err := b.converged(ctx, ownerCompose)
	if err != nil {
		return fmt.Errorf("after compose cold up: %w\n%s", err, out)
	}
	res.add(mComposeCold, d)

	d, out, err = b.timed(ctx, b.composeBin, up...)
	if err != nil {
		return fmt.Errorf("compose no-op up: %w\n%s", err, out)
	}
	if err := b.unchanged(ctx, ownerCompose, ids); err != nil {
		return fmt.Errorf("after compose no-op up: %w\n%s", err, out)
	}
	res.add(mComposeNoop, d)
	logf("  compose  cold %6.2fs   no-op     %6.3fs", res.last(mComposeCold), res.last(mComposeNoop))
	return b.teardown(ctx)
}

// roundFloor times the engine doing the same work at bee2d's concurrency, with nothing around it.
func (b *bench) roundFloor(ctx context.Context, res *results) error {
	d, err := b.floor(ctx, b.opt.parallel)
	if err != nil {
		return err
	}
	if _, err := b.converged(ctx, ownerBee2d); err != nil {
		return fmt.Errorf("after floor: %w", err)
	}
	res.add(mFloor, d)
	logf("  floor    cold %6.2fs   (parallel %d)", d.Seconds(), b.opt.parallel)
	return b.teardown(ctx)
}

// logf reports progress on stderr, so stdout holds only the results.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
