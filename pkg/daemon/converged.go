package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/internal/atomicfile"
	"github.com/bee2d/bee2d/pkg/gitx"
)

// Converged is the settings revision a server last converged to: the revision of its last pass that ended
// without an error and without held work, and since when its passes have been on that revision.
type Converged struct {
	Revision string    `json:"revision,omitempty"`
	Since    time.Time `json:"since"`
}

// convergedFile is where, under StateDir, the daemon keeps what each server converged to, for `bee2d
// status` in another process.
const convergedFile = "converged.json"

type convergedRecord struct {
	Servers map[string]Converged `json:"servers"`
}

// converged records a successful pass of server on the settings revision rev.
func (d *Daemon) converged(server, rev string, at time.Time) {
	if d.Metrics != nil {
		d.Metrics.ServerConverged(server, rev, at)
	}
	d.mu.Lock()
	if d.convergedTo == nil {
		d.convergedTo = map[string]Converged{}
	}
	old, ok := d.convergedTo[server]
	if ok && old.Revision == rev {
		d.mu.Unlock()
		return
	}
	d.convergedTo[server] = Converged{Revision: rev, Since: at}
	rec := convergedRecord{Servers: map[string]Converged{}}
	for s, c := range d.convergedTo {
		rec.Servers[s] = c
	}
	d.mu.Unlock()
	if rev != "" {
		d.log().Info("server converged to a new settings commit", zap.String("server", server), zap.String("commit", rev))
	}
	if err := d.writeConverged(rec); err != nil {
		d.log().Warn("cannot record what the servers converged to; bee2d status will not show it", zap.Error(err))
	}
}

// ConvergedTo returns what each server converged to, by server; a server without a successful pass yet is
// absent.
func (d *Daemon) ConvergedTo() map[string]Converged {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]Converged, len(d.convergedTo))
	for s, c := range d.convergedTo {
		out[s] = c
	}
	return out
}

// ConvergedLines say, one line per server in name order, what each converged to: the details of /readyz.
func (d *Daemon) ConvergedLines() []string {
	return ConvergedLines(d.ConvergedTo(), d.now())
}

// ConvergedLines formats records as "web1 converged to 3f2a9c1 (2m ago, 2026-12-02T10:00:00Z)".
func ConvergedLines(c map[string]Converged, now time.Time) []string {
	names := make([]string, 0, len(c))
	for s := range c {
		names = append(names, s)
	}
	slices.Sort(names)
	out := make([]string, 0, len(names))
	for _, s := range names {
		out = append(out, s+" "+c[s].Describe(now))
	}
	return out
}

// Describe says what a server converged to, for a person: "converged to 3f2a9c1 (2 min ago)".
func (c Converged) Describe(now time.Time) string {
	what := "converged"
	if c.Revision != "" {
		what = "converged to " + gitx.Short(c.Revision)
	}
	return fmt.Sprintf("%s (%s, %s)", what, ago(now.Sub(c.Since)), c.Since.UTC().Format(time.RFC3339))
}

// ago says a duration the way status lines do: "just now", "40 s ago", "2 min ago", "3 h ago", "2 days ago".
func ago(d time.Duration) string {
	switch {
	case d < 5*time.Second:
		return "just now"
	case d < time.Minute:
		return fmt.Sprintf("%d s ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

// writeConverged replaces the record file atomically; without a StateDir nothing is written.
func (d *Daemon) writeConverged(rec convergedRecord) error {
	if d.StateDir == "" {
		return nil
	}
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(d.StateDir, convergedFile), append(data, '\n'), 0o644)
}

// ReadConverged reads what the daemon with this state directory recorded; a directory without a record
// gives an empty map.
func ReadConverged(stateDir string) (map[string]Converged, error) {
	data, err := os.ReadFile(filepath.Join(stateDir, convergedFile))
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]Converged{}, nil
	}
	if err != nil {
		return nil, err
	}
	var rec convergedRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(stateDir, convergedFile), err)
	}
	if rec.Servers == nil {
		rec.Servers = map[string]Converged{}
	}
	return rec.Servers, nil
}
