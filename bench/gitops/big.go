package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/gitx"
)

// measureBig makes the large repository and times, for -n new commits, what the daemon does with each: fetch
// into its mirror, check out a fresh work tree, load and validate the settings; in process, through the
// packages the daemon uses. Beside each, plain git fetching the same commit into a bare clone of its own and
// adding a work tree of it, and a shallow clone of it from nothing. The order of bee2d and plain git
// alternates from commit to commit.
func (b *bench) measureBig(ctx context.Context, res *results) error {
	bare := filepath.Join(b.repoRoot(), bigRepo)
	work := filepath.Join(b.dir, "big-work")
	url := b.repoURL(bigRepo)
	logf("writing a repository of %d applications, about %d MB", b.opt.bigApps, b.opt.bigMB)
	files, bytes, err := writeBigRepo(work, b.opt.bigApps, b.opt.bigMB<<20, 0)
	if err != nil {
		return err
	}
	for _, args := range [][]string{
		{"init", "--quiet", "--bare", "--initial-branch=" + branch, bare},
		{"-C", work, "init", "--quiet", "--initial-branch=" + branch},
		{"-C", work, "remote", "add", "origin", bare},
		{"-C", work, "add", "--all"},
		{"-C", work, "commit", "--quiet", "-m", "the large settings"},
		{"-C", work, "push", "--quiet", "origin", branch},
	} {
		if err := b.git(ctx, "", args...); err != nil {
			return err
		}
	}
	// The settings must hold before anything is timed: a failure would time the error path.
	if _, err := b.loadSettings(filepath.Join(work, "settings.yml"), work); err != nil {
		return fmt.Errorf("the generated settings do not load: %w", err)
	}
	packed, err := dirSize(filepath.Join(bare, "objects"))
	if err != nil {
		return err
	}
	res.Big = &bigRepoInfo{Applications: b.opt.bigApps, Files: files, TreeBytes: bytes, PackBytes: packed, Commits: b.opt.n}

	// The first fetch of each side copies the whole history; the daemon does it once, at its start.
	mirror, err := gitx.OpenMirror(filepath.Join(b.dir, "big-state", "git", "mirror"))
	if err != nil {
		return err
	}
	if _, err := mirror.Fetch(ctx, url, branch); err != nil {
		return err
	}
	plain := filepath.Join(b.dir, "big-plain.git")
	if err := b.git(ctx, "", "clone", "--quiet", "--bare", url, plain); err != nil {
		return err
	}

	// Work trees and clones are removed only after the last commit: on ext4 creating files soon after
	// deleting as many costs more (see bench/README.md, bench/backup), which would time the deletions of the
	// commit before.
	trees := filepath.Join(b.dir, "big-state", "git", "trees")
	var made []string
	defer func() {
		for _, dir := range made {
			os.RemoveAll(dir)
		}
	}()
	for i := 1; i <= b.opt.n; i++ {
		if _, _, err := writeBigRepo(work, b.opt.bigApps, b.opt.bigMB<<20, i); err != nil {
			return err
		}
		if err := b.git(ctx, work, "commit", "--quiet", "--all", "-m", fmt.Sprintf("revision %d", i)); err != nil {
			return err
		}
		commit, err := b.gitOutput(ctx, work, "rev-parse", "HEAD")
		if err != nil {
			return err
		}
		if err := b.git(ctx, work, "push", "--quiet", "origin", branch); err != nil {
			return err
		}
		tree, plainTree, clone := filepath.Join(trees, commit), filepath.Join(b.dir, "big-plain-trees", commit), filepath.Join(b.dir, "big-clones", commit)
		made = append(made, tree, plainTree, clone)
		sides := []func() error{
			func() error { return b.bigBee2d(ctx, res, mirror, url, commit, tree) },
			func() error { return b.bigPlain(ctx, res, plain, url, commit, plainTree) },
		}
		if i%2 == 0 {
			sides[0], sides[1] = sides[1], sides[0]
		}
		for _, side := range sides {
			if err := side(); err != nil {
				return err
			}
		}
		if err := b.bigClone(ctx, res, url, commit, clone); err != nil {
			return err
		}
		logf("  large repository %d/%d: fetch %s  checkout %s  validate %s   git: fetch %s  worktree add %s  clone --depth 1 %s",
			i, b.opt.n, res.last(mBigFetch), res.last(mBigCheckout), res.last(mBigValidate),
			res.last(mGitFetch), res.last(mGitWorktree), res.last(mGitClone))
	}
	return nil
}

