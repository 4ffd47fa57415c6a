package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gitMetrics say where the settings come from when they follow a git branch: the commit in force, whether
// the newest head was good, whether fetching works, which commit each server converged to, and what the
// webhook turned away. They stay absent when the settings are a plain file.
type gitMetrics struct {
	commit          *prometheus.GaugeVec
	valid           prometheus.Gauge
	verified        prometheus.Gauge
	held            prometheus.Gauge
	fetchErrors     prometheus.Counter
	lastFetch       prometheus.Gauge
	converged       *prometheus.GaugeVec
	convergedAt     *prometheus.GaugeVec
	webhook         *prometheus.CounterVec
	running         string
	serverConverged map[string]string
}

func newGitMetrics() *gitMetrics {
	return &gitMetrics{
		commit: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_settings_commit_info",
			Help: "1 for the git commit whose settings are in force (settings followed from a git branch).",
		}, []string{"commit"}),
		valid: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bee2_git_commit_valid",
			Help: "Whether the newest head of the followed branch loaded and validated (1) or not (0); while 0 the commit before it stays in force.",
		}),
		verified: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bee2_git_commit_verified",
			Help: "Whether the newest head of the followed branch is signed by an allowed key (1) or not (0); 1 when signatures are not checked.",
		}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bee2_git_head_held",
			Help: "1 while the head of the followed branch is held back because it does not descend from the commit in force (a force push or rewind) and --git-allow-rewind is off.",
		}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bee2_git_fetch_errors_total",
			Help: "Fetches of the followed branch that failed (remote unreachable, authentication, no such branch).",
		}),
		lastFetch: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "bee2_git_last_fetch_success_timestamp_seconds",
			Help: "When the followed branch was last fetched successfully.",
		}),
		converged: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_server_converged_commit_info",
			Help: "1 for the settings commit of the server's last successful pass: the commit the server runs.",
		}, []string{"server", "commit"}),
		convergedAt: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bee2_server_converged_timestamp_seconds",
			Help: "When the server's last pass that ended without error or held work was done.",
		}, []string{"server"}),
		webhook: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bee2_webhook_requests_total",
			Help: "Requests to POST /hooks/git by result: accepted (a fetch was asked for), unauthorized (signature or token wrong or missing), too_large, bad_request.",
		}, []string{"result"}),
		serverConverged: map[string]string{},
	}
}

// FollowGit registers the git series: the daemon calls it once when the settings follow a branch, with
// the webhook's results (the values of the result label) when POST /hooks/git is served.
func (m *Metrics) FollowGit(webhookResults []string) {
	g := m.git
	m.reg.MustRegister(g.commit, g.valid, g.verified, g.held, g.fetchErrors, g.lastFetch)
	if len(webhookResults) > 0 {
		m.reg.MustRegister(g.webhook)
		for _, r := range webhookResults {
			g.webhook.WithLabelValues(r)
		}
	}
}

// GitFetch records a fetch of the followed branch.
func (m *Metrics) GitFetch(ok bool, at time.Time) {
	if ok {
		m.git.lastFetch.Set(float64(at.Unix()))
		return
	}
	m.git.fetchErrors.Inc()
}

// GitHead records the verdict on the newest head examined. A head refused for its signature was not
// loaded: whether its settings are valid is not known, and bee2_git_commit_valid keeps its value.
func (m *Metrics) GitHead(_ string, valid, verified bool) {
	if verified {
		m.git.valid.Set(b2f(valid))
	}
	m.git.verified.Set(b2f(verified))
}

// GitHeld records whether the branch's head is held back as a rewind.
func (m *Metrics) GitHeld(held bool) { m.git.held.Set(b2f(held)) }

// SettingsCommit records the commit now in force.
func (m *Metrics) SettingsCommit(commit string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.git.running != "" && m.git.running != commit {
		m.git.commit.DeleteLabelValues(m.git.running)
	}
	m.git.running = commit
	m.git.commit.WithLabelValues(commit).Set(1)
}

// Webhook counts a request to the webhook by result.
func (m *Metrics) Webhook(result string) { m.git.webhook.WithLabelValues(result).Inc() }

// ServerConverged records the settings revision of a server's last successful pass; an empty revision
// (a plain settings file) only sets the time.
func (m *Metrics) ServerConverged(server, revision string, at time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	g := m.git
	if old, ok := g.serverConverged[server]; ok && old != revision {
		g.converged.DeleteLabelValues(server, old)
	}
	if revision != "" {
		g.serverConverged[server] = revision
		g.converged.WithLabelValues(server, revision).Set(1)
	}
	g.convergedAt.WithLabelValues(server).Set(float64(at.Unix()))
}

func (g *gitMetrics) forget(server string) {
	g.converged.DeletePartialMatch(prometheus.Labels{"server": server})
	g.convergedAt.DeleteLabelValues(server)
	delete(g.serverConverged, server)
}
