package main

import (
	"fmt"
	"io"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/bee2d/bee2d/bench/internal/benchrun"
)

// measurement names one timed thing; the names are also the JSON keys.
type measurement string

const (
	mEdit    measurement = "edit_to_healthy"
	mFloor   measurement = "engine_create_start_to_healthy"
	mDone    measurement = "edit_to_deployed"
	mVerdict measurement = "bad_edit_to_unhealthy"
	mServing measurement = "bad_edit_to_old_serving_alone"
	// mGateServing starts at the bad container's start event, where bee2d's gate starts.
	mGateServing measurement = "bad_start_to_old_serving_alone"
	mRolledBack  measurement = "bad_edit_to_rolled_back"
)

// measurements in the order the table shows them.
var measurements = []measurement{mEdit, mFloor, mDone, mVerdict, mServing, mGateServing, mRolledBack}

func (m measurement) describe() string {
	switch m {
	case mEdit:
		return "bee2d: edit → new version healthy"
	case mFloor:
		return "engine: create + start → healthy"
	case mDone:
		return "bee2d: edit → deploy finished"
	case mVerdict:
		return "bad version: edit → unhealthy verdict"
	case mServing:
		return "bad version: edit → old version serving alone"
	case mGateServing:
		return "bad version: its start → old version serving alone"
	case mRolledBack:
		return "bad version: edit → rollback finished"
	}
	return string(m)
}

// modeResults are the samples of one deploy mode and what they add up to.
type modeResults struct {
	Samples map[measurement]*benchrun.Series `json:"measurements"`
	// OverheadMS is bee2d's median edit → healthy minus the engine's median create + start → healthy;
	// PairedMS the median of the per-round differences (a round's two samples are seconds apart, so a
	// machine whose load drifts affects both alike).
	OverheadMS       float64 `json:"overhead_ms"`
	PairedMS         float64 `json:"overhead_paired_ms"`
	OverheadTargetMS float64 `json:"overhead_target_ms"`
	OverheadMet      bool    `json:"overhead_met"`
	// RollbackWithin counts the bad deploys whose old version served alone again within the gate's
	// timeout plus a second from the edit, GateWithin those that did from the bad container's start, of
	// RollbackTrials.
	RollbackWithin int  `json:"rollbacks_within_target_from_edit"`
	GateWithin     int  `json:"rollbacks_within_target_from_start"`
	RollbackTrials int  `json:"rollbacks"`
	RollbackMet    bool `json:"rollback_met_from_edit"`
	GateMet        bool `json:"rollback_met_from_start"`
}

func (m *modeResults) add(k measurement, d time.Duration) { m.Samples[k].Add(d) }

// last is the latest sample of k, for progress lines.
func (m *modeResults) last(k measurement) string {
	s := m.Samples[k].Samples
	if len(s) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fms", s[len(s)-1])
}

type results struct {
	Versions benchrun.Versions       `json:"versions"`
	Rounds   int                     `json:"rounds"`
	Health   string                  `json:"health_check"`
	GateMS   float64                 `json:"gate_timeout_ms"`
	Debounce string                  `json:"debounce"`
	Modes    map[string]*modeResults `json:"modes"`
	order    []string
	// Partial is set when an error stopped the run: the numbers are those measured before it.
	Partial    bool   `json:"partial,omitempty"`
	LoadBefore string `json:"loadavg_before"`
	LoadAfter  string `json:"loadavg_after"`
}

// Targets: what bee2d adds to the engine's create, start and first healthy report, and how long a rollback
// may take beyond the gate's timeout.
const (
	overheadTargetMS = 100
	rollbackSlack    = time.Second
)