// bigBee2d is the daemon's work on a new head, through its own packages.
func (b *bench) bigBee2d(ctx context.Context, res *results, mirror *gitx.Mirror, url, commit, tree string) error {
	t0 := time.Now()
	head, err := mirror.Fetch(ctx, url, branch)
	if err != nil {
		return err
	}
	t1 := time.Now()
	if head != commit {
		return fmt.Errorf("the mirror fetched %s, not the commit pushed, %s", head, commit)
	}
	if err := mirror.Checkout(ctx, head, tree); err != nil {
		return err
	}
	t2 := time.Now()
	s, err := b.loadSettings(filepath.Join(tree, "settings.yml"), tree)
	if err != nil {
		return err
	}
	t3 := time.Now()
	if len(s.Applications) != b.opt.bigApps {
		return fmt.Errorf("%d applications loaded, want %d", len(s.Applications), b.opt.bigApps)
	}
	res.add(mBigFetch, t1.Sub(t0))
	res.add(mBigCheckout, t2.Sub(t1))
	res.add(mBigValidate, t3.Sub(t2))
	res.add(mBigTotal, t3.Sub(t0))
	return nil
}

// bigPlain is git alone doing the same: fetch the branch into a bare clone, add a detached work tree.
func (b *bench) bigPlain(ctx context.Context, res *results, plain, url, commit, tree string) error {
	t0 := time.Now()
	if err := b.git(ctx, "", "--git-dir="+plain, "fetch", "--quiet", url, "+refs/heads/"+branch+":refs/heads/"+branch); err != nil {
		return err
	}
	t1 := time.Now()
	if err := b.git(ctx, "", "--git-dir="+plain, "worktree", "add", "--quiet", "--detach", tree, commit); err != nil {
		return err
	}
	t2 := time.Now()
	res.add(mGitFetch, t1.Sub(t0))
	res.add(mGitWorktree, t2.Sub(t1))
	res.add(mGitTotal, t2.Sub(t0))
	return nil
}

// bigClone times a shallow clone of the branch from nothing, what a CI job checking the settings does.
func (b *bench) bigClone(ctx context.Context, res *results, url, commit, dir string) error {
	t0 := time.Now()
	if err := b.git(ctx, "", "clone", "--quiet", "--depth", "1", "--single-branch", "--branch", branch, "--no-tags", url, dir); err != nil {
		return err
	}
	d := time.Since(t0)
	head, err := b.gitOutput(ctx, dir, "rev-parse", "HEAD")
	if err != nil {
		return err
	}
	if head != commit {
		return fmt.Errorf("the shallow clone has %s, not the commit pushed, %s", head, commit)
	}
	res.add(mGitClone, d)
	return nil
}

// loadSettings reads and validates a checked-out settings file as the daemon's loader does: its paths
// confined to the work tree, what bee2d makes for the settings kept beside the mirror.
func (b *bench) loadSettings(file, root string) (*config.Settings, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return config.ParseWith(file, raw, config.Options{Root: root, KeyDir: filepath.Join(b.dir, "big-state", "secrets")})
}

// writeBigRepo writes the large repository's files into dir: settings.yml with apps applications, each
// built from dockerfiles/<name> (a Dockerfile, an entrypoint, a configuration and sources), filled up to
// about size bytes in all. The files are the same for every revision but for one env value of the first
// application, so each commit changes one line of settings.yml. It returns the number of files and their
// bytes.
func writeBigRepo(dir string, apps, size, revision int) (files int, total int64, err error) {
	write := func(name string, data []byte) error {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		files++
		total += int64(len(data))
		return os.WriteFile(path, data, 0o644)
	}
	settings := bigSettings(apps, revision)
	if err := write("settings.yml", []byte(settings)); err != nil {
		return 0, 0, err
	}
	// The same seed every time: a revision rewrites the same bytes, and git sees one change.
	rng := rand.New(rand.NewPCG(16, uint64(apps)))
	perApp := max(0, (size-len(settings))/apps)
	for i := 1; i <= apps; i++ {
		name := appName(i)
		d := "dockerfiles/" + name + "/"
		fixed := map[string]string{
			d + "Dockerfile": fmt.Sprintf("FROM alpine:3.20\nRUN apk add --no-cache ca-certificates tzdata\nCOPY entrypoint.sh /usr/local/bin/\n"+
				"COPY app.conf /etc/%s/app.conf\nCOPY src/ /srv/%s/\nEXPOSE %d\nENTRYPOINT [\"/usr/local/bin/entrypoint.sh\"]\n", name, name, 8000+i),
			d + "entrypoint.sh": fmt.Sprintf("#!/bin/sh\nset -eu\n: \"${DB_HOST:?}\"\nexec /srv/%s/server --config /etc/%s/app.conf \"$@\"\n", name, name),
			d + "app.conf":      fmt.Sprintf("listen = 0.0.0.0:%d\nlog_level = info\nworkers = 4\ncache_dir = /var/cache/%s\n", 8000+i, name),
		}
		used := 0
		for _, path := range []string{d + "Dockerfile", d + "entrypoint.sh", d + "app.conf"} {
			if err := write(path, []byte(fixed[path])); err != nil {
				return 0, 0, err
			}
			used += len(fixed[path])
		}
		// Sources and assets: text that compresses as code does, about 4:3.
		for j := 0; used < perApp; j++ {
			raw := make([]byte, min(6<<10, (perApp-used)*3/4+1))
			for k := range raw {
				raw[k] = byte(rng.Uint32())
			}
			data := []byte(wrap(base64.StdEncoding.EncodeToString(raw), 76))
			if err := write(fmt.Sprintf("%ssrc/part%02d.txt", d, j), data); err != nil {
				return 0, 0, err
			}
			used += len(data)
		}
	}
	return files, total, nil
}

// bigSettings is the large repository's settings: apps applications over four servers, each with the keys
// a real one carries (build_dir, env, volumes, ports, links, restart, memory), in Bee2's layout.
func bigSettings(apps, revision int) string {
	var s strings.Builder
	s.WriteString("servers:\n")
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&s, "  web%d:\n    private_ip: 192.168.150.%d\n    dns:\n      public: [web%d.example.com]\n      private: [web%d.example.net]\n", i, 10+i, i, i)
	}
	s.WriteString("docker:\n  prefix: big\n  dockerfiles: dockerfiles\napplications:\n")
	for i := 1; i <= apps; i++ {
		name := appName(i)
		server := fmt.Sprintf("web%d", (i-1)%4+1)
		fmt.Fprintf(&s, "  %s:\n    server: %s\n    build_dir: %s\n", name, server, name)
		fmt.Fprintf(&s, "    env:\n      domains: [%s.example.com, www.%s.example.com]\n      http_port: %d\n      log_level: info\n", name, name, 8000+i)
		fmt.Fprintf(&s, "      db_host: db-%s\n      cache_size: %dMB\n      feature_flags: search,export,audit\n", server, 64+i%8*32)
		if i == 1 {
			fmt.Fprintf(&s, "      revision: %d\n", revision)
		}
		fmt.Fprintf(&s, "    volumes:\n      - %s-data:/var/lib/%s:rw\n      - %s-logs:/var/log/%s:rw\n", name, name, name, name)
		fmt.Fprintf(&s, "    ports:\n      - %d\n", 10000+i)
		if i > 4 && i%5 == 0 {
			// A link only to an application of the same server, declared before.
			fmt.Fprintf(&s, "    link:\n      - %s\n", appName(i-4))
		}
		fmt.Fprintf(&s, "    restart: unless-stopped\n    memory: %dm\n", 256+i%4*128)
	}
	return s.String()
}

func appName(i int) string { return fmt.Sprintf("app%03d", i) }

// wrap breaks s into lines of width characters.
func wrap(s string, width int) string {
	var b strings.Builder
	for len(s) > width {
		b.WriteString(s[:width])
		b.WriteByte('\n')
		s = s[width:]
	}
	b.WriteString(s)
	b.WriteByte('\n')
	return b.String()
}

// dirSize adds up the sizes of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err == nil {
			n += fi.Size()
		}
		return err
	})
	return n, err
}
