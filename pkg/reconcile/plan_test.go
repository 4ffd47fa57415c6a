package reconcile

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
)

var update = flag.Bool("update", false, "rewrite the golden plans under testdata/plans")

// base is the settings most cases start from: a front linking to a static server listed after it, both
// on web1, with a third application on another server that must never show up in web1's plans.
const base = `
servers:
  web1: {}
  web2: {}
docker:
  prefix: bee2
  dockerfiles: dockerfiles
applications:
  front:
    server: web1
    image: front:1
    link: [static]
    env:
      target: $static
      domains: all
      secret_token: s3cr3t-value
    ports: [80, 443]
  static:
    server: web1
    build_dir: Static
    env:
      root: /www
      domains: [example.com]
    volumes: ["site:/www:ro", "logs:/var/log/static:rw"]
  other:
    server: web2
    image: other:1
`

// settings loads YAML from the case as the settings file testdata/settings.yml would be.
func settings(t *testing.T, yml string) *config.Settings {
	t.Helper()
	s, err := config.Parse(filepath.Join("testdata", "settings.yml"), []byte(yml))
	if err != nil {
		t.Fatalf("settings: %v", err)
	}
	return s
}

// fakeDigest makes build contexts hash to their directory name plus a per-test version, so cases can
// change "the files" of a build directory.
func fakeDigest(version string) DigestFunc {
	return func(dir string) (string, error) {
		return strings.ToLower(filepath.Base(dir)) + version + "0000000000000000", nil
	}
}

// fakeHead makes every git branch point to a commit named after the branch and a per-test version; a
// branch named "unreachable" fails like a remote that does not answer.
func fakeHead(version string) HeadFunc {
	return func(url, branch string) (string, error) {
		if branch == "unreachable" {
			return "", errors.New("git ls-remote https://***@git.example.com/site.git: could not resolve host")
		}
		return fmt.Sprintf("%s%s%040d", branch, version, 0)[:40], nil
	}
}

func desired(t *testing.T, yml, version string) *Desired {
	t.Helper()
	d, err := DesireFrom(settings(t, yml), "web1", Sources{Digest: fakeDigest(version), Head: fakeHead(version)})
	if err != nil {
		t.Fatalf("desire: %v", err)
	}
	return d
}

// liveFrom makes the snapshot a server would show after bee2d created d's containers and they started.
func liveFrom(d *Desired) *Snapshot {
	s := &Snapshot{Complete: true, Networks: []engine.Network{{Name: d.Network}}}
	seenVol := map[string]bool{}
	for i, c := range append(slices.Clone(d.Containers), d.Jobs...) {
		labels := map[string]string{}
		for k, v := range c.Labels {
			labels[k] = v
		}
		state, status := "running", "Up 2 minutes"
		if c.Kind == config.KindJob {
			state, status = "exited", "Exited (0) 1 minute ago"
		}
		s.Containers = append(s.Containers, engine.Container{
			ID: strings.Repeat(string(rune('a'+i)), 64), Name: c.Name, Image: c.Image, State: state, Status: status,
			Labels: labels, Networks: []string{d.Network},
		})
		s.Images = append(s.Images, engine.Image{ID: "sha256:" + c.Image, Tags: []string{c.Image}})
		for _, v := range c.Volumes {
			if !seenVol[v] {
				s.Volumes = append(s.Volumes, engine.Volume{Name: v})
				seenVol[v] = true
			}
		}
	}
	return s
}

func find(s *Snapshot, name string) *engine.Container {
	for i := range s.Containers {
		if s.Containers[i].Name == name {
			return &s.Containers[i]
		}
	}
	return nil
}

