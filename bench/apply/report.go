package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// measurement names one timed thing; the names are also the JSON keys.
type measurement string

const (
	mBee2dCold   measurement = "bee2d_cold"
	mComposeCold measurement = "compose_cold"
	mFloor       measurement = "floor"
	mBee2dNoop   measurement = "bee2d_no_change"
	mComposeNoop measurement = "compose_no_op"
	mBaseCold    measurement = "baseline_cold"
	mBaseNoop    measurement = "baseline_no_change"
)

// measurements in the order the table shows them; the baseline's are shown only when there is one.
var measurements = []measurement{mBee2dCold, mComposeCold, mFloor, mBee2dNoop, mComposeNoop, mBaseCold, mBaseNoop}

func (m measurement) describe(par int) string {
	switch m {
	case mBee2dCold:
		return "bee2d cold apply"
	case mComposeCold:
		return "compose cold up -d"
	case mFloor:
		return fmt.Sprintf("engine floor (API, parallel %d)", par)
	case mBee2dNoop:
		return "bee2d no-change apply"
	case mComposeNoop:
		return "compose no-op up -d"
	case mBaseCold:
		return "baseline bee2d cold apply"
	case mBaseNoop:
		return "baseline bee2d no-change apply"
	}
	return string(m)
}

// ratio is one figure of merit: a quotient of two medians and the target it is read against.
type ratio struct {
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Target string  `json:"target"`
	Met    bool    `json:"met"`

	num, den measurement
	ok       func(float64) bool
	// baseline ratios compare with an earlier bee2d (-baseline) and are shown only when there is one.
	baseline bool
}

func ratios() []ratio {
	return []ratio{
		{Name: "compose no-op / bee2d no-change", Target: ">= 10", num: mComposeNoop, den: mBee2dNoop,
			ok: func(v float64) bool { return v >= 10 }},
		{Name: "bee2d cold / compose cold", Target: "< 1", num: mBee2dCold, den: mComposeCold,
			ok: func(v float64) bool { return v < 1 }},
		{Name: "bee2d cold / floor", Target: "<= 1.1", num: mBee2dCold, den: mFloor,
			ok: func(v float64) bool { return v <= 1.1 }},
		{Name: "bee2d cold / baseline cold", Target: "<= 1.1", num: mBee2dCold, den: mBaseCold,
			ok: func(v float64) bool { return v <= 1.1 }, baseline: true},
		{Name: "bee2d no-change / baseline no-change", Target: "<= 1.1", num: mBee2dNoop, den: mBaseNoop,
			ok: func(v float64) bool { return v <= 1.1 }, baseline: true},
	}
}

// series is the samples of one measurement, in seconds.
type series struct {
	Median  float64   `json:"median_s"`
	Samples []float64 `json:"samples_s"`
}

func (s *series) add(d time.Duration) {
	s.Samples = append(s.Samples, d.Seconds())
	s.Median = median(s.Samples)
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// sweepPoint is the floor at one concurrency.
type sweepPoint struct {
	Parallel int `json:"parallel"`
	series
	// Errors are the samples that failed, e.g. a call that outlived its timeout on a busy engine.
	Errors []string `json:"errors,omitempty"`
}

// results is what a run found; it is also the JSON document.
type results struct {
	Date            string                  `json:"date"`
	N               int                     `json:"n"`
	Rounds          int                     `json:"rounds"`
	Parallel        int                     `json:"parallel"`
	OtherContainers int                     `json:"other_containers"`
	Versions        versions                `json:"versions"`
	Measurements    map[measurement]*series `json:"measurements"`
	Ratios          []ratio                 `json:"ratios"`
	FloorByParallel []*sweepPoint           `json:"floor_by_parallel"`
	// Load1 is the 1-minute load average as each measured contender began: a busy machine slows whoever
	// runs at the moment, so this says how far to trust the medians.
	Load1 []float64 `json:"load1"`
	// Partial is set when the run stopped early; the numbers are those taken before.
	Partial string `json:"partial,omitempty"`
}

func newResults(b *bench) *results {
	r := &results{
		Date:         time.Now().UTC().Format(time.RFC3339),
		N:            b.opt.n,
		Rounds:       b.opt.rounds,
		Parallel:     b.opt.parallel,
		Versions:     b.versions,
		Measurements: map[measurement]*series{},
	}
	for _, m := range measurements {
		if (m == mBaseCold || m == mBaseNoop) && b.opt.baseline == "" {
			continue
		}
		r.Measurements[m] = &series{Samples: []float64{}}
	}
	return r
}

func (r *results) add(m measurement, d time.Duration) { r.Measurements[m].add(d) }

func (r *results) last(m measurement) float64 {
	s := r.Measurements[m].Samples
	return s[len(s)-1]
}

func (r *results) addSweep(par int, d time.Duration) { r.sweepPoint(par).add(d) }

func (r *results) addSweepError(par int, err error) {
	p := r.sweepPoint(par)
	p.Errors = append(p.Errors, err.Error())
}

func (r *results) sweepPoint(par int) *sweepPoint {
	for _, p := range r.FloorByParallel {
		if p.Parallel == par {
			return p
		}
	}
	p := &sweepPoint{Parallel: par, series: series{Samples: []float64{}}}
	r.FloorByParallel = append(r.FloorByParallel, p)
	slices.SortFunc(r.FloorByParallel, func(a, b *sweepPoint) int { return a.Parallel - b.Parallel })
	return p
}

// empty tells whether nothing at all was measured.
func (r *results) empty() bool {
	return len(r.Measurements[mBee2dCold].Samples)+len(r.Measurements[mComposeCold].Samples)+
		len(r.Measurements[mFloor].Samples) == 0
}

// noteLoad records the 1-minute load average, where the system reports one.
func (r *results) noteLoad() {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return
	}
	if l, err := strconv.ParseFloat(f[0], 64); err == nil {
		r.Load1 = append(r.Load1, l)
	}
}

