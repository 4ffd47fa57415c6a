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
	mEdit             measurement = "edit"
	mRemove           measurement = "rm"
	mRemoveFromEvent  measurement = "rm_from_destroy"
	mKill             measurement = "kill"
	mKillFromEvent    measurement = "kill_from_die"
	mFloorCreateStart measurement = "engine_create_start"
	mFloorRecreate    measurement = "engine_recreate"
	mFloorStart       measurement = "engine_start"
)

// measurements in the order the table shows them.
var measurements = []measurement{mEdit, mRemove, mRemoveFromEvent, mKill, mKillFromEvent, mFloorCreateStart, mFloorRecreate, mFloorStart}

func (m measurement) describe() string {
	switch m {
	case mEdit:
		return "bee2d: edit → new container started"
	case mRemove:
		return "bee2d: rm -f → new container started"
	case mRemoveFromEvent:
		return "bee2d:   from the destroy event"
	case mKill:
		return "bee2d: kill → running again"
	case mKillFromEvent:
		return "bee2d:   from the die event"
	case mFloorCreateStart:
		return "engine: create + start"
	case mFloorRecreate:
		return "engine: rename + (stop ∥ create) + start"
	case mFloorStart:
		return "engine: start, from the die event"
	}
	return string(m)
}

// overhead is the daemon's median minus the engine's median for the same container work.
type overhead struct {
	Name string  `json:"name"`
	MS   float64 `json:"ms"`
	// PairedMS is the median over the rounds of the daemon's sample minus the engine's sample of the
	// same round: the two ran seconds apart, so a machine whose load drifts affects both alike.
	PairedMS float64 `json:"paired_ms"`
	TargetMS float64 `json:"target_ms,omitempty"`
	Met      bool    `json:"met,omitempty"`
	Note     string  `json:"note,omitempty"`

	bee2d, engine measurement
}

func overheads(debounce time.Duration) []overhead {
	return []overhead{
		{Name: "edit − engine create+start", bee2d: mEdit, engine: mFloorCreateStart, TargetMS: 100,
			Note: fmt.Sprintf("includes --debounce %v, the rename aside and the old container's stop where it outlasts the create", debounce)},
		{Name: "edit − engine rename+(stop∥create)+start", bee2d: mEdit, engine: mFloorRecreate,
			Note: fmt.Sprintf("includes --debounce %v", debounce)},
		{Name: "rm -f − engine create+start", bee2d: mRemove, engine: mFloorCreateStart, TargetMS: 100,
			Note: "includes the removal itself"},
		{Name: "rm -f from destroy − engine create+start", bee2d: mRemoveFromEvent, engine: mFloorCreateStart, TargetMS: 100},
		{Name: "kill − engine start", bee2d: mKill, engine: mFloorStart, TargetMS: 100, Note: "includes the kill itself"},
		{Name: "kill from die − engine start", bee2d: mKillFromEvent, engine: mFloorStart, TargetMS: 100},
	}
}

// idle is what the daemon cost while nothing happened.
type idle struct {
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
	Passes     int     `json:"passes"`
}

type results struct {
	Versions          benchrun.Versions                `json:"versions"`
	Containers        int                              `json:"managed_containers"`
	Trials            int                              `json:"trials"`
	Debounce          string                           `json:"debounce"`
	Samples           map[measurement]*benchrun.Series `json:"measurements"`
	Overheads         []overhead                       `json:"overheads"`
	ConvergeSeconds   float64                          `json:"first_converge_seconds"`
	RSSConvergedBytes int64                            `json:"rss_converged_bytes"`
	RSSIdleBytes      int64                            `json:"rss_after_idle_bytes,omitempty"`
	RSSAfterBytes     int64                            `json:"rss_after_trials_bytes"`
	Idle              *idle                            `json:"idle,omitempty"`
	// What else the machine did: other containers on the engine, and the load average (1, 5, 15 min)
	// when the measurements began and ended.
	OtherContainers int    `json:"other_containers"`
	LoadBefore      string `json:"loadavg_before"`
	LoadAfter       string `json:"loadavg_after"`
}

// rssTargetBytes is the resident memory the idle daemon should stay under.
const rssTargetBytes = 40 << 20

