package config

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls onChange after the settings file changes, until ctx ends. See Watcher.
func Watch(ctx context.Context, path string, debounce time.Duration, onChange func()) error {
	_, err := NewWatcher(ctx, path, debounce, onChange)
	return err
}

// Watcher calls onChange after the settings file, or a file the settings were made from (a secret, an
// env_file, the hash key), changes. It watches directories, not files: editors and tools replace a file
// by renaming a new one over it, which a watch on the old file would never see, and a secret created
// later appears in its directory. Bursts of events (an editor's write, chmod and rename) within debounce
// make one call. It does not read the files; the caller reloads and decides whether anything changed.
type Watcher struct {
	w *fsnotify.Watcher
	// dir is the settings file's directory, where only the settings file and the inputs count.
	dir string

	mu    sync.Mutex
	names map[string]bool // base names in dir that count
	extra map[string]bool // other directories, where every entry counts
}

// NewWatcher starts watching the settings file at path until ctx ends; Follow adds what settings depend on.
func NewWatcher(ctx context.Context, path string, debounce time.Duration, onChange func()) (*Watcher, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	w := &Watcher{w: fw, dir: filepath.Dir(abs), names: map[string]bool{filepath.Base(abs): true}, extra: map[string]bool{}}
	if err := fw.Add(w.dir); err != nil {
		fw.Close()
		return nil, fmt.Errorf("watch %s: %w", w.dir, err)
	}
	base := filepath.Base(abs)
	go func() {
		defer fw.Close()
		var fire <-chan time.Time
		var timer *time.Timer
		for {
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				if !w.counts(ev.Name, base) {
					continue
				}
				if timer == nil {
					timer = time.NewTimer(debounce)
				} else {
					timer.Reset(debounce)
				}
				fire = timer.C
			case <-fire:
				fire = nil
				onChange()
			case _, ok := <-fw.Errors:
				if !ok {
					return
				}
				// An overflow means events were lost: treat it as a change, the caller re-reads anyway.
				onChange()
			}
		}
	}()
	return w, nil
}

// counts tells whether an event on name concerns the settings.
func (w *Watcher) counts(name, base string) bool {
	dir, file := filepath.Split(name)
	dir = filepath.Clean(dir)
	w.mu.Lock()
	defer w.mu.Unlock()
	if dir == w.dir {
		return file == base || w.names[file]
	}
	return w.extra[dir]
}

// Follow watches what s depends on besides the settings file: each input file and the directories of
// s.WatchDirs, and stops watching directories s no longer needs. A directory that cannot be watched (it
// does not exist yet, or may not be read) is returned in the error; its changes are then seen only when
// the caller reloads for another reason.
func (w *Watcher) Follow(s *Settings) error {
	want := map[string]bool{}
	for _, d := range s.WatchDirs() {
		want[filepath.Clean(d)] = true
	}
	names := map[string]bool{}
	for _, in := range s.Inputs {
		if filepath.Dir(in.Path) == w.dir {
			names[filepath.Base(in.Path)] = true
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.names = names
	var errs []error
	for d := range want {
		if w.extra[d] || d == w.dir {
			continue
		}
		if err := w.w.Add(d); err != nil {
			errs = append(errs, fmt.Errorf("watch %s: %w", d, err))
			continue
		}
		w.extra[d] = true
	}
	for d := range w.extra {
		if !want[d] {
			_ = w.w.Remove(d)
			delete(w.extra, d)
		}
	}
	return errors.Join(errs...)
}
