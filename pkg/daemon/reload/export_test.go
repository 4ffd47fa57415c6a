package reload

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bee2d/bee2d/pkg/daemon/metrics"
)

// metricsReload and metricsExpiry find one series of the metrics the tracker sets.
func metricsReload(m *metrics.Metrics, server, app, result string) prometheus.Collector {
	return metrics.ReloadSeries(m, server, app, result)
}

func metricsExpiry(m *metrics.Metrics, server, domain string) prometheus.Collector {
	return metrics.ExpirySeries(m, server, domain)
}