// finish computes the ratios from the medians.
func (r *results) finish() {
	r.Ratios = nil
	for _, q := range ratios() {
		if q.baseline && r.Measurements[mBaseCold] == nil {
			continue
		}
		r.Ratios = append(r.Ratios, q)
	}
	for i := range r.Ratios {
		q := &r.Ratios[i]
		num, den := r.Measurements[q.num].Median, r.Measurements[q.den].Median
		if num > 0 && den > 0 { // else a partial run did not get that far; Value stays 0
			q.Value = num / den
			q.Met = q.ok(q.Value)
		}
	}
}

func (r *results) print(w io.Writer) {
	r.finish()
	fmt.Fprintf(w, "\nbee2d apply benchmark: %d applications, %d rounds (medians), %d other containers on the engine\n",
		r.N, r.Rounds, r.OtherContainers)
	fmt.Fprintf(w, "bee2d %s, compose %s, engine %s, %s, %d CPUs\n",
		r.Versions.Bee2d, r.Versions.Compose, r.Versions.Engine, r.Versions.Go, r.Versions.CPUs)
	if len(r.Load1) > 0 {
		fmt.Fprintf(w, "load average (1 min) as each contender began: median %.1f, min %.1f, max %.1f\n",
			median(r.Load1), slices.Min(r.Load1), slices.Max(r.Load1))
	}
	if r.Partial != "" {
		fmt.Fprintf(w, "PARTIAL: the run stopped early: %s\n", r.Partial)
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEASUREMENT\tMEDIAN s\tSAMPLES s")
	for _, m := range measurements {
		s := r.Measurements[m]
		if s == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%.3f\t%s\n", m.describe(r.Parallel), s.Median, samples(s.Samples))
	}
	fmt.Fprintln(tw, "\t\t")
	fmt.Fprintln(tw, "RATIO\tVALUE\tTARGET")
	for _, q := range r.Ratios {
		value, verdict := fmt.Sprintf("%.2f", q.Value), "met"
		switch {
		case q.Value == 0:
			value, verdict = "n/a", "not measured"
		case !q.Met:
			verdict = "missed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s (%s)\n", q.Name, value, q.Target, verdict)
	}
	if len(r.FloorByParallel) > 0 {
		fmt.Fprintln(tw, "\t\t")
		fmt.Fprintln(tw, "FLOOR BY PARALLEL\tMEDIAN s\tSAMPLES s")
		for _, p := range r.FloorByParallel {
			line := samples(p.Samples)
			if len(p.Errors) > 0 {
				line += fmt.Sprintf(" (%d failed: %s)", len(p.Errors), p.Errors[0])
			}
			fmt.Fprintf(tw, "%d\t%.3f\t%s\n", p.Parallel, p.Median, line)
		}
	}
	tw.Flush()
}

func samples(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.3f", x)
	}
	return strings.Join(parts, " ")
}

func (r *results) writeJSON(path string) error {
	r.finish()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
