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
	mPushWebhook      measurement = "push_webhook"
	mPushPoll         measurement = "push_poll"
	mLoadedWebhook    measurement = "push_webhook_loaded"
	mLoadedPoll       measurement = "push_poll_loaded"
	mFloorCreateStart measurement = "engine_create_start"
	mFloorRecreate    measurement = "engine_recreate"

	mBigFetch    measurement = "big_fetch"
	mBigCheckout measurement = "big_checkout"
	mBigValidate measurement = "big_validate"
	mBigTotal    measurement = "big_total"
	mGitFetch    measurement = "git_fetch"
	mGitWorktree measurement = "git_worktree_add"
	mGitTotal    measurement = "git_fetch_worktree_add"
	mGitClone    measurement = "git_clone_depth1"
)

// pushMeasurements and bigMeasurements in the order the tables show them.
var (
	pushMeasurements = []measurement{mPushWebhook, mLoadedWebhook, mPushPoll, mLoadedPoll, mFloorCreateStart, mFloorRecreate}
	bigMeasurements  = []measurement{mBigFetch, mBigCheckout, mBigValidate, mBigTotal, mGitFetch, mGitWorktree, mGitTotal, mGitClone}
)

func (m measurement) describe(poll string) string {
	switch m {
	case mPushWebhook:
		return "bee2d, webhook: push → started"
	case mLoadedWebhook:
		return "bee2d, webhook: push → settings loaded (its log)"
	case mLoadedPoll:
		return "bee2d, --git-poll " + poll + ": push → settings loaded (its log)"
	case mPushPoll:
		return "bee2d, --git-poll " + poll + ": push → started"
	case mFloorCreateStart:
		return "engine: create + start"
	case mFloorRecreate:
		return "engine: rename + (stop ∥ create) + start"
	case mBigFetch:
		return "bee2d: fetch into the mirror"
	case mBigCheckout:
		return "bee2d: check out a work tree"
	case mBigValidate:
		return "bee2d: load + validate settings.yml"
	case mBigTotal:
		return "bee2d: all three"
	case mGitFetch:
		return "git: fetch into a bare clone"
	case mGitWorktree:
		return "git: worktree add --detach"
	case mGitTotal:
		return "git: both"
	case mGitClone:
		return "git: clone --depth 1, from nothing"
	}
	return string(m)
}

// Targets of the issue, in milliseconds.
const (
	webhookOverheadTargetMS = 300
	validateTargetMS        = 200
)

// comparison is one of bee2d's medians against a peer's.
type comparison struct {
	Name string `json:"name"`
	// MS is bee2d's median minus the peer's; Ratio bee2d's median over the peer's.
	MS    float64 `json:"ms"`
	Ratio float64 `json:"ratio"`
	// PairedMS is the median over the trials of bee2d's sample minus the peer's sample of the same trial,
	// taken seconds apart, so that drifting load affects both alike; 0 when the samples do not pair.
	PairedMS float64 `json:"paired_ms,omitempty"`
	TargetMS float64 `json:"target_ms,omitempty"`
	Met      bool    `json:"met,omitempty"`
	Note     string  `json:"note,omitempty"`
	// Measured is false when a side has no samples (skipped, or the run stopped before).
	Measured bool `json:"measured"`

	a, b   measurement
	paired bool
}

// bigRepoInfo describes the large repository.
type bigRepoInfo struct {
	Applications int   `json:"applications"`
	Files        int   `json:"files"`
	TreeBytes    int64 `json:"tree_bytes"`
	PackBytes    int64 `json:"objects_bytes"`
	Commits      int   `json:"commits"`
}

type results struct {
	Versions    benchrun.Versions                `json:"versions"`
	Pushes      int                              `json:"pushes_per_mode"`
	Containers  int                              `json:"managed_containers"`
	Poll        string                           `json:"poll"`
	Samples     map[measurement]*benchrun.Series `json:"measurements"`
	Comparisons []comparison                     `json:"comparisons"`
	Big         *bigRepoInfo                     `json:"big_repository,omitempty"`
	// What else the machine did: other containers on the engine, and the load average (1, 5, 15 min)
	// when the measurements began and ended.
	OtherContainers int    `json:"other_containers"`
	LoadBefore      string `json:"loadavg_before"`
	LoadAfter       string `json:"loadavg_after"`
	// Partial is set when the run stopped early; the numbers are those taken before.
	Partial string `json:"partial,omitempty"`
}

func newResults(b *bench) *results {
	r := &results{Versions: b.version, Pushes: b.opt.n, Containers: b.opt.sleepers + 1, Poll: b.opt.poll.String(),
		Samples: map[measurement]*benchrun.Series{}}
	for _, m := range append(slices.Clone(pushMeasurements), bigMeasurements...) {
		r.Samples[m] = &benchrun.Series{}
	}
	return r
}

func (r *results) add(m measurement, d time.Duration) { r.Samples[m].Add(d) }

func (r *results) empty() bool {
	for _, s := range r.Samples {
		if len(s.Samples) > 0 {
			return false
		}
	}
	return true
}

// last is the latest sample of m, for progress lines.
func (r *results) last(m measurement) string {
	s := r.Samples[m].Samples
	if len(s) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0fms", s[len(s)-1])
}

