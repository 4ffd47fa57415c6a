package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bee2d/bee2d/pkg/engine"
)

// healthMetrics tell whether applications pass their health checks, and what bee2d did when they did not:
// deploys rolled back, containers restarted.
type healthMetrics struct {
	health    *prometheus.GaugeVec
	rollbacks *prometheus.CounterVec
	restarts  *prometheus.CounterVec
}

// healthValue is the value of bee2_container_health for each verdict of the engine: ordered so that
// min() over a server is its worst container.
var healthValue = map[string]float64{engine.HealthUnhealthy: 0, engine.HealthStarting: 1, engine.HealthHealthy: 2}

func newHealthMetrics(reg *prometheus.Registry) *healthMetrics {
	labels := []string{"server", "name"}
	h := &healthMetrics{
		health: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_container_health",
			Help: "The engine's health check verdict on a running application container after the last pass: 0 unhealthy, 1 starting, 2 healthy; absent for a container without a health check or that does not run.",
		}, labels),
		rollbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bee2_rollbacks_total",
			Help: "Deploys of an application container rolled back because the new version failed its health check; the version before it serves again when it could be started.",
		}, labels),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bee2_health_restarts_total",
			Help: "Restarts by the daemon of an application container that turned unhealthy after it had been healthy (healthcheck.on_unhealthy: restart).",
		}, labels),
	}
	reg.MustRegister(h.health, h.rollbacks, h.restarts)
	return h
}

// container creates an application container's rollback series at zero and sets its health, deleting
// the health series of a container without a verdict.
func (h *healthMetrics) container(server string, r Resource) {
	h.rollbacks.WithLabelValues(server, r.Name)
	if v, ok := healthValue[r.Health]; ok {
		h.health.WithLabelValues(server, r.Name).Set(v)
	} else {
		h.health.DeleteLabelValues(server, r.Name)
	}
}

// forgetContainer deletes the series of an application container that left the settings.
func (h *healthMetrics) forgetContainer(server, name string) {
	h.health.DeleteLabelValues(server, name)
	h.rollbacks.DeleteLabelValues(server, name)
	h.restarts.DeleteLabelValues(server, name)
}

func (h *healthMetrics) forget(l prometheus.Labels) {
	h.health.DeletePartialMatch(l)
	h.rollbacks.DeletePartialMatch(l)
	h.restarts.DeletePartialMatch(l)
}

// Rollback counts a deploy of an application container that was rolled back after its new version failed
// its health check.
func (m *Metrics) Rollback(server, name string) {
	m.health.rollbacks.WithLabelValues(server, name).Inc()
}

// InitHealthRestarts creates the restart series of an application container that the daemon restarts when
// it turns unhealthy, at zero, so that an alert sees its first restart.
func (m *Metrics) InitHealthRestarts(server, name string) {
	m.health.restarts.WithLabelValues(server, name)
}

// ForgetHealthRestarts deletes the restart series of an application container that the daemon no longer
// restarts when it turns unhealthy.
func (m *Metrics) ForgetHealthRestarts(server, name string) {
	m.health.restarts.DeleteLabelValues(server, name)
}

// HealthRestart counts a restart of an application container that turned unhealthy.
func (m *Metrics) HealthRestart(server, name string) {
	m.health.restarts.WithLabelValues(server, name).Inc()
}
