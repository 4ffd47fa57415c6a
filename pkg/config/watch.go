package config

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Watch calls onChange after the settings file changes, until ctx ends. It watches the file's directory,
// not the file: editors and tools replace a file by renaming a new one over it, which a watch on the old
// file would never see. Bursts of events (an editor's write, chmod and rename) within debounce make one
// call. It does not read the file; the caller reloads and decides whether anything changed.
func Watch(ctx context.Context, path string, debounce time.Duration, onChange func()) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	dir, base := filepath.Split(filepath.Clean(path))
	if dir == "" {
		dir = "."
	}
	if err := w.Add(dir); err != nil {
		w.Close()
		return fmt.Errorf("watch %s: %w", dir, err)
	}
	go func() {
		defer w.Close()
		var fire <-chan time.Time
		var timer *time.Timer
		for {
			select {
			case <-ctx.Done():
				if timer != nil {
					timer.Stop()
				}
				return
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if filepath.Base(ev.Name) != base {
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
			case _, ok := <-w.Errors:
				if !ok {
					return
				}
				// An overflow means events were lost: treat it as a change, the caller re-reads anyway.
				onChange()
			}
		}
	}()
	return nil
}
