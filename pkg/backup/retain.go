package backup

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
)

// selectPrune returns the archives that policy r does not keep, oldest first. Only archives bee2d wrote
// (with their manifest) are ever candidates, and the newest of them is always kept. r keeps the union of the
// newest Last archives and the newest archive of each of the most recent Daily days, Weekly ISO weeks and
// Monthly months (in loc) that have one, as restic's and borg's keep rules do.
func selectPrune(list []Archive, r config.Retain, loc *time.Location) []Archive {
	if !r.Any() {
		return nil
	}
	var cands []Archive
	for _, a := range list {
		if a.Bee2d() {
			cands = append(cands, a)
		}
	}
	if len(cands) == 0 {
		return nil
	}
	keep := make([]bool, len(cands))
	keep[len(cands)-1] = true
	bucket := func(n int, key func(time.Time) string) {
		seen := map[string]bool{}
		for i := len(cands) - 1; i >= 0 && len(seen) < n; i-- {
			k := key(cands[i].Time.In(loc))
			if !seen[k] {
				seen[k] = true
				keep[i] = true
			}
		}
	}
	for i := len(cands) - 1; i >= 0 && i >= len(cands)-r.Last; i-- {
		keep[i] = true
	}
	bucket(r.Daily, func(t time.Time) string { return t.Format("2006-01-02") })
	bucket(r.Weekly, func(t time.Time) string {
		y, w := t.ISOWeek()
		return fmt.Sprintf("%d-W%02d", y, w)
	})
	bucket(r.Monthly, func(t time.Time) string { return t.Format("2006-01") })
	var out []Archive
	for i, a := range cands {
		if !keep[i] {
			out = append(out, a)
		}
	}
	return out
}

// manifestFile matches a manifest's name.
var manifestFile = regexp.MustCompile(`^[0-9]{1,19}-volumes\.tar(\.gz|\.zst)?\.json$`)

// prune removes the archives r does not keep from dir, each archive before its manifest (a crash between
// leaves a manifest without archive, which the next prune removes), and such orphaned manifests.
func prune(dir string, r config.Retain, loc *time.Location) ([]string, error) {
	list, err := List(dir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, a := range selectPrune(list, r, loc) {
		if err := os.Remove(a.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
			continue
		}
		if err := os.Remove(a.Path + manifestSuffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
		removed = append(removed, a.Name)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return removed, errors.Join(append(errs, err)...)
	}
	for _, e := range entries {
		if !manifestFile.MatchString(e.Name()) || !e.Type().IsRegular() {
			continue
		}
		archive := strings.TrimSuffix(e.Name(), manifestSuffix)
		if _, err := os.Lstat(filepath.Join(dir, archive)); !errors.Is(err, fs.ErrNotExist) {
			continue
		}
		// Only a manifest bee2d wrote for exactly that archive.
		m, err := ReadManifest(filepath.Join(dir, e.Name()))
		if err != nil || m.Archive != archive {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(removed) > 0 {
		errs = append(errs, syncDir(dir))
	}
	return removed, errors.Join(errs...)
}
