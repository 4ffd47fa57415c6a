package reload

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// Results of a reload, as bee2_reload_total's result label says them.
const (
	// ResultSuccess: the signal was sent and, when the rule verifies, the new certificates are served.
	ResultSuccess = metrics.ResultSuccess
	// ResultFailure: the signal could not be sent, or the old certificates are still served.
	ResultFailure = metrics.ResultFailure
	// ResultUnverified: the signal was sent, but what is served could not be looked at.
	ResultUnverified = metrics.ResultUnverified
)

// defaultVerifyTimeout is how long a reload may take to show before it counts as not taken.
const defaultVerifyTimeout = 20 * time.Second

// Task is one reload rule of an application on this server.
type Task struct {
	App  string
	Rule config.ReloadRule
	// ContainerID is the application's running container, "" when it has none.
	ContainerID string
}

// Tasks lists the reload rules of a server's applications; containerID finds each one's running container.
func Tasks(s *config.Settings, server string, containerID func(app string) string) []Task {
	var out []Task
	for _, app := range s.ServicesOn(server, config.KindApp) {
		for _, r := range app.Reload {
			out = append(out, Task{App: app.Name, Rule: r, ContainerID: containerID(app.Name)})
		}
	}
	return out
}

// Files reads the watched directory of a container; Signal sends it a signal; Verify waits until the
// container serves, on port, the certificate with the given serial for each name (or the timeout passes)
// and returns the serial served per name. Verify returns an error when it cannot look at all.
type (
	FilesFunc  func(ctx context.Context, containerID, dir string) (Files, error)
	SignalFunc func(ctx context.Context, containerID, signal string) error
	VerifyFunc func(ctx context.Context, containerID string, port int, want map[string]string, timeout time.Duration) (map[string]string, error)
)

// Tracker runs the reload rules of one server after each pass. It remembers the fingerprints seen per rule
// and container, so it signals on a change, not on every pass; a container seen for the first time is
// checked, when its rule verifies, and signalled only if it serves something else than the files. A
// reload that did not take is tried again on the next pass. It is used by one goroutine at a time.
type Tracker struct {
	Server  string
	Log     *zap.Logger
	Metrics *metrics.Metrics // may be nil
	// VerifyTimeout bounds how long a reload may take to show; 20s when 0.
	VerifyTimeout time.Duration

	rules  map[string]*ruleState // by app and watch
	apps   map[string]bool       // apps whose reload series exist
	warned map[string]bool       // one-off warnings given
}

type ruleState struct {
	containerID string
	files       Files
	failing     string // why the last reload did not take; "" when it did
}

// Ops are the engine calls of one pass.
type Ops struct {
	Files  FilesFunc
	Signal SignalFunc
	// Verify may be nil: rules that verify then count their reloads as unverified.
	Verify VerifyFunc
}

// Run runs every task once.
func (t *Tracker) Run(ctx context.Context, ops Ops, tasks []Task) {
	if t.rules == nil {
		t.rules, t.apps, t.warned = map[string]*ruleState{}, map[string]bool{}, map[string]bool{}
	}
	seen := map[string]bool{}
	apps := map[string]bool{}
	for _, task := range tasks {
		key := task.App + "\x00" + task.Rule.Watch()
		seen[key], apps[task.App] = true, true
		if !t.apps[task.App] && t.Metrics != nil {
			t.Metrics.InitReload(t.Server, task.App)
		}
		t.apps[task.App] = true
		if task.ContainerID == "" {
			continue // not running: nothing reads the files; the certificates stay as last seen
		}
		t.runOne(ctx, ops, task, key)
	}
	for key := range t.rules {
		if !seen[key] {
			delete(t.rules, key)
		}
	}
	for app := range t.apps {
		if !apps[app] {
			delete(t.apps, app)
			if t.Metrics != nil {
				t.Metrics.ForgetReload(t.Server, app)
			}
		}
	}
	if t.Metrics != nil {
		var all []map[string]Cert
		for _, key := range slices.Sorted(maps.Keys(t.rules)) {
			all = append(all, t.rules[key].files.Certs)
		}
		t.Metrics.SetCertificates(t.Server, expiries(all...))
	}
}

func (t *Tracker) log() *zap.Logger {
	if t.Log == nil {
		return zap.NewNop()
	}
	return t.Log
}

func (t *Tracker) runOne(ctx context.Context, ops Ops, task Task, key string) {
	log := t.log().With(zap.String("name", task.App), zap.String("watch", task.Rule.Watch()))
	files, err := ops.Files(ctx, task.ContainerID, task.Rule.Dir())
	if err != nil {
		if dockerx.IsNotFound(err) {
			files = Files{Prints: map[string]string{}, Certs: map[string]Cert{}} // nothing written yet
		} else {
			log.Warn("cannot read watched files", zap.Error(err))
			return
		}
	}
	st := t.rules[key]
	if st == nil || st.containerID != task.ContainerID {
		// A container seen for the first time read the files when it started; one that verifies is
		// asked, since the files may have changed while bee2d was not looking.
		st = &ruleState{containerID: task.ContainerID, files: files}
		t.rules[key] = st
		if task.Rule.VerifyTLSPort == 0 || len(files.Certs) == 0 || ops.Verify == nil {
			return
		}
		served, err := ops.Verify(ctx, task.ContainerID, task.Rule.VerifyTLSPort, wanted(files), t.timeout())
		if err != nil {
			t.warnOnce(err.Error(), log, "cannot check the served certificates", zap.Error(err))
			return
		}
		if why := mismatch(files, served); why != "" {
			t.reload(ctx, ops, log, task, st, files, "serves other certificates than the files: "+why)
		}
		return
	}
	changed := files.Changed(st.files)
	switch {
	case len(changed) > 0:
		t.reload(ctx, ops, log, task, st, files, "changed: "+summary(changed))
	case st.failing != "":
		t.reload(ctx, ops, log, task, st, files, "retry: "+st.failing)
	default:
		st.files = files
	}
}

// reload signals the container and, when the rule says so, checks that the new certificates are served.
func (t *Tracker) reload(ctx context.Context, ops Ops, log *zap.Logger, task Task, st *ruleState, files Files, cause string) {
	r := task.Rule
	log = log.With(zap.String("signal", r.Signal), zap.String("cause", cause))
	result, why := ResultSuccess, ""
	if err := ops.Signal(ctx, task.ContainerID, r.Signal); err != nil {
		result, why = ResultFailure, "signal: "+err.Error()
	} else if r.VerifyTLSPort != 0 && len(files.Certs) > 0 {
		if ops.Verify == nil {
			result = ResultUnverified
		} else if served, err := ops.Verify(ctx, task.ContainerID, r.VerifyTLSPort, wanted(files), t.timeout()); err != nil {
			result = ResultUnverified
			t.warnOnce(err.Error(), log, "reload sent, but the served certificates cannot be checked", zap.Error(err))
		} else if w := mismatch(files, served); w != "" {
			result, why = ResultFailure, "did not take within "+t.timeout().String()+": "+w
		}
	}
	if t.Metrics != nil {
		t.Metrics.Reload(t.Server, task.App, result)
	}
	if result == ResultFailure {
		// The old fingerprints stay, so the next pass tries again. A failure is logged when it starts.
		if st.failing == "" {
			log.Error("reload did not take", zap.String("reason", why))
		} else {
			log.Debug("reload still not taking", zap.String("reason", why))
		}
		st.failing = why
		return
	}
	if st.failing != "" {
		log.Info("reload took again after failing", zap.String("result", result))
	} else {
		log.Info("reload sent", zap.String("result", result), zap.Int("certificates", len(files.Certs)))
	}
	st.files, st.failing = files, ""
}

func (t *Tracker) timeout() time.Duration {
	if t.VerifyTimeout > 0 {
		return t.VerifyTimeout
	}
	return defaultVerifyTimeout
}

// warnOnce logs a warning the first time it is given, not on every pass.
func (t *Tracker) warnOnce(key string, log *zap.Logger, msg string, fields ...zap.Field) {
	if !t.warned[key] {
		t.warned[key] = true
		log.Warn(msg, fields...)
	}
}

// wanted is the serial each certificate name must be served with.
func wanted(f Files) map[string]string {
	out := map[string]string{}
	for _, p := range slices.Sorted(maps.Keys(f.Certs)) {
		out[f.Certs[p].Name] = f.Certs[p].Serial
	}
	return out
}

// mismatch says which names are served with another serial than their file's, "" when none is.
func mismatch(f Files, served map[string]string) string {
	want := wanted(f)
	var out []string
	for _, name := range slices.Sorted(maps.Keys(want)) {
		if got := served[name]; got != want[name] {
			if got == "" {
				got = "nothing"
			}
			out = append(out, fmt.Sprintf("%s serves %s, the file has %s", name, got, want[name]))
		}
	}
	return strings.Join(out, "; ")
}

// summary names a few changed paths.
func summary(paths []string) string {
	if len(paths) > 3 {
		return strings.Join(paths[:3], ", ") + fmt.Sprintf(" and %d more", len(paths)-3)
	}
	return strings.Join(paths, ", ")
}
