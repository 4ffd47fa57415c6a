package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/bee2d/bee2d/pkg/backup"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// backupFlags are the flags of backup, backups, verify and restore.
type backupFlags struct {
	common
	helper  string
	at      int64
	volumes []string
	quick   bool
}

func newBackupFlags(name, synopsis string, f *backupFlags, stderr io.Writer) *flag.FlagSet {
	fs := newFlags(name, synopsis, &f.common, false, stderr)
	switch name {
	case "backup", "restore":
		fs.StringVar(&f.helper, "helper", "", "a static bee2d for the server's platform, run there as the helper (default: this bee2d)")
	}
	switch name {
	case "verify", "restore":
		fs.Func("at", "the archive's timestamp (unix seconds, as in its name); default the newest", func(v string) error {
			ts, err := parseStamp(v)
			f.at = ts
			return err
		})
	}
	if name == "restore" {
		fs.Func("volume", "restore only this volume (repeatable); default every volume of the archive", func(v string) error {
			// Checked before anything is read or locked: the name becomes a directory inside the helper.
			if !config.ValidName(v) {
				return fmt.Errorf("%q is not a volume name (a name must match [a-zA-Z0-9][a-zA-Z0-9_.-]*)", v)
			}
			f.volumes = append(f.volumes, v)
			return nil
		})
	}
	if name == "backups" {
		fs.BoolVar(&f.quick, "quick", false, "do not read the archives to check their checksums")
	}
	return fs
}

// parseMixed parses flags given before, between and after positional arguments (bee2d backup -c S web1 and
// bee2d backup web1 -c S alike) and returns the positional ones.
func parseMixed(fs *flag.FlagSet, c *common, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if err := parse(fs, c, nil); err != nil {
		return nil, err
	}
	return pos, nil
}

// backupServers checks the servers named (all with backup settings when none are) against the settings.
func backupServers(s *config.Settings, names []string) ([]string, error) {
	if len(names) == 0 {
		for _, srv := range s.Servers {
			if s.Docker.Backup[srv.Name] != nil {
				names = append(names, srv.Name)
			}
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("no server of %s has backup settings (docker.backup)", s.File)
		}
		return names, nil
	}
	for _, n := range names {
		if s.Server(n) == nil {
			return nil, fmt.Errorf("no server %q in %s", n, s.File)
		}
		if s.Docker.Backup[n] == nil {
			return nil, fmt.Errorf("server %s has no backup settings (docker.backup.%s)", n, n)
		}
	}
	return names, nil
}

// connectBackup opens a server's engine; unlike converging, a backup needs no desired state.
func connectBackup(ctx context.Context, s *config.Settings, server string) (*dockerx.Client, error) {
	ep, err := reconcile.EndpointFor(s, server)
	if err != nil {
		return nil, err
	}
	return dockerx.Connect(ctx, ep)
}

func backupOptions(sess *session, f *backupFlags) backup.Options {
	o := backup.Options{Version: version, Helper: f.helper, Log: sess.log}
	if sess.progress != nil {
		o.BuildOutput = io.Discard
	}
	return o
}

// progressLine shows one line per server that is rewritten in place, on a terminal only.
type progressLine struct {
	mu sync.Mutex
	w  io.Writer
}

func (p *progressLine) show(pr backup.Progress) {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	rate := ""
	if s := pr.Elapsed.Seconds(); s > 0 {
		rate = fmt.Sprintf(", %s/s", size(int64(float64(pr.Bytes)/s)))
	}
	fmt.Fprintf(p.w, "\r\033[K%s: %s in %d files%s", pr.Server, size(pr.Bytes), pr.Files, rate)
}

func (p *progressLine) done() {
	if p == nil || p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprint(p.w, "\r\033[K")
}

// size writes a byte count for people.
func size(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func cmdBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f backupFlags
	fs := newBackupFlags("backup", "backup -c settings.yml [SERVER...] [--helper FILE]", &f, stderr)
	names, err := parseMixed(fs, &f.common, args)
	if err != nil {
		return err
	}
	s, err := load(f.common, stderr)
	if err != nil {
		return err
	}
	return runBackups(ctx, s, &f, names, stdout, stderr)
}

