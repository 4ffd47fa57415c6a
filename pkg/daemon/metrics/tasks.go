package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Results of a task run, as the "result" label of bee2_task_runs_total says them: ResultSuccess,
// ResultFailure, or ResultPanic for a run that panicked (also counted in bee2_task_panics_total).
const ResultPanic = "panic"

// taskMetrics tell how the runtime's tasks fare on each server.
type taskMetrics struct {
	runs     *prometheus.CounterVec
	duration *prometheus.HistogramVec
	panics   *prometheus.CounterVec
	runnable *prometheus.GaugeVec
}

func newTaskMetrics(reg *prometheus.Registry) *taskMetrics {
	labels := []string{"server", "task"}
	t := &taskMetrics{
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bee2_task_runs_total",
			Help: "Runs of a daemon task on a server, by result (success, failure, panic).",
		}, []string{"server", "task", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bee2_task_duration_seconds",
			Help:    "Time of one run of a daemon task on a server.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600},
		}, labels),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bee2_task_panics_total",
			Help: "Runs of a daemon task that panicked; the daemon recovered and the task backs off.",
		}, labels),
		runnable: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_task_runnable",
			Help: "Whether the server's engine offers what the task needs (1) or the task cannot run there (0).",
		}, labels),
	}
	reg.MustRegister(t.runs, t.duration, t.panics, t.runnable)
	return t
}

// InitTask creates a task's series on a server at zero, so alerts work before its first run.
func (m *Metrics) InitTask(server, task string) {
	for _, r := range []string{ResultSuccess, ResultFailure, ResultPanic} {
		m.tasks.runs.WithLabelValues(server, task, r)
	}
	m.tasks.duration.WithLabelValues(server, task)
	m.tasks.panics.WithLabelValues(server, task)
	m.tasks.runnable.WithLabelValues(server, task).Set(1)
}

// TaskRun records one run of a task: result is ResultSuccess, ResultFailure or ResultPanic.
func (m *Metrics) TaskRun(server, task, result string, took time.Duration) {
	m.tasks.runs.WithLabelValues(server, task, result).Inc()
	m.tasks.duration.WithLabelValues(server, task).Observe(took.Seconds())
	if result == ResultPanic {
		m.tasks.panics.WithLabelValues(server, task).Inc()
	}
}

// TaskRunnable records whether a task can run on a server's engine.
func (m *Metrics) TaskRunnable(server, task string, ok bool) {
	m.tasks.runnable.WithLabelValues(server, task).Set(b2f(ok))
}

func (t *taskMetrics) forget(l prometheus.Labels) {
	t.runs.DeletePartialMatch(l)
	t.duration.DeletePartialMatch(l)
	t.panics.DeletePartialMatch(l)
	t.runnable.DeletePartialMatch(l)
}
