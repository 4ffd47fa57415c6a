package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ResultSkipped is a run that did not start because the previous one had not ended.
const ResultSkipped = "skipped"

// backupMetrics tell whether each server's volumes are backed up, how big and how slow that is.
type backupMetrics struct {
	lastSuccess *prometheus.GaugeVec
	lastSize    *prometheus.GaugeVec
	duration    *prometheus.HistogramVec
	runs        *prometheus.CounterVec
	pruned      *prometheus.CounterVec
}

func newBackupMetrics(reg *prometheus.Registry) *backupMetrics {
	server := []string{"server"}
	b := &backupMetrics{
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_backup_last_success_timestamp_seconds",
			Help: "When the server's newest good archive was taken; 0 when it has none.",
		}, server),
		lastSize: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_backup_last_size_bytes",
			Help: "Size of the server's newest good archive, as stored (compressed).",
		}, server),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bee2_backup_duration_seconds",
			Help:    "Time of one backup run, successful or not: stop, archive, store, start again.",
			Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200},
		}, server),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bee2_backup_runs_total",
			Help: "Backup runs by result: success, failure, or skipped while the previous run went on.",
		}, []string{"server", "result"}),
		pruned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bee2_backup_archives_pruned_total",
			Help: "Archives removed by the retention policy.",
		}, server),
	}
	reg.MustRegister(b.lastSuccess, b.lastSize, b.duration, b.runs, b.pruned)
	return b
}

// InitBackup creates a server's backup series, so that a stale-backup alert fires for a server never backed
// up. last and size seed them from the newest archive already stored (zero time: none).
func (m *Metrics) InitBackup(server string, last time.Time, size int64) {
	if !last.IsZero() {
		m.backup.lastSuccess.WithLabelValues(server).Set(float64(last.Unix()))
		m.backup.lastSize.WithLabelValues(server).Set(float64(size))
	} else {
		m.backup.lastSuccess.WithLabelValues(server)
		m.backup.lastSize.WithLabelValues(server)
	}
	m.backup.duration.WithLabelValues(server)
	for _, r := range []string{ResultSuccess, ResultFailure, ResultSkipped} {
		m.backup.runs.WithLabelValues(server, r)
	}
	m.backup.pruned.WithLabelValues(server)
}

// ForgetBackup deletes the backup series of a server that has no backup settings any more.
func (m *Metrics) ForgetBackup(server string) {
	l := prometheus.Labels{"server": server}
	m.backup.lastSuccess.Delete(l)
	m.backup.lastSize.Delete(l)
	m.backup.duration.Delete(l)
	m.backup.runs.DeletePartialMatch(l)
	m.backup.pruned.Delete(l)
}

// BackupRun records one backup run that took took; on success, at is the archive's time and size its size.
func (m *Metrics) BackupRun(server string, size int64, took time.Duration, err error, at time.Time) {
	m.backup.duration.WithLabelValues(server).Observe(took.Seconds())
	if err != nil {
		m.backup.runs.WithLabelValues(server, ResultFailure).Inc()
		return
	}
	m.backup.runs.WithLabelValues(server, ResultSuccess).Inc()
	m.backup.lastSuccess.WithLabelValues(server).Set(float64(at.Unix()))
	m.backup.lastSize.WithLabelValues(server).Set(float64(size))
}

// BackupSkipped counts a scheduled run that did not start because another backup or restore of the server
// was still running.
func (m *Metrics) BackupSkipped(server string) {
	m.backup.runs.WithLabelValues(server, ResultSkipped).Inc()
}

// BackupPruned counts archives retention removed.
func (m *Metrics) BackupPruned(server string, n int) {
	m.backup.pruned.WithLabelValues(server).Add(float64(n))
}
