// Command backup measures bee2d's backups and restores against the host's own pipelines on the same volume
// directory, in the same run: `tar -cf - DIR | cat` (the floor: tar -cf /dev/null reads nothing),
// `tar -cf - DIR | zstd -T0 -3` and `| pigz -6` for backups, `tar -xf`, `zstd -dc | tar -x`, `pigz -dc | tar -x`
// for restores. Two data sets: 1 GiB of mixed data (text, compressible binary, random bytes) and 20,000
// small files. Against the local engine, and with -tls also a second engine (a dockerd of its own) reached
// over TCP with mutual TLS, as a remote server is. It reports medians and ratios and never asserts a time.
// It needs root (it writes into volumes, and -tls runs dockerd), zstd and pigz (apt-get install zstd pigz).
//
//	go run ./bench/backup [-size 1024] [-files 20000] [-rounds 3] [-tls] [-json backup.json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/bee2d/bee2d/internal/pki"
	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/backup"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

type options struct {
	sizeMiB int
	files   int
	rounds  int
	tls     bool
	bee2d   string
	jsonOut string
	keep    bool
	data    []string // mixed, small
	comps   []config.Compression
	cpuProf string
	tlsOnly bool
	// noRestore skips the restores (-ops backup).
	noRestore bool
	// inodeSettle is the wait before each timed restore of many files; see settleInodes.
	inodeSettle time.Duration
}

// row is one measured operation.
type row struct {
	Engine  string  `json:"engine"`
	Data    string  `json:"data"`
	Op      string  `json:"op"` // backup, restore
	Comp    string  `json:"compression"`
	What    string  `json:"what"` // bee2d method or the host pipeline
	Seconds float64 `json:"seconds"`
	MBps    float64 `json:"mb_per_s"`
	Size    int64   `json:"archive_bytes,omitempty"`
	// Ratio is bee2d's throughput over the matching host pipeline's (same data, operation, compression).
	Ratio float64 `json:"ratio,omitempty"`
}

