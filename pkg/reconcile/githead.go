package reconcile

import (
	"context"

	"github.com/bee2d/bee2d/pkg/reconcile/gitsrc"
)

// defaultHead asks the remote with git ls-remote.
func defaultHead(url, branch string) (string, error) {
	return gitsrc.Head(context.Background(), url, branch)
}