func TestDiffGolden(t *testing.T) {
	tests := []struct {
		name string
		// live is the settings the server was converged to (empty: a fresh server); want the settings now.
		live, want string
		// liveDigest and wantDigest version the build directory contents.
		liveDigest, wantDigest string
		// snapshot adjusts the live state.
		snapshot func(*Snapshot)
		opt      Options
	}{
		{name: "fresh-server", want: base},
		{name: "no-changes", live: base, want: base},
		{name: "env-value-changed", live: base, want: strings.Replace(base, "root: /www", "root: /srv", 1)},
		{name: "secret-env-changed", live: base, want: strings.Replace(base, "s3cr3t-value", "n3w-s3cr3t", 1)},
		{name: "env-key-added-and-removed", live: base, want: strings.Replace(base, "root: /www", "docroot: /www", 1)},
		{name: "domains-all-follows-other-app", live: base, want: strings.Replace(base, "domains: [example.com]", "domains: [example.com, example.org]", 1)},
		{name: "image-changed", live: base, want: strings.Replace(base, "image: front:1", "image: front:2", 1)},
		{name: "build-dir-contents-changed", live: base, want: base, liveDigest: "1", wantDigest: "2"},
		{name: "port-added", live: base, want: strings.Replace(base, "ports: [80, 443]", "ports: [80, 443, 8443]", 1)},
		{name: "bind-changed", live: base, want: strings.Replace(base, "site:/www:ro", "site:/www:rw", 1)},
		{
			name: "restart-policy-changed", live: base, want: base,
			snapshot: func(s *Snapshot) { relabel(s, "bee2-app-front", func(d *Digest) { d.Restart = "no" }) },
		},
		{
			name: "stopped-by-hand", live: base, want: base,
			snapshot: func(s *Snapshot) { find(s, "bee2-app-static").State = "exited" },
		},
		{
			name: "removed-from-settings", live: base,
			want: strings.Replace(base, "  front:\n    server: web1\n    image: front:1\n    link: [static]\n    env:\n      target: $static\n      domains: all\n      secret_token: s3cr3t-value\n    ports: [80, 443]\n", "", 1),
		},
		{
			name: "unmanaged-container-with-managed-name", want: base,
			snapshot: func(s *Snapshot) {
				s.Containers = append(s.Containers, engine.Container{ID: "f00d", Name: "bee2-app-front", State: "running", Labels: map[string]string{"maintainer": "someone"}})
			},
		},
		{
			name: "other-prefix-and-server-untouched", live: base, want: base,
			snapshot: func(s *Snapshot) {
				other := labels.ForServer("bee3", "web1")
				other[labels.Kind], other[labels.Name], other[labels.SpecHash] = "app", "gone", "h"
				s.Containers = append(s.Containers, engine.Container{ID: "b33", Name: "bee3-app-gone", State: "running", Labels: other})
				web2 := labels.ForServer("bee2", "web2")
				web2[labels.Kind], web2[labels.Name], web2[labels.SpecHash] = "app", "gone", "h"
				s.Containers = append(s.Containers, engine.Container{ID: "w2", Name: "bee2-app-gone", State: "running", Labels: web2})
			},
		},
		{
			// A container run by hand from an image bee2d built shares no ownership label with bee2d's.
			name: "container-run-from-bee2d-image-untouched", live: base, want: base,
			snapshot: func(s *Snapshot) {
				s.Containers = append(s.Containers, engine.Container{ID: "hand", Name: "bee2-app-static-copy", State: "running",
					Labels: map[string]string{labels.BuiltBy: labels.Bee2d, labels.BuiltFor: "web1/static"}})
			},
		},
		{
			// A backup stopped static for consistency: the pass leaves it stopped while the helper exists.
			name: "stopped-for-a-backup", live: base, want: base,
			snapshot: func(s *Snapshot) {
				find(s, "bee2-app-static").State = "exited"
				helper := labels.ForServer("bee2", "web1")
				helper[labels.Kind], helper[labels.Name], helper[labels.StoppedFor] = "helper", "backup", "bee2-app-static"
				s.Containers = append(s.Containers, engine.Container{ID: "h", Name: "bee2-helper-backup-web1", State: "running", Labels: helper})
			},
		},
		{
			name: "leftover-from-interrupted-recreate", live: base, want: base,
			snapshot: func(s *Snapshot) {
				c := find(s, "bee2-app-static")
				left := *c
				left.ID, left.Name, left.State = "0ld", "bee2-app-static-bee2d-old-0ld", "exited"
				s.Containers = append(s.Containers, left)
			},
		},
		{
			name: "interrupted-before-create", live: base, want: base,
			snapshot: func(s *Snapshot) {
				c := find(s, "bee2-app-static")
				c.Name, c.State = "bee2-app-static-bee2d-old-aaaaaaaaaaaa", "exited"
			},
		},
		{
			// Cut after the rename, before the old container stopped: it still runs and may hold the
			// ports, so it goes before its replacement is made.
			name: "interrupted-before-stop", live: base, want: base,
			snapshot: func(s *Snapshot) {
				find(s, "bee2-app-static").Name = "bee2-app-static-bee2d-old-aaaaaaaaaaaa"
			},
		},
		{
			name: "newer-hash-scheme-left-alone", live: base, want: strings.Replace(base, "image: front:1", "image: front:2", 1),
			snapshot: func(s *Snapshot) { find(s, "bee2-app-front").Labels[labels.HashScheme] = "99" },
		},
		{
			name: "missing-network-and-volume", live: base, want: strings.Replace(base, "site:/www:ro", "site2:/www:ro", 1),
			snapshot: func(s *Snapshot) { s.Networks = nil },
		},
		{
			// Bee2's build: the missing static is created; front differs from the settings but exists, so it
			// stays as it is.
			name: "build-creates-missing-only", live: strings.Replace(base, "image: front:1", "image: front:0", 1), want: base,
			snapshot: func(s *Snapshot) { s.Containers = []engine.Container{*find(s, "bee2-app-front")} },
			opt:      Options{Mode: CreateMissing},
		},
		{
			// A rebuild killed after it created static's new container and before it started it: the next
			// build starts it and removes what the rebuild left aside; front, stopped by hand, stays stopped.
			name: "build-finishes-an-interrupted-rebuild", live: base, want: base,
			snapshot: func(s *Snapshot) {
				c := find(s, "bee2-app-static")
				left := *c
				left.ID, left.Name, left.State = "0ld", "bee2-app-static-bee2d-old-0ld", "exited"
				c.State = "created"
				find(s, "bee2-app-front").State = "exited"
				s.Containers = append(s.Containers, left)
			},
			opt: Options{Mode: CreateMissing},
		},
		{
			// Rebuilding front leaves static's leftover to a build of static or of everything.
			name: "rebuild-one-leaves-other-leftovers", live: base, want: base,
			snapshot: func(s *Snapshot) {
				left := *find(s, "bee2-app-static")
				left.ID, left.Name, left.State = "0ld", "bee2-app-static-bee2d-old-0ld", "exited"
				s.Containers = append(s.Containers, left)
			},
			opt: Options{Mode: CreateMissing, Only: "front", Rebuild: true},
		},
		{name: "rebuild-one", live: base, want: base, opt: Options{Mode: CreateMissing, Only: "static", Rebuild: true}},
		{name: "rebuild-all", live: base, want: base, opt: Options{Mode: CreateMissing, Rebuild: true}},
		{
			name: "only-one-app-leaves-removals", live: base + "  extra:\n    server: web1\n    image: extra:1\n",
			want: strings.Replace(base, "image: front:1", "image: front:2", 1), opt: Options{Only: "front"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := &Snapshot{Complete: true}
			if tt.live != "" {
				snap = liveFrom(desired(t, tt.live, tt.liveDigest))
			}
			if tt.snapshot != nil {
				tt.snapshot(snap)
			}
			p := Diff(desired(t, tt.want, tt.wantDigest), snap, tt.opt)
			if p.NeedsFullSnapshot {
				t.Fatalf("a complete snapshot must not ask for more")
			}
			got := p.String()
			if strings.Contains(got, "s3cr3t") {
				t.Errorf("plan shows a secret env value:\n%s", got)
			}
			golden(t, filepath.Join("testdata", "plans", tt.name+".plan"), got)
		})
	}
}

