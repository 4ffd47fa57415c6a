package daemon

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/backup"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
)

// A failed scheduled backup is tried again after a delay that doubles with each failure in a row: each
// attempt stops the applications listed in stop, so it is not retried as fast as other tasks.
const (
	backupRetryMin = time.Minute
	backupRetryMax = time.Hour
)

// backupTask takes the server's scheduled backup when it is due. The backup's own lock makes an
// overlapping run (a `bee2d backup` started by hand) a skip, which is counted.
type backupTask struct {
	server string
	// init seeds the backup metrics from the newest archive, once.
	init sync.Once
	// retry is when a failed scheduled backup may be tried again; failures counts those in a row.
	retry    time.Time
	failures int
}

func newBackups(server string) Task { return &backupTask{server: server} }

func (b *backupTask) Name() string        { return "backup" }
func (b *backupTask) Needs() []Capability { return []Capability{CanBackup} }

func (b *backupTask) Run(ctx context.Context, r *Run) Result {
	s, now := r.Settings, r.Now()
	next, ok, err := backup.NextRun(s, b.server, now)
	if err != nil {
		return Result{Err: fmt.Errorf("backup schedule unreadable: %w", err)}
	}
	if !ok {
		return Result{}
	}
	b.initMetrics(r.Metrics, s)
	if b.retry.After(next) {
		// The schedule follows the newest archive, so after a failure it says "due" at once.
		next = b.retry
	}
	if now.Before(next) {
		return Result{Next: next}
	}
	eng := r.Conn.(backup.Engine) // CanBackup
	m, log := r.Metrics, r.Log
	log.Info("scheduled backup starting", zap.String("schedule", s.Docker.Backup[b.server].Schedule))
	start := r.Now()
	res, err := backup.Run(ctx, eng, s, b.server, backup.Options{Log: log, Version: r.d.Version})
	switch {
	case errors.Is(err, backup.ErrBusy):
		log.Info("scheduled backup skipped: another backup or restore of this server is running")
		if m != nil {
			m.BackupSkipped(b.server)
		}
		return Result{Next: now.Add(time.Minute)}
	case err != nil:
		b.failures++
		wait := min(backupRetryMin<<min(b.failures-1, 10), backupRetryMax)
		b.retry = r.Now().Add(wait)
		log.Error("scheduled backup failed", zap.Error(err), zap.Duration("retry_in", wait))
		if m != nil {
			m.BackupRun(b.server, 0, r.Now().Sub(start), err, r.Now())
		}
		return Result{Err: err, Next: b.retry}
	}
	b.failures, b.retry = 0, time.Time{}
	log.Info("scheduled backup done", zap.String("archive", res.Archive.Name), zap.Int64("bytes", res.Archive.Size),
		zap.Duration("took", res.Took), zap.Int("pruned", len(res.Pruned)))
	if m != nil {
		m.BackupRun(b.server, res.Archive.Size, res.Took, nil, res.Archive.Time)
		m.BackupPruned(b.server, len(res.Pruned))
	}
	next, _, _ = backup.NextRun(s, b.server, r.Now())
	return Result{Next: next}
}

// initMetrics seeds the backup series of a scheduled server from its newest archive, once.
func (b *backupTask) initMetrics(m *metrics.Metrics, s *config.Settings) {
	if m == nil {
		return
	}
	b.init.Do(func() {
		a, found, _ := backup.Latest(s, b.server)
		if !found {
			m.InitBackup(b.server, time.Time{}, 0)
			return
		}
		m.InitBackup(b.server, a.Time, a.Size)
	})
}
