package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ResultUnverified is a reload whose signal was sent but whose effect could not be looked at.
const ResultUnverified = "unverified"

// certMetrics tell when the certificates bee2d watches expire and whether the reloads that load them take.
type certMetrics struct {
	expiry  *prometheus.GaugeVec
	reloads *prometheus.CounterVec

	// domains remembers the expiry series per server, so that certificates gone lose theirs.
	domains map[string]map[string]bool
}

func newCertMetrics(reg *prometheus.Registry) *certMetrics {
	c := &certMetrics{
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_certificate_expiry_timestamp_seconds",
			Help: "When the certificate for a domain expires, read from the files a reload rule watches.",
		}, []string{"server", "domain"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bee2_reload_total",
			Help: "Signals sent by reload rules, by result: success, failure (not sent, or the new certificates not served in time) or unverified.",
		}, []string{"server", "app", "result"}),
		domains: map[string]map[string]bool{},
	}
	reg.MustRegister(c.expiry, c.reloads)
	return c
}

// InitReload creates an application's reload series at zero, so that alerts see them before a failure.
func (m *Metrics) InitReload(server, app string) {
	for _, r := range []string{ResultSuccess, ResultFailure, ResultUnverified} {
		m.certs.reloads.WithLabelValues(server, app, r)
	}
}

// ForgetReload deletes the reload series of an application that has no reload rule any more.
func (m *Metrics) ForgetReload(server, app string) {
	m.certs.reloads.DeletePartialMatch(prometheus.Labels{"server": server, "app": app})
}

// Reload counts one reload with its result.
func (m *Metrics) Reload(server, app, result string) {
	m.certs.reloads.WithLabelValues(server, app, result).Inc()
}

// SetCertificates replaces a server's expiry series with the certificates given, by domain.
func (m *Metrics) SetCertificates(server string, expiry map[string]time.Time) {
	now := make(map[string]bool, len(expiry))
	for d, t := range expiry {
		now[d] = true
		m.certs.expiry.WithLabelValues(server, d).Set(float64(t.Unix()))
	}
	m.mu.Lock()
	before := m.certs.domains[server]
	m.certs.domains[server] = now
	m.mu.Unlock()
	for d := range before {
		if !now[d] {
			m.certs.expiry.DeleteLabelValues(server, d)
		}
	}
}

// forgetCerts deletes every certificate and reload series of a server.
func (m *Metrics) forgetCerts(server string) {
	l := prometheus.Labels{"server": server}
	m.certs.expiry.DeletePartialMatch(l)
	m.certs.reloads.DeletePartialMatch(l)
	m.mu.Lock()
	delete(m.certs.domains, server)
	m.mu.Unlock()
}

// ReloadSeries is one bee2_reload_total series, for tests.
func ReloadSeries(m *Metrics, server, app, result string) prometheus.Counter {
	return m.certs.reloads.WithLabelValues(server, app, result)
}

// ExpirySeries is one bee2_certificate_expiry_timestamp_seconds series, for tests.
func ExpirySeries(m *Metrics, server, domain string) prometheus.Gauge {
	return m.certs.expiry.WithLabelValues(server, domain)
}
