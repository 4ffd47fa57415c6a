package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestHealthMetrics(t *testing.T) {
	m := New()
	m.SetResources("web1", []Resource{
		{Kind: KindContainer, Name: "bee2-app-web", InSync: true, Health: "healthy"},
		{Kind: KindContainer, Name: "bee2-app-db", InSync: false, Health: "unhealthy"},
		{Kind: KindContainer, Name: "bee2-app-api", InSync: false, Health: "starting"},
		{Kind: KindContainer, Name: "bee2-app-plain", InSync: true},
		{Kind: "job", Name: "bee2-job-tick", InSync: true},
		{Kind: "network", Name: "bee2-network", InSync: true},
	})
	m.SetResources("web2", []Resource{{Kind: KindContainer, Name: "bee2-app-web", InSync: true, Health: "healthy"}})
	m.InitHealthRestarts("web1", "bee2-app-web")
	m.InitHealthRestarts("web1", "bee2-app-db")
	m.HealthRestart("web1", "bee2-app-db")
	m.Rollback("web1", "bee2-app-api")
	m.Rollback("web1", "bee2-app-api")
	want := `
# HELP bee2_container_health The engine's health check verdict on a running application container after the last pass: 0 unhealthy, 1 starting, 2 healthy; absent for a container without a health check or that does not run.
# TYPE bee2_container_health gauge
bee2_container_health{name="bee2-app-api",server="web1"} 1
bee2_container_health{name="bee2-app-db",server="web1"} 0
bee2_container_health{name="bee2-app-web",server="web1"} 2
bee2_container_health{name="bee2-app-web",server="web2"} 2
# HELP bee2_health_restarts_total Restarts by the daemon of an application container that turned unhealthy after it had been healthy (healthcheck.on_unhealthy: restart).
# TYPE bee2_health_restarts_total counter
bee2_health_restarts_total{name="bee2-app-db",server="web1"} 1
bee2_health_restarts_total{name="bee2-app-web",server="web1"} 0
# HELP bee2_rollbacks_total Deploys of an application container rolled back because the new version failed its health check; the version before it serves again when it could be started.
# TYPE bee2_rollbacks_total counter
bee2_rollbacks_total{name="bee2-app-api",server="web1"} 2
bee2_rollbacks_total{name="bee2-app-db",server="web1"} 0
bee2_rollbacks_total{name="bee2-app-plain",server="web1"} 0
bee2_rollbacks_total{name="bee2-app-web",server="web1"} 0
bee2_rollbacks_total{name="bee2-app-web",server="web2"} 0
`
	names := []string{"bee2_container_health", "bee2_health_restarts_total", "bee2_rollbacks_total"}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(m.Registry(), names...)
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}

	// The next pass: web lost its check, db is healthy again, api left the settings.
	m.SetResources("web1", []Resource{
		{Kind: KindContainer, Name: "bee2-app-web", InSync: true},
		{Kind: KindContainer, Name: "bee2-app-db", InSync: true, Health: "healthy"},
		{Kind: KindContainer, Name: "bee2-app-plain", InSync: true},
	})
	if v := testutil.ToFloat64(m.health.health.WithLabelValues("web1", "bee2-app-db")); v != 2 {
		t.Errorf("db's health %v after it recovered, want 2", v)
	}
	if n := testutil.CollectAndCount(m.health.health); n != 2 {
		t.Errorf("%d health series, want 2 (web1's db, web2's web): a container without a check has none", n)
	}
	if n := testutil.CollectAndCount(m.health.rollbacks); n != 4 {
		t.Errorf("%d rollback series after api left, want 4", n)
	}
	if v := testutil.ToFloat64(m.health.restarts.WithLabelValues("web1", "bee2-app-db")); v != 1 {
		t.Errorf("db's restarts %v after a pass, want 1: a pass does not reset a counter", v)
	}
	m.ForgetHealthRestarts("web1", "bee2-app-web")
	if n := testutil.CollectAndCount(m.health.restarts); n != 1 {
		t.Errorf("%d restart series after web's was forgotten, want 1", n)
	}

	m.ForgetServer("web1")
	for _, name := range names {
		if n, err := testutil.GatherAndCount(m.Registry(), name); err != nil || n > 1 {
			t.Errorf("%s: %d series left after web1 left (want web2's at most): %v", name, n, err)
		}
	}
}
