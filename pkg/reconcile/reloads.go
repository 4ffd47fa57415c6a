package reconcile

import (
	"context"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/labels"
	"github.com/bee2d/bee2d/pkg/reconcile/reload"
)

// reloadTask is a worker's state for the reload rules of its server's applications.
type reloadTask struct {
	tracker *reload.Tracker
	prober  *reload.Prober
}

// runReloads runs the reload rules of the server's applications once a pass has converged (see package
// reload): the files are read and the signals sent through the same connection as the pass, so it works
// for remote servers alike. An engine that cannot read files, signal and run probes (a test's fake) runs
// none.
func (w *worker) runReloads(ctx context.Context, log *zap.Logger, s *config.Settings, conn Conn, snap *Snapshot) {
	if w.reloads == nil && !hasReloads(s, w.server) {
		return
	}
	if wc, ok := conn.(*watchedConn); ok {
		conn = wc.Conn
	}
	eng, ok := conn.(reload.Client)
	if !ok {
		return
	}
	if w.reloads == nil {
		w.reloads = &reloadTask{
			tracker: &reload.Tracker{Server: w.server, Metrics: w.d.Metrics},
			prober:  &reload.Prober{},
		}
	}
	prefix := s.Docker.Prefix
	w.reloads.prober.Prefix = prefix
	w.reloads.tracker.Log = log
	running := func(app string) string {
		name := config.ContainerName(prefix, config.KindApp, app)
		for _, c := range snap.Containers {
			if c.Name == name && c.State == "running" && labels.Managed(c.Labels, prefix, w.server) {
				return c.ID
			}
		}
		return ""
	}
	w.reloads.tracker.Run(ctx, w.reloads.prober.Ops(eng), reload.Tasks(s, w.server, running))
}

func hasReloads(s *config.Settings, server string) bool {
	for _, app := range s.ServicesOn(server, config.KindApp) {
		if len(app.Reload) > 0 {
			return true
		}
	}
	return false
}
