package reconcile

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/backup"
	"github.com/bee2d/bee2d/pkg/config"
)

// A failed scheduled backup is tried again after a delay that doubles with each failure in a row.
const (
	backupRetryMin = time.Minute
	backupRetryMax = time.Hour
)

// runDueBackup takes the server's scheduled backup when it is due, as a task of the server's pass. The
// backup's own lock makes an overlapping run (a `bee2d backup` started by hand) a skip, which is counted.
// It returns when the next one is due, zero for none.
func (w *worker) runDueBackup(ctx context.Context, log *zap.Logger, s *config.Settings, conn Conn) time.Time {
	now := w.d.now()
	next, ok, err := backup.NextRun(s, w.server, now)
	if err != nil {
		w.backupLog(log, "backup schedule unreadable", err)
		return time.Time{}
	}
	if !ok {
		return time.Time{}
	}
	w.initBackupMetrics(s)
	w.mu.Lock()
	retry := w.backupRetry
	w.mu.Unlock()
	if retry.After(next) {
		// The schedule follows the newest archive, so after a failure it says "due" at every pass; a pass
		// comes with any container event, and each attempt stops the applications listed in stop.
		next = retry
	}
	if now.Before(next) {
		return next
	}
	eng, ok := engineOf(conn).(backup.Engine)
	if !ok {
		return time.Time{} // a test double without the backup calls
	}
	m := w.d.Metrics
	log.Info("scheduled backup starting", zap.String("schedule", s.Docker.Backup[w.server].Schedule))
	start := w.d.now()
	res, err := backup.Run(ctx, eng, s, w.server, backup.Options{Log: log, Version: w.d.Version})
	switch {
	case errors.Is(err, backup.ErrBusy):
		log.Info("scheduled backup skipped: another backup or restore of this server is running")
		if m != nil {
			m.BackupSkipped(w.server)
		}
		return now.Add(time.Minute)
	case err != nil:
		w.mu.Lock()
		w.backupFailures++
		wait := min(backupRetryMin<<min(w.backupFailures-1, 10), backupRetryMax)
		w.backupRetry = w.d.now().Add(wait)
		w.mu.Unlock()
		log.Error("scheduled backup failed", zap.Error(err), zap.Duration("retry_in", wait))
		if m != nil {
			m.BackupRun(w.server, 0, w.d.now().Sub(start), err, w.d.now())
		}
		return w.backupRetry
	}
	w.mu.Lock()
	w.backupFailures, w.backupRetry = 0, time.Time{}
	w.mu.Unlock()
	log.Info("scheduled backup done", zap.String("archive", res.Archive.Name), zap.Int64("bytes", res.Archive.Size),
		zap.Duration("took", res.Took), zap.Int("pruned", len(res.Pruned)))
	if m != nil {
		m.BackupRun(w.server, res.Archive.Size, res.Took, nil, res.Archive.Time)
		m.BackupPruned(w.server, len(res.Pruned))
	}
	next, _, _ = backup.NextRun(s, w.server, w.d.now())
	return next
}

func (w *worker) backupLog(log *zap.Logger, msg string, err error) {
	log.Error(msg, zap.Error(err))
}

// initBackupMetrics seeds the backup series of a scheduled server from its newest archive, once.
func (w *worker) initBackupMetrics(s *config.Settings) {
	if w.d.Metrics == nil {
		return
	}
	w.backupInit.Do(func() {
		a, found, _ := backup.Latest(s, w.server)
		if !found {
			w.d.Metrics.InitBackup(w.server, time.Time{}, 0)
			return
		}
		w.d.Metrics.InitBackup(w.server, a.Time, a.Size)
	})
}

// engineOf unwraps the daemon's connection to the client under it.
func engineOf(c Conn) any {
	if wc, ok := c.(*watchedConn); ok {
		return wc.Conn
	}
	return c
}
