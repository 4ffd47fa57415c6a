// Package metrics holds bee2d's Prometheus metrics: what a dashboard and alerts need to see drift,
// unreachable servers, failed reloads, slow passes and tasks that fail, panic or cannot run.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Results of an action, as the "result" label says them.
const (
	ResultSuccess = "success"
	ResultFailure = "failure"
)

// Metrics is the set of bee2d's collectors on a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	reloadOK       prometheus.Gauge
	reloadSuccess  prometheus.Gauge
	serverUp       *prometheus.GaugeVec
	inSync         *prometheus.GaugeVec
	passDuration   *prometheus.HistogramVec
	passErrors     *prometheus.CounterVec
	actions        *prometheus.CounterVec
	lastPassSucces *prometheus.GaugeVec

	jobs   *jobMetrics
	backup *backupMetrics
	certs  *certMetrics
	tasks  *taskMetrics
	health *healthMetrics
	git    *gitMetrics

	mu sync.Mutex
	// resources remembers which in-sync series exist per server, so that removed resources lose theirs.
	resources map[string]map[[2]string]bool
}

// New makes the metrics and registers them with Go and process collectors.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bee2_config_last_reload_successful",
			Help: "Whether the last attempt to load the settings file succeeded (1) or failed (0).",
		}),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bee2_config_last_reload_success_timestamp_seconds",
			Help: "When the settings file was last loaded successfully.",
		}),
		serverUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_server_up",
			Help: "Whether the server's Docker engine answered on the last attempt (1) or not (0).",
		}, []string{"server"}),
		inSync: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_resource_in_sync",
			Help: "Whether a managed resource matches the settings (1) or not (0).",
		}, []string{"server", "kind", "name"}),
		passDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bee2_reconcile_duration_seconds",
			Help:    "Time of one reconcile pass of a server: observe, plan and execute.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"server"}),
		passErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bee2_reconcile_errors_total",
			Help: "Reconcile passes of a server that ended in an error.",
		}, []string{"server"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bee2_reconcile_actions_total",
			Help: "Actions applied to servers, by type and result.",
		}, []string{"server", "action", "result"}),
		lastPassSucces: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_reconcile_last_success_timestamp_seconds",
			Help: "When a reconcile pass of the server last ended without error.",
		}, []string{"server"}),
		resources: map[string]map[[2]string]bool{},
	}
	m.reg.MustRegister(m.reloadOK, m.reloadSuccess, m.serverUp, m.inSync, m.passDuration, m.passErrors, m.actions,
		m.lastPassSucces,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m.jobs = newJobMetrics(m.reg)
	m.backup = newBackupMetrics(m.reg)
	m.certs = newCertMetrics(m.reg)
	m.tasks = newTaskMetrics(m.reg)
	m.health = newHealthMetrics(m.reg)
	m.git = newGitMetrics()
	m.reg.MustRegister(m.git.converged, m.git.convergedAt)
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry the metrics live on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ConfigReload records an attempt to load the settings.
func (m *Metrics) ConfigReload(ok bool, at time.Time) {
	if ok {
		m.reloadOK.Set(1)
		m.reloadSuccess.Set(float64(at.Unix()))
		return
	}
	m.reloadOK.Set(0)
}

// InitServer creates every series of a server at zero, so alerts work before the first failure. actions
// lists the action types a plan can hold.
func (m *Metrics) InitServer(server string, actions []string) {
	m.serverUp.WithLabelValues(server)
	m.passErrors.WithLabelValues(server)
	m.passDuration.WithLabelValues(server)
	m.lastPassSucces.WithLabelValues(server)
	for _, a := range actions {
		m.actions.WithLabelValues(server, a, ResultSuccess)
		m.actions.WithLabelValues(server, a, ResultFailure)
	}
}

// ForgetServer deletes every series of a server that left the settings.
func (m *Metrics) ForgetServer(server string) {
	l := prometheus.Labels{"server": server}
	m.serverUp.DeletePartialMatch(l)
	m.passErrors.DeletePartialMatch(l)
	m.passDuration.DeletePartialMatch(l)
	m.lastPassSucces.DeletePartialMatch(l)
	m.actions.DeletePartialMatch(l)
	m.inSync.DeletePartialMatch(l)
	m.jobs.lastRun.DeletePartialMatch(l)
	m.jobs.lastSuccess.DeletePartialMatch(l)
	m.jobs.exitCode.DeletePartialMatch(l)
	m.jobs.runs.DeletePartialMatch(l)
	m.jobs.duration.DeletePartialMatch(l)
	m.jobs.interval.DeletePartialMatch(l)
	m.tasks.forget(l)
	m.health.forget(l)
	m.forgetCerts(server)
	m.mu.Lock()
	m.git.forget(server)
	delete(m.resources, server)
	m.mu.Unlock()
}

// ServerUp records whether a server's engine answered.
func (m *Metrics) ServerUp(server string, up bool) {
	m.serverUp.WithLabelValues(server).Set(b2f(up))
}

// Resource is one managed resource's sync state.
type Resource struct {
	Kind, Name string
	InSync     bool
	// Health is an application container's health: starting, healthy or unhealthy; "" when it has no
	// health check or does not run.
	Health string
}

// KindContainer is the Kind of an application's container; its resource has health and rollback series
// too.
const KindContainer = "container"

// SetResources replaces a server's in-sync series, and those of its application containers' health and
// rollbacks: the given resources are set, and those it had before but are not given any more are deleted.
func (m *Metrics) SetResources(server string, rs []Resource) {
	now := make(map[[2]string]bool, len(rs))
	for _, r := range rs {
		now[[2]string{r.Kind, r.Name}] = true
		m.inSync.WithLabelValues(server, r.Kind, r.Name).Set(b2f(r.InSync))
		if r.Kind == KindContainer {
			m.health.container(server, r)
		}
	}
	m.mu.Lock()
	before := m.resources[server]
	m.resources[server] = now
	m.mu.Unlock()
	for k := range before {
		if !now[k] {
			m.inSync.DeleteLabelValues(server, k[0], k[1])
			if k[0] == KindContainer {
				m.health.forgetContainer(server, k[1])
			}
		}
	}
}

// Pass records one reconcile pass of a server.
func (m *Metrics) Pass(server string, took time.Duration, err error, at time.Time) {
	m.passDuration.WithLabelValues(server).Observe(took.Seconds())
	if err != nil {
		m.passErrors.WithLabelValues(server).Inc()
		return
	}
	m.lastPassSucces.WithLabelValues(server).Set(float64(at.Unix()))
}

// Action counts one applied action.
func (m *Metrics) Action(server, action string, ok bool) {
	result := ResultSuccess
	if !ok {
		result = ResultFailure
	}
	m.actions.WithLabelValues(server, action, result).Inc()
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