func main() {
	var opt options
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	fs.IntVar(&opt.sizeMiB, "size", 1024, "MiB of mixed data")
	fs.IntVar(&opt.files, "files", 20000, "number of small files")
	fs.IntVar(&opt.rounds, "rounds", 3, "measured rounds; the median is reported")
	fs.BoolVar(&opt.tls, "tls", false, "also measure a second engine over TCP with mutual TLS")
	fs.BoolVar(&opt.tlsOnly, "tls-only", false, "measure only the second engine over TCP with mutual TLS (implies -tls)")
	fs.StringVar(&opt.bee2d, "bee2d", "", "static bee2d binary to use as the helper (default: built from ./cmd/bee2d)")
	fs.StringVar(&opt.jsonOut, "json", "", "also write the numbers to this file")
	fs.BoolVar(&opt.keep, "keep", false, "keep the volumes and archives (for a look afterwards)")
	data := fs.String("data", "mixed,small", "data sets to measure: mixed, small")
	comps := fs.String("compression", "none,zstd,gzip", "compressions to measure")
	ops := fs.String("ops", "backup,restore", "operations to measure: backup, or backup,restore (a restore needs the backup's archive)")
	fs.DurationVar(&opt.inodeSettle, "inode-settle", 61*time.Second, "before each timed restore of the small files, sync and wait this long (0: no wait), so that no side creates its files among inodes the other just deleted")
	fs.StringVar(&opt.cpuProf, "cpuprofile", "", "write a CPU profile of this process (bee2d's admin side: stream, restore's check) to this file")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	opt.data = strings.Split(*data, ",")
	switch *ops {
	case "backup":
		opt.noRestore = true
	case "backup,restore", "restore,backup":
	default:
		fmt.Fprintf(os.Stderr, "bench/backup: -ops %q: want backup or backup,restore\n", *ops)
		os.Exit(2)
	}
	for _, c := range strings.Split(*comps, ",") {
		opt.comps = append(opt.comps, config.Compression(c))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opt); err != nil {
		fmt.Fprintln(os.Stderr, "bench/backup:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, opt options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it writes into volumes directly")
	}
	var missing []string
	for _, tool := range []string{"tar", "zstd", "pigz", "bash", "sync"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing host tools: %s (Debian: apt-get install tar zstd pigz bash coreutils)", strings.Join(missing, ", "))
	}
	if opt.cpuProf != "" {
		f, err := os.Create(opt.cpuProf)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	work, err := os.MkdirTemp("/var/tmp", "bee2d-bench-backup-")
	if err != nil {
		return err
	}
	shm, err := os.MkdirTemp("/dev/shm", "bee2d-bench-backup-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(shm)
	if !opt.keep {
		defer os.RemoveAll(work)
	}
	if opt.bee2d == "" {
		opt.bee2d = filepath.Join(work, "bee2d")
		fmt.Fprintln(os.Stderr, "building a static bee2d")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s", "-o", opt.bee2d, "./cmd/bee2d")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("build bee2d: %w\n%s", err, out)
		}
	}
	cli, err := dockerx.Connect(ctx, dockerx.Endpoint{})
	if err != nil {
		return err
	}
	defer cli.Close()
	prefix := fmt.Sprintf("b2bk%06x", rand.IntN(1<<24))
	var data []string
	for _, d := range opt.data {
		if d != "mixed" && d != "small" {
			return fmt.Errorf("-data: unknown data set %q (mixed, small)", d)
		}
		data = append(data, prefix+"-"+d)
	}
	for _, c := range opt.comps {
		if _, ok := pipelines[c]; !ok {
			return fmt.Errorf("-compression: unknown compression %q (none, zstd, gzip)", c)
		}
	}
	var rows []row
	local := &engine{name: "local", cli: cli, prefix: prefix, vols: data, work: filepath.Join(work, "local"), shm: filepath.Join(shm, "local"), opt: opt}
	defer local.cleanup(ctx)
	if err := local.prepare(ctx, nil); err != nil {
		return err
	}
	if !opt.tlsOnly {
		r, err := local.measure(ctx)
		rows = append(rows, r...)
		if err != nil {
			return err
		}
	}
	if opt.tls || opt.tlsOnly {
		remote, err := startTLSEngine(ctx, work, prefix, data, opt)
		if err != nil {
			return err
		}
		remote.shm = filepath.Join(shm, "tls")
		defer remote.cleanup(ctx)
		if err := remote.prepare(ctx, local); err != nil {
			return err
		}
		r, err := remote.measure(ctx)
		rows = append(rows, r...)
		if err != nil {
			return err
		}
	}
	report(rows, opt)
	if opt.jsonOut != "" {
		b, _ := json.MarshalIndent(rows, "", "  ")
		return os.WriteFile(opt.jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

// engine is one engine under measurement with its two data volumes.
type engine struct {
	name     string
	cli      *dockerx.Client
	host     string // empty: the default local engine
	tls      *config.TLSFiles
	prefix   string
	vols     []string
	work     string
	opt      options
	bytes    map[string]int64 // content bytes per volume
	shm      string           // a directory in memory (tmpfs) for storage without disk
	teardown func()
}

func (e *engine) cleanup(ctx context.Context) {
	if e.opt.keep {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	for _, v := range e.vols {
		e.cli.RemoveVolume(ctx, v)
	}
	if imgs, err := e.cli.ListImages(ctx); err == nil {
		for _, img := range imgs {
			for _, t := range img.Tags {
				if strings.HasPrefix(t, e.prefix+"/") {
					e.cli.RemoveImage(ctx, t)
				}
			}
		}
	}
	if e.teardown != nil {
		e.teardown()
	}
}

// prepare creates the volumes and fills them, or copies them from another engine on this machine.
func (e *engine) prepare(ctx context.Context, from *engine) error {
	e.bytes = map[string]int64{}
	for _, v := range e.vols {
		if err := e.cli.CreateVolume(ctx, v, nil); err != nil {
			return err
		}
		dir, err := e.cli.VolumeMountpoint(ctx, v)
		if err != nil {
			return err
		}
		if from != nil {
			src, err := from.cli.VolumeMountpoint(ctx, v)
			if err != nil {
				return err
			}
			if out, err := exec.CommandContext(ctx, "cp", "-a", src+"/.", dir).CombinedOutput(); err != nil {
				return fmt.Errorf("copy %s: %v: %s", v, err, out)
			}
		} else {
			fmt.Fprintf(os.Stderr, "%s: writing %s\n", e.name, v)
			if strings.HasSuffix(v, "-mixed") {
				err = writeMixed(dir, int64(e.opt.sizeMiB)<<20)
			} else {
				err = writeSmall(dir, e.opt.files)
			}
			if err != nil {
				return err
			}
		}
		n, err := contentBytes(dir)
		if err != nil {
			return err
		}
		e.bytes[v] = n
	}
	exec.Command("sync").Run()
	return nil
}

// settings writes a settings file for one volume and compression, with the storage under base.
func (e *engine) settings(vol string, comp config.Compression, base string) (*config.Settings, error) {
	dir := filepath.Join(base, vol+"-"+string(comp))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	conn := "{}"
	if e.host != "" {
		conn = fmt.Sprintf("\n    docker:\n      host: %s\n      tls: {ca: %s, cert: %s, key: %s}", e.host, e.tls.CA, e.tls.Cert, e.tls.Key)
	}
	yml := fmt.Sprintf("servers:\n  web1: %s\ndocker:\n  prefix: %s\n  backup:\n    web1:\n      storage_dir: store\n      volumes: [%s]\n      compression: %s\n",
		conn, e.prefix, vol, comp)
	path := filepath.Join(dir, "settings.yml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		return nil, err
	}
	return config.Load(path)
}

// The host's pipelines, by compression: the floor (to /dev/null, as the issue measures), the same written
// durably to a file on the storage's file system, and the extraction of an archive followed by a sync of
// the file system, as a restore must end.
var pipelines = map[config.Compression]struct{ name, floor, file, restoreName, restore string }{
	config.CompressionNone: {"tar | cat", "tar -cf - -C %[1]s . | cat > /dev/null", "tar -cf - -C %[1]s . | cat > %[2]s && sync %[2]s",
		"tar -x", "tar -xf %[2]s -C %[1]s && sync -f %[1]s"},
	config.CompressionZstd: {"tar | zstd -T0 -3", "tar -cf - -C %[1]s . | zstd -T0 -3 -q -c > /dev/null", "tar -cf - -C %[1]s . | zstd -T0 -3 -q -c > %[2]s && sync %[2]s",
		"zstd -dc | tar -x", "zstd -dc -q %[2]s | tar -xf - -C %[1]s && sync -f %[1]s"},
	config.CompressionGzip: {"tar | pigz -6", "tar -cf - -C %[1]s . | pigz -6 -c > /dev/null", "tar -cf - -C %[1]s . | pigz -6 -c > %[2]s && sync %[2]s",
		"pigz -dc | tar -x", "pigz -dc %[2]s | tar -xf - -C %[1]s && sync -f %[1]s"},
}

// timings collects the rounds of each measured operation.
type timings map[string][]float64

func (e *engine) measure(ctx context.Context) ([]row, error) {
	var rows []row
	// Build the helper image outside the measurements: once per bee2d version and server.
	s, err := e.settings(e.vols[len(e.vols)-1], config.CompressionNone, e.shm)
	if err != nil {
		return nil, err
	}
	if _, err := backup.Run(ctx, e.cli, s, "web1", backup.Options{Helper: e.opt.bee2d}); err != nil {
		return nil, err
	}
	for _, vol := range e.vols {
		src, err := e.cli.VolumeMountpoint(ctx, vol)
		if err != nil {
			return rows, err
		}
		mb := float64(e.bytes[vol]) / 1e6
		label := strings.TrimPrefix(vol, e.prefix+"-")
		// Warm the page cache: every measurement reads the volume from memory.
		if _, err := timeShell(ctx, fmt.Sprintf(pipelines[config.CompressionNone].floor, src)); err != nil {
			return rows, err
		}
		for _, comp := range e.opt.comps {
			r, err := e.measureOne(ctx, vol, label, src, mb, comp)
			rows = append(rows, r...)
			if err != nil {
				return rows, err
			}
		}
	}
	return rows, nil
}

func (e *engine) measureOne(ctx context.Context, vol, label, src string, mb float64, comp config.Compression) ([]row, error) {
	var rows []row
	p := pipelines[comp]
	onDisk, err := e.settings(vol, comp, filepath.Join(e.work, "disk"))
	if err != nil {
		return nil, err
	}
	inMemory, err := e.settings(vol, comp, e.shm)
	if err != nil {
		return nil, err
	}
	hostFile := filepath.Join(e.work, "host-archive")
	t := timings{}
	sizes := map[string]int64{}
	var archive backup.Archive
	var method backup.Method
	host := func(key, script string) error {
		sec, err := timeShell(ctx, script)
		if err != nil {
			return err
		}
		t[key] = append(t[key], sec)
		if fi, err := os.Stat(hostFile); err == nil {
			sizes[key] = fi.Size()
		}
		os.Remove(hostFile)
		return nil
	}
	bee := func(key string, s *config.Settings, m backup.Method) error {
		if key == "disk" && archive.Path != "" {
			os.Remove(archive.Path)
			os.Remove(archive.Path + ".json")
		}
		start := time.Now()
		res, err := backup.Run(ctx, e.cli, s, "web1", backup.Options{Helper: e.opt.bee2d, Method: m, Version: "bench"})
		if err != nil {
			return fmt.Errorf("%s %s %s %s: %w", e.name, label, comp, key, err)
		}
		t[key] = append(t[key], time.Since(start).Seconds())
		t[key+" transfer"] = append(t[key+" transfer"], res.Transfer.Seconds())
		sizes[key] = res.Archive.Size
		if key == "disk" {
			archive, method = res.Archive, res.Method
			return nil
		}
		os.Remove(res.Archive.Path)
		os.Remove(res.Archive.Path + ".json")
		return nil
	}
	steps := []func() error{
		func() error { return host("floor", fmt.Sprintf(p.floor, src)) },
		func() error { return bee("memory", inMemory, backup.MethodAuto) },
	}
	if e.host == "" {
		steps = append(steps, func() error { return bee("memory stream", inMemory, backup.MethodStream) })
	}
	steps = append(steps,
		func() error { return host("file", fmt.Sprintf(p.file, src, hostFile)) },
		func() error { return bee("disk", onDisk, backup.MethodAuto) })
	for round := range e.opt.rounds {
		// Each of bee2d's runs sits next to its peer, and every other round runs in the reverse order, so
		// that a change of load on the machine during a round touches both sides of a ratio alike.
		order := slices.Clone(steps)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, step := range order {
			if err := step(); err != nil {
				return rows, err
			}
		}
	}
	add := func(r row, key, peer string) {
		r.Engine, r.Data, r.Comp = e.name, label, string(comp)
		r.Seconds = median(t[key])
		r.MBps = mb / r.Seconds
		if peer != "" {
			r.Ratio = pairedRatio(t[peer], t[key])
		}
		rows = append(rows, r)
	}
	what := "bee2d " + string(method)
	add(row{Op: "backup", What: p.name + " > /dev/null"}, "floor", "")
	add(row{Op: "backup", What: what + ", storage in memory", Size: sizes["memory"]}, "memory", "floor")
	add(row{Op: "backup", What: "  of which the helper's run"}, "memory transfer", "floor")
	if e.host == "" {
		add(row{Op: "backup", What: "bee2d helper-stream, storage in memory"}, "memory stream", "floor")
		add(row{Op: "backup", What: "  of which the helper's run"}, "memory stream transfer", "floor")
	}
	add(row{Op: "backup", What: p.name + " > file; sync", Size: sizes["file"]}, "file", "")
	add(row{Op: "backup", What: what + ", storage on disk", Size: sizes["disk"]}, "disk", "file")
	fmt.Fprintf(os.Stderr, "%s %s %s backup: floor %.2fs, bee2d in memory %.2fs (helper %.2fs); file+sync %.2fs, bee2d on disk %.2fs\n",
		e.name, label, comp, median(t["floor"]), median(t["memory"]), median(t["memory transfer"]), median(t["file"]), median(t["disk"]))
	if e.opt.noRestore {
		return rows, nil
	}

	// Restores: the host extracts the same archive into an empty directory on the volumes' file system.
	scratch := filepath.Join(filepath.Dir(src), "bench-extract")
	restores := []func() error{
		func() error {
			os.RemoveAll(scratch)
			os.MkdirAll(scratch, 0o755)
			if err := e.settleInodes(ctx, label); err != nil {
				return err
			}
			sec, err := timeShell(ctx, fmt.Sprintf(p.restore, scratch, archive.Path))
			if err != nil {
				return err
			}
			t["host restore"] = append(t["host restore"], sec)
			os.RemoveAll(scratch)
			exec.Command("sync").Run()
			return nil
		},
		func() error {
			if err := e.settleInodes(ctx, label); err != nil {
				return err
			}
			start := time.Now()
			rr, err := backup.Restore(ctx, e.cli, onDisk, "web1", backup.RestoreOptions{Options: backup.Options{Helper: e.opt.bee2d}})
			if err != nil {
				return fmt.Errorf("%s restore %s %s: %w", e.name, vol, comp, err)
			}
			t["restore"] = append(t["restore"], time.Since(start).Seconds())
			t["restore transfer"] = append(t["restore transfer"], rr.Transfer.Seconds())
			exec.Command("sync").Run()
			return nil
		},
	}
	for round := range e.opt.rounds {
		order := slices.Clone(restores)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, step := range order {
			if err := step(); err != nil {
				return rows, err
			}
		}
	}
	add(row{Op: "restore", What: p.restoreName + "; sync"}, "host restore", "")
	add(row{Op: "restore", What: what}, "restore", "host restore")
	add(row{Op: "restore", What: "  of which the helper's run"}, "restore transfer", "host restore")
	fmt.Fprintf(os.Stderr, "%s %s %s restore: host %.2fs, bee2d %.2fs (helper %.2fs)\n", e.name, label, comp,
		median(t["host restore"]), median(t["restore"]), median(t["restore transfer"]))
	return rows, nil
}

// pairedRatio is the median over rounds of bee2d's throughput over its peer's in the same round (the peer's
// time over bee2d's): rounds seconds apart share the machine's load, rounds minutes apart may not.
// settleInodes waits, before a timed restore of the small files, until the inodes deleted just before (the
// other side's extraction, the volume's previous contents) no longer slow the creation of new ones. On an
// ext4 without a journal, as this machine's is, the kernel will not reuse an inode deleted less than 60 s
// ago (360 s while its inode table block is dirty) and looks up every such inode it passes over while it
// looks for a free one: after 20,000 deletions a file creation costs about a millisecond of CPU instead of
// tens of microseconds, for whichever side comes next. A sync makes the blocks clean; the wait outlasts the
// 60 s.
func (e *engine) settleInodes(ctx context.Context, label string) error {
	if label != "small" || e.opt.inodeSettle <= 0 {
		return nil
	}
	exec.Command("sync").Run()
	select {
	case <-time.After(e.opt.inodeSettle):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func pairedRatio(peer, bee []float64) float64 {
	var r []float64
	for i := range min(len(peer), len(bee)) {
		if bee[i] > 0 {
			r = append(r, peer[i]/bee[i])
		}
	}
	return median(r)
}

func timeShell(ctx context.Context, script string) (float64, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, "bash", "-o", "pipefail", "-c", script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("%s: %w: %s", script, err, out)
	}
	return time.Since(start).Seconds(), nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func report(rows []row, opt options) {
	fmt.Printf("\nbee2d backup benchmark: %d MiB mixed, %d small files, median of %d rounds, %d CPUs, %s/%s\n",
		opt.sizeMiB, opt.files, opt.rounds, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Println("MB/s counts the files' content (10^6 bytes) over the median time; ratio = median over the rounds of bee2d's")
	fmt.Println("MB/s over that of the host pipeline above it, measured next to it in the same round.")
	fmt.Println("Backups to memory (tmpfs) compare with the pipeline to /dev/null; to disk, with the pipeline to a file and")
	fmt.Println("a sync. bee2d's time is end to end: the helper container's start and removal, the archive, its fsync and")
	fmt.Println("manifest; \"of which\" rows are the helper's run alone. Restores check the whole archive first.")
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "engine\tdata\top\tcompression\twhat\tseconds\tMB/s\tarchive MB\tratio\t")
	for _, r := range rows {
		ratio, size := "", ""
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.2f×", r.Ratio)
		}
		if r.Size > 0 {
			size = fmt.Sprintf("%.0f", float64(r.Size)/1e6)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.2f\t%.0f\t%s\t%s\t\n", r.Engine, r.Data, r.Op, r.Comp, r.What, r.Seconds, r.MBps, size, ratio)
	}
	tw.Flush()
}

// contentBytes sums the sizes of the regular files under dir.
func contentBytes(dir string) (int64, error) {
	var n int64
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	return n, err
}

// writeMixed writes size bytes: 40% text (logs and prose), 30% binary that compresses (records with counters
// and a few random fields), 30% random bytes; files from 64 KiB to 64 MiB.
func writeMixed(dir string, size int64) error {
	rng := rand.New(rand.NewPCG(1, 2))
	words := strings.Fields("the quick brown fox jumps over a lazy dog while bee2d keeps every volume of the " +
		"server safe in one archive GET POST /index.html 200 404 nginx haproxy certbot renewal letsencrypt mail")
	sizes := []int64{64 << 20, 16 << 20, 4 << 20, 1 << 20, 256 << 10, 64 << 10}
	var written int64
	for i := 0; written < size; i++ {
		n := min(sizes[i%len(sizes)], size-written)
		kind := []string{"text", "binary", "random"}[i%10*10/34] // 4 text, 3 binary, 3 random out of 10
		sub := filepath.Join(dir, kind, fmt.Sprintf("d%02d", i%16))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		buf := make([]byte, 0, n)
		switch kind {
		case "text":
			for int64(len(buf)) < n {
				buf = fmt.Appendf(buf, "2024-05-%02d 12:%02d:%02d 10.0.%d.%d ", rng.IntN(28)+1, rng.IntN(60), rng.IntN(60), rng.IntN(255), rng.IntN(255))
				for range 8 + rng.IntN(8) {
					buf = append(buf, words[rng.IntN(len(words))]...)
					buf = append(buf, ' ')
				}
				buf = append(buf, '\n')
			}
		case "binary":
			for rec := uint64(0); int64(len(buf)) < n; rec++ {
				var r [32]byte
				for j := range 8 {
					r[j] = byte(rec >> (8 * j))
				}
				r[8], r[9] = byte(rng.IntN(4)), byte(rng.IntN(256))
				copy(r[16:], "record-payload!!")
				buf = append(buf, r[:]...)
			}
		default:
			buf = buf[:n]
			for j := 0; j+8 <= len(buf); j += 8 {
				v := rng.Uint64()
				for k := range 8 {
					buf[j+k] = byte(v >> (8 * k))
				}
			}
		}
		buf = buf[:n]
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d.%s", i, kind)), buf, 0o644); err != nil {
			return err
		}
		written += n
	}
	return nil
}

// writeSmall writes n files of 1 to 8 KiB of text in 100 directories.
func writeSmall(dir string, n int) error {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range n {
		sub := filepath.Join(dir, fmt.Sprintf("d%03d", i%100))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			return err
		}
		size := 1024 + rng.IntN(7*1024)
		b := make([]byte, 0, size)
		for len(b) < size {
			b = fmt.Appendf(b, "line %d of file %d: %x\n", len(b), i, rng.Uint32())
		}
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("file%05d.txt", i)), b[:size], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// startTLSEngine starts a dockerd of its own that listens on TCP with mutual TLS, with a CA made here.
func startTLSEngine(ctx context.Context, work, prefix string, vols []string, opt options) (*engine, error) {
	certs := filepath.Join(work, "certs")
	os.MkdirAll(certs, 0o700)
	ca, err := pki.NewCA("bench CA", time.Now(), 24*time.Hour)
	if err != nil {
		return nil, err
	}
	if err := pki.WriteFile(filepath.Join(certs, "ca.pem"), ca.CertPEM, 0o644); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		name string
		tmpl pki.Template
	}{
		{"server", pki.Template{Usage: pki.Server, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}},
		{"client", pki.Template{Usage: pki.Client, CommonName: "bee2d"}},
	} {
		kp, err := ca.Issue(c.tmpl)
		if err != nil {
			return nil, err
		}
		if err := kp.Save(filepath.Join(certs, c.name+".crt"), filepath.Join(certs, c.name+".pem")); err != nil {
			return nil, err
		}
	}
	fmt.Fprintln(os.Stderr, "starting a second engine on TCP with TLS")
	e, err := testdocker.NewEngine(&testdocker.EngineTLS{CA: filepath.Join(certs, "ca.pem"),
		Cert: filepath.Join(certs, "server.crt"), Key: filepath.Join(certs, "server.pem")})
	if err != nil {
		return nil, err
	}
	tls := &config.TLSFiles{CA: filepath.Join(certs, "ca.pem"), Cert: filepath.Join(certs, "client.crt"), Key: filepath.Join(certs, "client.pem")}
	cli, err := dockerx.Connect(ctx, dockerx.Endpoint{Host: e.TCPHost,
		TLS: &dockerx.TLSFiles{CA: tls.CA, Cert: tls.Cert, Key: tls.Key}})
	if err != nil {
		e.Remove()
		return nil, err
	}
	return &engine{name: "tcp+tls", cli: cli, host: e.TCPHost, tls: tls, prefix: prefix, vols: vols,
		work: filepath.Join(work, "tls"), opt: opt, teardown: func() { cli.Close(); e.Remove() }}, nil
}