func newResults(b *bench) *results {
	r := &results{Versions: b.version, Containers: b.opt.n + 1, Trials: b.opt.trials, Debounce: b.opt.debounce.String(),
		Samples: map[measurement]*benchrun.Series{}}
	for _, m := range measurements {
		r.Samples[m] = &benchrun.Series{}
	}
	return r
}

func (r *results) add(m measurement, d time.Duration) { r.Samples[m].Add(d) }

// last is the latest sample of m, for progress lines.
func (r *results) last(m measurement) string {
	s := r.Samples[m].Samples
	if len(s) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fms", s[len(s)-1])
}

func (r *results) finish() {
	d, _ := time.ParseDuration(r.Debounce)
	r.Overheads = overheads(d)
	for i := range r.Overheads {
		o := &r.Overheads[i]
		o.MS = r.Samples[o.bee2d].Median - r.Samples[o.engine].Median
		a, e := r.Samples[o.bee2d].Samples, r.Samples[o.engine].Samples
		var diffs []float64
		for i := range min(len(a), len(e)) {
			diffs = append(diffs, a[i]-e[i])
		}
		o.PairedMS = benchrun.Percentile(slices.Sorted(slices.Values(diffs)), 50)
		o.Met = o.TargetMS > 0 && o.MS < o.TargetMS
	}
}

func (r *results) print(w io.Writer) {
	v := r.Versions
	fmt.Fprintf(w, "bee2d daemon on the local engine: engine %s, bee2d %s, %s, %d CPUs\n", v.Engine, v.Bee2d, v.Go, v.CPUs)
	fmt.Fprintf(w, "%d managed containers (the probe and %d sleepers), --debounce %s, %d trials of each kind\n",
		r.Containers, r.Containers-1, r.Debounce, r.Trials)
	fmt.Fprintf(w, "meanwhile: %d other containers on the engine; load average %s at the start, %s at the end\n\n",
		r.OtherContainers, r.LoadBefore, r.LoadAfter)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "until the container has started (ms)\tmedian\tp10\tp90\t")
	for _, m := range measurements {
		s := r.Samples[m]
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t\n", m.describe(), s.Median, s.P10, s.P90)
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "overhead (ms)\tmedians\tpaired\ttarget\t\t")
	for _, o := range r.Overheads {
		target, reading := "", ""
		if o.TargetMS > 0 {
			target = fmt.Sprintf("< %.0f", o.TargetMS)
			reading = "missed"
			if o.Met {
				reading = "met"
			}
		}
		note := ""
		if o.Note != "" {
			note = "(" + o.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%s\t%s\t%s\n", o.Name, o.MS, o.PairedMS, target, reading, note)
	}
	tw.Flush()

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "idle daemon, %d containers\t\t\n", r.Containers)
	met := "missed"
	if r.RSSConvergedBytes < rssTargetBytes {
		met = "met"
	}
	fmt.Fprintf(tw, "first convergence at start\t%.1f s\n", r.ConvergeSeconds)
	fmt.Fprintf(tw, "RSS after convergence\t%.1f MB\t(target < %d MB: %s)\n", mb(r.RSSConvergedBytes), rssTargetBytes>>20, met)
	if r.Idle != nil {
		fmt.Fprintf(tw, "RSS after the idle period\t%.1f MB\n", mb(r.RSSIdleBytes))
		fmt.Fprintf(tw, "CPU over %v idle\t%.2f s\t(%.3f%% of one core)\n", time.Duration(r.Idle.Seconds*float64(time.Second)).Round(time.Second),
			r.Idle.CPUSeconds, 100*r.Idle.CPUSeconds/r.Idle.Seconds)
		fmt.Fprintf(tw, "reconcile passes while idle\t%d\t(the resync, every 5m by default)\n", r.Idle.Passes)
	}
	fmt.Fprintf(tw, "RSS after the trials\t%.1f MB\n", mb(r.RSSAfterBytes))
	tw.Flush()
	fmt.Fprintln(w, "\nmedians: bee2d's median − the engine's; paired: the median of the per-round differences.")
	fmt.Fprintln(w, "\"met\" or \"missed\" is a reading, not an assertion: the exit status does not depend on it.")
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }
