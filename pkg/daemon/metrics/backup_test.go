package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestBackupMetrics(t *testing.T) {
	m := New()
	m.InitBackup("web1", time.Time{}, 0)
	m.InitBackup("web2", time.Unix(1700000000, 0), 4096)
	m.BackupRun("web1", 1<<20, 3*time.Second, nil, time.Unix(1700003600, 0))
	m.BackupRun("web1", 0, time.Second, errors.New("full"), time.Unix(1700007200, 0))
	m.BackupSkipped("web1")
	m.BackupPruned("web1", 2)
	want := `
# HELP bee2_backup_archives_pruned_total Archives removed by the retention policy.
# TYPE bee2_backup_archives_pruned_total counter
bee2_backup_archives_pruned_total{server="web1"} 2
bee2_backup_archives_pruned_total{server="web2"} 0
# HELP bee2_backup_last_size_bytes Size of the server's newest good archive, as stored (compressed).
# TYPE bee2_backup_last_size_bytes gauge
bee2_backup_last_size_bytes{server="web1"} 1.048576e+06
bee2_backup_last_size_bytes{server="web2"} 4096
# HELP bee2_backup_last_success_timestamp_seconds When the server's newest good archive was taken; 0 when it has none.
# TYPE bee2_backup_last_success_timestamp_seconds gauge
bee2_backup_last_success_timestamp_seconds{server="web1"} 1.7000036e+09
bee2_backup_last_success_timestamp_seconds{server="web2"} 1.7e+09
# HELP bee2_backup_runs_total Backup runs by result: success, failure, or skipped while the previous run went on.
# TYPE bee2_backup_runs_total counter
bee2_backup_runs_total{result="failure",server="web1"} 1
bee2_backup_runs_total{result="failure",server="web2"} 0
bee2_backup_runs_total{result="skipped",server="web1"} 1
bee2_backup_runs_total{result="skipped",server="web2"} 0
bee2_backup_runs_total{result="success",server="web1"} 1
bee2_backup_runs_total{result="success",server="web2"} 0
`
	err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(want),
		"bee2_backup_archives_pruned_total", "bee2_backup_last_size_bytes",
		"bee2_backup_last_success_timestamp_seconds", "bee2_backup_runs_total")
	if err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.backup.duration); n != 2 {
		t.Errorf("%d duration series", n)
	}
	problems, err := testutil.GatherAndLint(m.Registry(), "bee2_backup_last_success_timestamp_seconds",
		"bee2_backup_last_size_bytes", "bee2_backup_duration_seconds", "bee2_backup_runs_total", "bee2_backup_archives_pruned_total")
	if err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	m.ForgetBackup("web1")
	if n := testutil.CollectAndCount(m.backup.runs); n != 3 {
		t.Errorf("%d run series left after forgetting web1", n)
	}
}