func newResults(b *bench) *results {
	o := b.opt
	r := &results{Versions: b.version, Rounds: o.rounds, Debounce: o.debounce.String(), Modes: map[string]*modeResults{},
		order: o.modes, GateMS: float64(o.gate().Milliseconds()),
		Health: fmt.Sprintf("interval %v, timeout %v, start_period %v, retries %d", o.interval, o.timeout, o.startPeriod, o.retries)}
	for _, mode := range o.modes {
		m := &modeResults{Samples: map[measurement]*benchrun.Series{}, OverheadTargetMS: overheadTargetMS}
		for _, k := range measurements {
			m.Samples[k] = &benchrun.Series{}
		}
		r.Modes[mode] = m
	}
	return r
}

func (r *results) finish(o options) {
	limit := float64((o.gate() + rollbackSlack).Milliseconds())
	for _, m := range r.Modes {
		edit, floor := m.Samples[mEdit], m.Samples[mFloor]
		m.OverheadMS = edit.Median - floor.Median
		var diffs []float64
		for i := range min(len(edit.Samples), len(floor.Samples)) {
			diffs = append(diffs, edit.Samples[i]-floor.Samples[i])
		}
		m.PairedMS = benchrun.Percentile(slices.Sorted(slices.Values(diffs)), 50)
		m.OverheadMet = len(diffs) > 0 && m.OverheadMS < overheadTargetMS
		within := func(k measurement) int {
			n := 0
			for _, s := range m.Samples[k].Samples {
				if s <= limit {
					n++
				}
			}
			return n
		}
		m.RollbackTrials = len(m.Samples[mServing].Samples)
		m.RollbackWithin, m.GateWithin = within(mServing), within(mGateServing)
		m.RollbackMet = m.RollbackTrials > 0 && m.RollbackWithin == m.RollbackTrials
		m.GateMet = m.RollbackTrials > 0 && m.GateWithin == m.RollbackTrials
	}
}

func reading(met bool) string {
	if met {
		return "met"
	}
	return "missed"
}

func (r *results) print(w io.Writer) {
	v := r.Versions
	fmt.Fprintf(w, "health-gated deploys of bee2d daemon on the local engine: engine %s, bee2d %s, %s, %d CPUs\n", v.Engine, v.Bee2d, v.Go, v.CPUs)
	fmt.Fprintf(w, "one application, health check %s (gate timeout %.0f ms), --debounce %s, %d rounds\n",
		r.Health, r.GateMS, r.Debounce, r.Rounds)
	fmt.Fprintf(w, "load average %s at the start, %s at the end\n", r.LoadBefore, r.LoadAfter)
	if r.Partial {
		fmt.Fprintln(w, "PARTIAL: an error stopped the run; these are the numbers measured before it")
	}
	for _, mode := range r.order {
		m := r.Modes[mode]
		fmt.Fprintf(w, "\ndeploy: %s\n", mode)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "ms\tmedian\tp10\tp90\tmax\tn\t")
		for _, k := range measurements {
			s := m.Samples[k]
			fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%.1f\t%d\t\n", k.describe(), s.Median, s.P10, s.P90, s.Max, len(s.Samples))
		}
		tw.Flush()
		fmt.Fprintf(w, "overhead: edit → healthy − engine create+start → healthy: %.1f ms (paired %.1f ms); target < %d ms: %s\n",
			m.OverheadMS, m.PairedMS, overheadTargetMS, reading(m.OverheadMet))
		limit := r.GateMS + float64(rollbackSlack.Milliseconds())
		fmt.Fprintf(w, "rollback: old version serving alone within the gate timeout + %v (%.0f ms): from the edit in %d of %d: %s;"+
			" from the bad version's start in %d of %d: %s\n",
			rollbackSlack, limit, m.RollbackWithin, m.RollbackTrials, reading(m.RollbackMet), m.GateWithin, m.RollbackTrials, reading(m.GateMet))
	}
	fmt.Fprintln(w, "\nEach time ends when the bench receives the engine's event (healthy, die, rename, destroy) or, for a")
	fmt.Fprintln(w, "stop-first rollback, the old container's first answer on its own address.")
	fmt.Fprintln(w, "\"met\" or \"missed\" is a reading, not an assertion: the exit status does not depend on it.")
}
