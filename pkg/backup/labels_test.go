package backup_test

import (
	"testing"

	"github.com/bee2d/bee2d/pkg/backup"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// The helper's and restored volumes' labels are pkg/reconcile's, which this package cannot import.
func TestLabelsMatchReconcile(t *testing.T) {
	got := backup.HelperLabelsForTest("p", "web1")
	for k, want := range map[string]string{
		reconcile.LabelOwner: reconcile.Owner, reconcile.LabelPrefix: "p", reconcile.LabelServer: "web1",
		reconcile.LabelKind: "helper", reconcile.LabelName: "backup",
	} {
		if got[k] != want {
			t.Errorf("label %s = %q, want %q", k, got[k], want)
		}
	}
	if len(got) != 5 {
		t.Errorf("labels %v", got)
	}
}

var _ backup.Engine = (*dockerx.Client)(nil)