// runBackups backs up the servers at once and prints one summary per server, in the order given.
func runBackups(ctx context.Context, s *config.Settings, f *backupFlags, names []string, stdout, stderr io.Writer) error {
	names, err := backupServers(s, names)
	if err != nil {
		return err
	}
	sess, err := newSession(s, f.common, stderr)
	if err != nil {
		return err
	}
	pl := &progressLine{w: sess.progress}
	outs := make([]string, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli, err := connectBackup(ctx, s, name)
			if err != nil {
				errs[i] = fmt.Errorf("server %s: %w", name, err)
				return
			}
			defer cli.Close()
			opts := backupOptions(sess, f)
			opts.Progress = pl.show
			res, err := backup.Run(ctx, cli, s, name, opts)
			if err != nil {
				errs[i] = fmt.Errorf("server %s: backup: %w", name, err)
				return
			}
			outs[i] = backupSummary(res)
		}()
	}
	wg.Wait()
	pl.done()
	for _, o := range outs {
		fmt.Fprint(stdout, o)
	}
	return errors.Join(errs...)
}

func backupSummary(res backup.Result) string {
	m := res.Archive.Manifest
	var b strings.Builder
	fmt.Fprintf(&b, "server %s: %s, %s, %d files in %s, %s (%s)\n", res.Server, res.Archive.Path,
		size(res.Archive.Size), m.Files, volumeNames(m.Volumes), res.Took.Round(time.Millisecond), res.Method)
	if m.ProblemsTotal > 0 {
		fmt.Fprintf(&b, "  %d could not be archived as they were:\n", m.ProblemsTotal)
		for _, p := range m.Problems {
			fmt.Fprintf(&b, "    %s\n", p)
		}
		if n := m.ProblemsTotal - len(m.Problems); n > 0 {
			fmt.Fprintf(&b, "    ... and %d more\n", n)
		}
	}
	if len(res.Stopped) > 0 {
		fmt.Fprintf(&b, "  stopped during the backup: %s\n", strings.Join(res.Stopped, ", "))
	}
	for _, p := range res.Pruned {
		fmt.Fprintf(&b, "  pruned %s\n", p)
	}
	return b.String()
}

func volumeNames(vs []backup.VolumeStats) string {
	names := make([]string, len(vs))
	for i, v := range vs {
		names[i] = v.Name
	}
	return strings.Join(names, ", ")
}

func cmdBackups(args []string, stdout, stderr io.Writer) error {
	var f backupFlags
	fs := newBackupFlags("backups", "backups -c settings.yml [SERVER...] [--quick]", &f, stderr)
	names, err := parseMixed(fs, &f.common, args)
	if err != nil {
		return err
	}
	s, err := load(f.common, stderr)
	if err != nil {
		return err
	}
	names, err = backupServers(s, names)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SERVER\tTIME\tARCHIVE\tSIZE\tVOLUMES\tVERIFIED\n")
	var failed []error
	for _, name := range names {
		dir, err := backup.Dir(s, name)
		if err != nil {
			return err
		}
		list, err := backup.List(dir)
		if err != nil {
			return fmt.Errorf("server %s: %w", name, err)
		}
		for _, a := range list {
			vols, verified := "?", "not checked"
			if a.Manifest != nil {
				vols = volumeNames(a.Manifest.Volumes)
			}
			switch {
			case a.ManifestErr != nil:
				verified = "FAILED: manifest unreadable"
				failed = append(failed, a.ManifestErr)
			case f.quick && a.Manifest != nil && a.Manifest.Size != a.Size:
				verified = fmt.Sprintf("FAILED: %d bytes, manifest says %d", a.Size, a.Manifest.Size)
				failed = append(failed, errors.New(a.Name+": "+verified))
			case f.quick:
			default:
				sum, err := backup.Verify(a, nil)
				vols = volumeNames(sum.Volumes)
				switch {
				case err != nil:
					verified = "FAILED: " + err.Error()
					failed = append(failed, err)
				case a.Manifest == nil:
					verified = "structure ok, no checksum (Bee2)"
				default:
					verified = "ok"
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, a.Time.Format("2006-01-02 15:04:05"), a.Name,
				size(a.Size), vols, verified)
		}
	}
	tw.Flush()
	if len(failed) > 0 {
		return fmt.Errorf("%d archives failed their check", len(failed))
	}
	return nil
}

func cmdVerify(args []string, stdout, stderr io.Writer) error {
	var f backupFlags
	fs := newBackupFlags("verify", "verify -c settings.yml SERVER [--at TS]", &f, stderr)
	names, err := parseMixed(fs, &f.common, args)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		fmt.Fprintln(stderr, "bee2d verify: want one SERVER")
		fs.Usage()
		return errUsage
	}
	s, err := load(f.common, stderr)
	if err != nil {
		return err
	}
	if _, err := backupServers(s, names); err != nil {
		return err
	}
	dir, err := backup.Dir(s, names[0])
	if err != nil {
		return err
	}
	a, err := backup.Find(dir, f.at)
	if err != nil {
		return err
	}
	var read func(int64)
	if isTerminal(os.Stdout) {
		read = func(n int64) { fmt.Fprintf(os.Stdout, "\r\033[K%s: read %s of %s", a.Name, size(n), size(a.Size)) }
	}
	sum, err := backup.Verify(a, read)
	if read != nil {
		fmt.Fprint(os.Stdout, "\r\033[K")
	}
	if err != nil {
		return err
	}
	check := "sha256 " + sum.SHA256 + " matches its manifest"
	if a.Manifest == nil {
		check = "no manifest (Bee2's format): checksum not verifiable, structure checked"
	}
	fmt.Fprintf(stdout, "%s: ok: %s; %d files, %s in %s\n", a.Path, check, sum.Files, size(sum.Bytes), volumeNames(sum.Volumes))
	return nil
}

func cmdRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f backupFlags
	fs := newBackupFlags("restore", "restore -c settings.yml SERVER [--at TS] [--volume V]...", &f, stderr)
	names, err := parseMixed(fs, &f.common, args)
	if err != nil {
		return err
	}
	if len(names) != 1 {
		fmt.Fprintln(stderr, "bee2d restore: want one SERVER")
		fs.Usage()
		return errUsage
	}
	s, err := load(f.common, stderr)
	if err != nil {
		return err
	}
	return runRestore(ctx, s, &f, names[0], stdout, stderr)
}

func runRestore(ctx context.Context, s *config.Settings, f *backupFlags, name string, stdout, stderr io.Writer) error {
	if _, err := backupServers(s, []string{name}); err != nil {
		return err
	}
	f.server = name
	sess, err := newSession(s, f.common, stderr)
	if err != nil {
		return err
	}
	cli, err := connectBackup(ctx, s, name)
	if err != nil {
		return fmt.Errorf("server %s: %w", name, err)
	}
	defer cli.Close()
	pl := &progressLine{w: sess.progress}
	opts := backupOptions(sess, f)
	opts.Progress = pl.show
	res, err := backup.Restore(ctx, cli, s, name, backup.RestoreOptions{Options: opts, At: f.at, Volumes: f.volumes})
	pl.done()
	if err != nil {
		return fmt.Errorf("server %s: restore: %w", name, err)
	}
	check := "checksum verified"
	if !res.Verified {
		check = "no manifest (Bee2's format): checksum not verifiable, structure checked"
	}
	fmt.Fprintf(stdout, "server %s: restored %s from %s (%s), %s\n", name, volumeNames(res.Volumes), res.Archive.Name,
		check, res.Took.Round(time.Millisecond))
	if len(res.Created) > 0 {
		fmt.Fprintf(stdout, "  created volumes: %s\n", strings.Join(res.Created, ", "))
	}
	if len(res.Stopped) > 0 {
		fmt.Fprintf(stdout, "  stopped during the restore: %s\n", strings.Join(res.Stopped, ", "))
	}
	return nil
}

// legacyBackup runs -d SERVER:backup and -d SERVER:restore[:TS].
func legacyBackup(ctx context.Context, s *config.Settings, c common, cmd legacyCommand, stdout, stderr io.Writer) error {
	f := &backupFlags{common: c}
	if cmd.Action == "backup" {
		return runBackups(ctx, s, f, []string{cmd.Server}, stdout, stderr)
	}
	if cmd.Arg != "" {
		ts, err := parseStamp(cmd.Arg)
		if err != nil {
			return fmt.Errorf("-d %s:restore:%s: %w", cmd.Server, cmd.Arg, err)
		}
		f.at = ts
	}
	return runRestore(ctx, s, f, cmd.Server, stdout, stderr)
}

// parseStamp reads an archive's timestamp as its name has it: unix seconds, digits only. Anything else
// (a path, a date, a sign) is refused before any file is looked at.
func parseStamp(v string) (int64, error) {
	ts, err := strconv.ParseInt(v, 10, 64)
	if err != nil || ts <= 0 || strconv.FormatInt(ts, 10) != v {
		return 0, fmt.Errorf("the timestamp must be unix seconds, as in the archive's name (such as 1700000000), not %q", v)
	}
	return ts, nil
}
