package backup_test

import (
	"testing"

	"github.com/bee2d/bee2d/pkg/backup"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// A helper is bee2d's on its server, and a helper: a pass never takes it for an application.
func TestHelperLabels(t *testing.T) {
	got := backup.HelperLabelsForTest("p", "web1")
	if !labels.OnServer(got, "p", "web1") || labels.OnServer(got, "p", "web2") || labels.OnServer(got, "q", "web1") {
		t.Errorf("helper labels %v: not owned on p/web1 alone", got)
	}
	if labels.Managed(got, "p", "web1") {
		t.Errorf("helper labels %v read as a managed application", got)
	}
	if got[labels.Kind] != labels.KindHelper || got[labels.Name] != "backup" || len(got) != 5 {
		t.Errorf("labels %v", got)
	}
}

var _ backup.Engine = (*dockerx.Client)(nil)