func (r *results) finish() {
	half := 0.0
	if d, err := time.ParseDuration(r.Poll); err == nil {
		half = float64(d.Milliseconds()) / 2
	}
	r.Comparisons = []comparison{
		{Name: "webhook − engine create+start", a: mPushWebhook, b: mFloorCreateStart, paired: true, TargetMS: webhookOverheadTargetMS,
			Note: "the webhook's post, fetch, checkout, validate, plan, and the recreate's rename and stop"},
		{Name: "webhook − engine rename+(stop∥create)+start", a: mPushWebhook, b: mFloorRecreate, paired: true,
			Note: "what bee2d adds to a recreate: the post, fetch, checkout, validate, plan"},
		{Name: "poll − engine create+start", a: mPushPoll, b: mFloorCreateStart,
			Note: fmt.Sprintf("includes the wait for the next poll, %.0f ms on average", half)},
		{Name: "bee2d validate (absolute)", a: mBigValidate, TargetMS: validateTargetMS,
			Note: "the issue's target is an absolute time of the validation alone"},
		{Name: "bee2d fetch − git fetch", a: mBigFetch, b: mGitFetch, paired: true},
		{Name: "bee2d checkout − git worktree add", a: mBigCheckout, b: mGitWorktree, paired: true},
		{Name: "bee2d all three − git fetch + worktree add", a: mBigTotal, b: mGitTotal, paired: true},
		{Name: "bee2d all three − git clone --depth 1", a: mBigTotal, b: mGitClone, paired: true},
	}
	for i := range r.Comparisons {
		c := &r.Comparisons[i]
		a := r.Samples[c.a]
		if len(a.Samples) == 0 || c.b != "" && len(r.Samples[c.b].Samples) == 0 {
			continue
		}
		c.Measured = true
		if c.b == "" {
			c.MS = a.Median
			c.Met = c.TargetMS > 0 && c.MS < c.TargetMS
			continue
		}
		p := r.Samples[c.b]
		c.MS = a.Median - p.Median
		if p.Median > 0 {
			c.Ratio = a.Median / p.Median
		}
		if c.paired {
			var diffs []float64
			for i := range min(len(a.Samples), len(p.Samples)) {
				diffs = append(diffs, a.Samples[i]-p.Samples[i])
			}
			c.PairedMS = benchrun.Percentile(slices.Sorted(slices.Values(diffs)), 50)
		}
		c.Met = c.TargetMS > 0 && c.MS < c.TargetMS
	}
}

func (r *results) print(w io.Writer) {
	v := r.Versions
	fmt.Fprintf(w, "bee2d daemon --git on the local engine: engine %s, bee2d %s, %s, %d CPUs\n", v.Engine, v.Bee2d, v.Go, v.CPUs)
	fmt.Fprintf(w, "settings over git's smart HTTP on 127.0.0.1; %d managed containers (the probe and %d sleepers); %d pushes per mode\n",
		r.Containers, r.Containers-1, r.Pushes)
	fmt.Fprintf(w, "meanwhile: %d other containers on the engine; load average %s at the start, %s at the end\n",
		r.OtherContainers, r.LoadBefore, r.LoadAfter)
	if r.Partial != "" {
		fmt.Fprintf(w, "PARTIAL: the run stopped early: %s\n", r.Partial)
	}
	fmt.Fprintln(w)

	table := func(title string, ms []measurement) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintf(tw, "%s\tmedian\tp10\tp90\tn\t\n", title)
		for _, m := range ms {
			s := r.Samples[m]
			if len(s.Samples) == 0 {
				fmt.Fprintf(tw, "%s\t-\t-\t-\t0\t\n", m.describe(r.Poll))
				continue
			}
			fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%.1f\t%d\t\n", m.describe(r.Poll), s.Median, s.P10, s.P90, len(s.Samples))
		}
		tw.Flush()
	}
	table("until the container has started (ms)", pushMeasurements)
	fmt.Fprintln(w)
	if b := r.Big; b != nil {
		fmt.Fprintf(w, "large repository: %d applications, %d files, %.1f MB of files, %.1f MB of git objects; %d new commits\n",
			b.Applications, b.Files, float64(b.TreeBytes)/1e6, float64(b.PackBytes)/1e6, b.Commits)
	}
	table("a new commit of the large repository (ms)", bigMeasurements)

	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "comparison (ms)\tmedians\tpaired\tratio\ttarget\t\t")
	for _, c := range r.Comparisons {
		if !c.Measured {
			fmt.Fprintf(tw, "%s\t-\t\t\t\tnot measured\t\n", c.Name)
			continue
		}
		paired, ratio, target, reading := "", "", "", ""
		if c.paired {
			paired = fmt.Sprintf("%.1f", c.PairedMS)
		}
		if c.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", c.Ratio)
		}
		if c.TargetMS > 0 {
			target = fmt.Sprintf("< %.0f", c.TargetMS)
			reading = "missed"
			if c.Met {
				reading = "met"
			}
		}
		note := ""
		if c.Note != "" {
			note = "(" + c.Note + ")"
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%s\t%s\t%s\t%s\n", c.Name, c.MS, paired, ratio, target, reading, note)
	}
	tw.Flush()
	fmt.Fprintln(w, "\nmedians: bee2d's median − the peer's; paired: the median of the per-trial differences; ratio: bee2d's median / the peer's.")
	fmt.Fprintln(w, "\"met\" or \"missed\" is a reading, not an assertion: the exit status does not depend on it.")
}