// relabel rewrites a live container's digest and hash labels as if it had been created from another spec.
func relabel(s *Snapshot, name string, edit func(*Digest)) {
	c := find(s, name)
	d, _ := parseDigestLabel(c.Labels[labels.SpecDigest])
	edit(&d)
	c.Labels[labels.SpecDigest] = d.label()
	c.Labels[labels.SpecHash] = d.hash()
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("plan differs from %s\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// A pass where nothing changed needs only the container list; one that creates something asks for the
// rest, and with it gets the same actions a full snapshot gives.
func TestDiffAsksForFullSnapshotOnlyWhenCreating(t *testing.T) {
	d := desired(t, base, "")
	live := liveFrom(d)
	live.Complete, live.Networks, live.Volumes, live.Images = false, nil, nil, nil
	if p := Diff(d, live, Options{}); p.NeedsFullSnapshot || !p.Empty() {
		t.Fatalf("no-change pass: needs full %v, plan:\n%s", p.NeedsFullSnapshot, p)
	}
	find(live, "bee2-app-static").State = "exited"
	if p := Diff(d, live, Options{}); p.NeedsFullSnapshot || len(p.Actions) != 1 || p.Actions[0].Op != OpStartContainer {
		t.Fatalf("a start needs no full snapshot: %v\n%s", p.NeedsFullSnapshot, p)
	}
	p := Diff(d, &Snapshot{}, Options{})
	if !p.NeedsFullSnapshot {
		t.Fatalf("a create must ask for the full snapshot:\n%s", p)
	}
}

// Upgrading bee2d must not recreate containers whose spec did not change: the hash of an unchanged spec
// is stable, and so is its label.
func TestSpecHashStable(t *testing.T) {
	a, b := desired(t, base, ""), desired(t, base, "")
	for i := range a.Containers {
		if a.Containers[i].Hash != b.Containers[i].Hash || a.Containers[i].Labels[labels.SpecDigest] != b.Containers[i].Labels[labels.SpecDigest] {
			t.Errorf("%s: hash differs between two identical loads", a.Containers[i].Name)
		}
	}
	if strings.Contains(a.Containers[1].Labels[labels.SpecDigest], "s3cr3t") {
		t.Errorf("digest label holds a secret value: %s", a.Containers[1].Labels[labels.SpecDigest])
	}
}

func TestStartOrderFollowsLinks(t *testing.T) {
	d := desired(t, base, "")
	var names []string
	for _, c := range d.Containers {
		names = append(names, c.Service)
	}
	// front is listed first but links to static, so static starts first.
	if got := strings.Join(names, ","); got != "static,front" {
		t.Fatalf("start order %s, want static,front", got)
	}
}

// jobsBase has a git job writing the site volume that nginx serves, and an image job linking to api.
const jobsBase = `
servers:
  web1: {}
docker:
  prefix: bee2
applications:
  nginx:
    server: web1
    image: nginx:1
    volumes: ["site:/www:ro"]
  api:
    server: web1
    image: api:1
jobs:
  site:
    server: web1
    git: https://deploy:tok3n@git.example.com/site.git
    branch: main
    volumes: ["site:/out:rw"]
    env: {target: $nginx}
  report:
    server: web1
    image: reporter:1
    link: [api]
`

func TestDiffJobsGolden(t *testing.T) {
	exited := func(name string, code int) func(*Snapshot) {
		return func(s *Snapshot) {
			c := find(s, name)
			c.State, c.Status = "exited", fmt.Sprintf("Exited (%d) 3 seconds ago", code)
		}
	}
	tests := []struct {
		name             string
		live, want       string
		liveVer, wantVer string
		snapshot         func(*Snapshot)
		opt              Options
	}{
		{name: "fresh-server", want: jobsBase},
		{name: "jobs-succeeded", live: jobsBase, want: jobsBase},
		{name: "job-failed-is-run-again", live: jobsBase, want: jobsBase, snapshot: exited("bee2-job-site", 2)},
		{name: "new-commit", live: jobsBase, want: jobsBase, liveVer: "1", wantVer: "2"},
		{
			name: "job-in-progress-app-waits", live: jobsBase, want: jobsBase,
			snapshot: func(s *Snapshot) {
				find(s, "bee2-job-site").State = "running"
				s.Containers = slices.DeleteFunc(s.Containers, func(c engine.Container) bool { return c.Name == "bee2-app-nginx" })
			},
		},
		{
			name: "failed-job-app-waits", live: jobsBase, want: jobsBase,
			snapshot: func(s *Snapshot) {
				exited("bee2-job-site", 1)(s)
				find(s, "bee2-job-site").State = "running" // its retry is under way
				s.Containers = slices.DeleteFunc(s.Containers, func(c engine.Container) bool { return c.Name == "bee2-app-nginx" })
			},
		},
		{name: "schedule-fired", live: jobsBase, want: jobsBase, opt: Options{ForceJobs: map[string]string{"report": "schedule @hourly fired"}}},
		{name: "run-one-job", live: jobsBase, want: jobsBase, opt: Options{Mode: RunJobs, Only: "site"}},
		{name: "run-all-jobs", live: jobsBase, want: jobsBase, opt: Options{Mode: RunJobs}},
		{
			name: "run-all-jobs-stops-at-a-job-in-progress", live: jobsBase, want: jobsBase, opt: Options{Mode: RunJobs},
			snapshot: func(s *Snapshot) { find(s, "bee2-job-site").State = "running" },
		},
		{name: "build-runs-no-job", want: jobsBase, opt: Options{Mode: CreateMissing}},
		{name: "unreachable-remote-blocks-that-job-only", want: strings.Replace(jobsBase, "branch: main", "branch: unreachable", 1)},
		{name: "job-removed-from-settings", live: jobsBase, want: jobsBase[:strings.Index(jobsBase, "  report:")]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			snap := &Snapshot{Complete: true}
			if tt.live != "" {
				snap = liveFrom(desired(t, tt.live, tt.liveVer))
			}
			if tt.snapshot != nil {
				tt.snapshot(snap)
			}
			p := Diff(desired(t, tt.want, tt.wantVer), snap, tt.opt)
			got := p.String()
			if strings.Contains(got, "tok3n") {
				t.Errorf("plan shows a git credential:\n%s", got)
			}
			golden(t, filepath.Join("testdata", "plans", "jobs-"+tt.name+".plan"), got)
		})
	}
}

// The planner does no I/O: a source kind the caller gave no function for is an error, not a guess.
func TestDesireNeedsTheSourcesItsServicesUse(t *testing.T) {
	const git = `
servers:
  web1: {}
applications:
  site:
    server: web1
    git: https://deploy:s3cret@git.example.com/site.git
`
	for _, tc := range []struct {
		name, yml string
		src       Sources
		wantErr   string
	}{
		{"git without Head", git, Sources{Digest: fakeDigest("")},
			"application site: git https://deploy:***@git.example.com/site.git: no Head"},
		{"build_dir without Digest", base, Sources{Head: fakeHead("")}, "build_dir Static: no Digest"},
		{"git with Head only", git, Sources{Head: fakeHead("")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DesireFrom(settings(t, tc.yml), "web1", tc.src)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v; want it to say %q", err, tc.wantErr)
			}
		})
	}
}
