package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// jobMetrics tell whether jobs run and succeed.
type jobMetrics struct {
	lastRun     *prometheus.GaugeVec
	lastSuccess *prometheus.GaugeVec
	exitCode    *prometheus.GaugeVec
	runs        *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	interval    *prometheus.GaugeVec
}

func newJobMetrics(reg *prometheus.Registry) *jobMetrics {
	labels := []string{"server", "job"}
	j := &jobMetrics{
		lastRun: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_job_last_run_timestamp_seconds",
			Help: "When the job's last run ended; 0 when it has not run since bee2d started.",
		}, labels),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_job_last_success_timestamp_seconds",
			Help: "When the job last ended with exit code 0; 0 when it has not since bee2d started.",
		}, labels),
		exitCode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_job_last_exit_code",
			Help: "Exit code of the job's last run; -1 when it could not run at all.",
		}, labels),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bee2_job_runs_total",
			Help: "Job runs by result.",
		}, []string{"server", "job", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bee2_job_run_duration_seconds",
			Help:    "Time of one job run: create, run to its end.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600},
		}, labels),
	}
	j.interval = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "bee2_job_schedule_interval_seconds",
		Help: "Time between two firings of the job's schedule; absent for a job without one. Alerts compare the age of the last success with it.",
	}, labels)
	reg.MustRegister(j.lastRun, j.lastSuccess, j.exitCode, j.runs, j.duration, j.interval)
	return j
}

// InitJob creates a job's series so that alerts see them before its first run.
func (m *Metrics) InitJob(server, job string) {
	m.jobs.lastRun.WithLabelValues(server, job)
	m.jobs.lastSuccess.WithLabelValues(server, job)
	m.jobs.runs.WithLabelValues(server, job, ResultSuccess)
	m.jobs.runs.WithLabelValues(server, job, ResultFailure)
	m.jobs.duration.WithLabelValues(server, job)
}

// JobSchedule records the interval of a job's schedule; 0 removes it (the job has no schedule).
func (m *Metrics) JobSchedule(server, job string, interval time.Duration) {
	if interval <= 0 {
		m.jobs.interval.DeleteLabelValues(server, job)
		return
	}
	m.jobs.interval.WithLabelValues(server, job).Set(interval.Seconds())
}

// ForgetJob deletes the series of a job that left the settings.
func (m *Metrics) ForgetJob(server, job string) {
	l := prometheus.Labels{"server": server, "job": job}
	m.jobs.lastRun.Delete(l)
	m.jobs.lastSuccess.Delete(l)
	m.jobs.exitCode.Delete(l)
	m.jobs.runs.DeletePartialMatch(l)
	m.jobs.duration.Delete(l)
	m.jobs.interval.Delete(l)
}

// JobRun records one run that ended at `at` with code (-1: it could not run).
func (m *Metrics) JobRun(server, job string, code int, took time.Duration, at time.Time) {
	m.jobs.lastRun.WithLabelValues(server, job).Set(float64(at.Unix()))
	m.jobs.exitCode.WithLabelValues(server, job).Set(float64(code))
	m.jobs.duration.WithLabelValues(server, job).Observe(took.Seconds())
	if code == 0 {
		m.jobs.lastSuccess.WithLabelValues(server, job).Set(float64(at.Unix()))
		m.jobs.runs.WithLabelValues(server, job, ResultSuccess).Inc()
		return
	}
	m.jobs.runs.WithLabelValues(server, job, ResultFailure).Inc()
}
