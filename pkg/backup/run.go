package backup

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// Result is what one backup run did.
type Result struct {
	Server string
	// Archive is the archive written, with its manifest.
	Archive Archive
	Method  Method
	Took    time.Duration
	// Stopped names the containers stopped during the backup (and started again).
	Stopped []string
	// Pruned names the archives retention removed after the backup.
	Pruned []string
	// Leftovers names what an interrupted earlier run had left (temporary files, a helper container) and this
	// run removed.
	Leftovers []string
	// Transfer is the time the data took to move, without preparing and committing.
	Transfer time.Duration
}

// Run takes one backup of the server's configured volumes now: the daemon calls it when the schedule fires,
// the backup command and -d SERVER:backup directly. It returns ErrBusy, at once, while another backup or
// restore of the server runs on this machine. When ctx ends, the helper is removed, the partial file deleted
// and the stopped applications started again before Run returns. After a successful backup, retention
// prunes; a pruning error is logged and returned in Result, not as the run's error.
func Run(ctx context.Context, eng Engine, s *config.Settings, server string, opts Options) (Result, error) {
	start := opts.now()
	res := Result{Server: server}
	b := s.Docker.Backup[server]
	if b == nil {
		return res, fmt.Errorf("server %s has no backup settings (docker.backup.%s)", server, server)
	}
	dir, err := Dir(s, server)
	if err != nil {
		return res, err
	}
	log := opts.log().With(zap.String("server", server))
	unlock, err := lockDir(dir)
	if err != nil {
		if errors.Is(err, ErrBusy) {
			return res, err
		}
		return res, storageError(dir, err)
	}
	defer unlock()
	if res.Leftovers, err = removeLeftovers(dir); err != nil {
		return res, err
	}
	prefix := s.Prefix(server)
	name := HelperName(prefix, "backup", server)
	// Three independent looks at the engine, at once: on a busy engine each round trip is slow.
	var (
		wg                  sync.WaitGroup
		removed             bool
		missing             []string
		h                   helper
		errRm, errVol, errH error
	)
	wg.Add(3)
	go func() { defer wg.Done(); removed, errRm = removeLeftoverHelper(ctx, eng, prefix, server, name) }()
	go func() { defer wg.Done(); missing, errVol = missingVolumes(ctx, eng, b.Volumes) }()
	go func() { defer wg.Done(); h, errH = prepareHelper(ctx, eng, prefix, opts.Helper, opts.BuildOutput) }()
	wg.Wait()
	if errRm != nil {
		return res, errRm
	}
	if removed {
		res.Leftovers = append(res.Leftovers, name)
	}
	for _, l := range res.Leftovers {
		log.Warn("removed what an interrupted backup left", zap.String("name", l))
	}
	if errVol != nil {
		return res, errVol
	}
	if len(missing) > 0 {
		return res, fmt.Errorf("volumes missing on %s: %s", server, strings.Join(missing, ", "))
	}
	if errH != nil {
		return res, fmt.Errorf("helper image: %w", errH)
	}
	method, err := firstMethod(opts.Method, h, eng.Host())
	if err != nil {
		return res, err
	}
	if !h.Runnable {
		log.Info("helper cannot run on this server: using the slower archive endpoint", zap.String("reason", h.Why))
	}
	list, err := eng.ListContainers(ctx)
	if err != nil {
		return res, err
	}
	toStop := appContainers(list, prefix, server, b.Stop)
	var stopNames []string
	for _, c := range toStop {
		stopNames = append(stopNames, c.Name)
	}
	ts := freeStamp(dir, start.Unix())
	final := ArchiveName(ts, b.Compression)
	t := &transfer{
		eng: eng, server: server, dir: dir, tmp: "." + final + ".tmp", comp: b.Compression,
		vols: b.Volumes, ts: ts, start: start, opts: &opts,
		spec: dockerx.HelperSpec{
			Name:  name,
			Image: h.Image,
			// The helper exists, naming the applications it stops, before they stop: a reconcile pass that
			// sees them down also sees why.
			Labels: helperLabels(prefix, server, "backup", stopNames),
		},
	}
	defer t.cleanup(ctx)
	if method, err = t.create(ctx, method, opts.Method == MethodAuto); err != nil {
		return res, err
	}
	st, err := stopAll(ctx, eng, toStop, opts.stopTimeout(), log.With(zap.String("for", "backup")))
	if err != nil {
		return res, fmt.Errorf("stop applications for the backup: %w", err)
	}
	res.Stopped = st.names()
	out, err := t.run(ctx, method)
	if errors.Is(err, errNotShared) && opts.Method == MethodAuto {
		// The engine has a directory of that name, but not ours: the archive travels through the stream.
		log.Debug("the engine does not see the storage directory: streaming", zap.String("dir", dir))
		t.cleanup(ctx)
		if method, err = t.create(ctx, MethodStream, false); err == nil {
			out, err = t.run(ctx, method)
		}
	}
	// The applications start again whatever happened, before the archive is committed.
	if serr := st.start(ctx, eng, log); serr != nil {
		err = errors.Join(err, fmt.Errorf("start the applications stopped for the backup: %w", serr))
	}
	if err != nil {
		// The helper first: in a bind mount it may still be writing the partial file.
		t.cleanup(ctx)
		os.Remove(filepath.Join(dir, t.tmp))
		return res, err
	}
	res.Transfer = out.took
	// The helper has exited: the engine removes it while the manifest and the archive are made durable.
	helperGone := make(chan struct{})
	go func() {
		defer close(helperGone)
		t.cleanup(ctx)
	}()
	defer func() { <-helperGone }()
	m := &Manifest{
		Format:        ManifestFormat,
		Archive:       final,
		Server:        server,
		Time:          ts,
		Created:       start.UTC().Truncate(time.Millisecond),
		Compression:   b.Compression,
		Size:          out.Size,
		SHA256:        out.SHA256,
		Volumes:       out.Volumes,
		Problems:      out.Problems,
		ProblemsTotal: out.ProblemsTotal,
		Method:        string(method),
		Seconds:       opts.now().Sub(start).Seconds(),
		Stopped:       res.Stopped,
		Version:       opts.Version,
	}
	for _, v := range out.Volumes {
		m.Files += v.Files
		m.Bytes += v.Bytes
	}
	if indexable(b.Compression) && validBlocks(out.Blocks, out.Size) {
		m.Blocks = out.Blocks
	}
	// The manifest is committed first: a crash before the archive's rename leaves a manifest without an
	// archive, which listing ignores and pruning removes, never an archive without its checksum.
	if err := writeManifest(dir, m); err != nil {
		os.Remove(filepath.Join(dir, t.tmp))
		return res, storageError(dir, err)
	}
	if err := commit(filepath.Join(dir, t.tmp), filepath.Join(dir, final)); err != nil {
		os.Remove(filepath.Join(dir, t.tmp))
		os.Remove(filepath.Join(dir, final+manifestSuffix))
		return res, fmt.Errorf("store %s: %w", final, err)
	}
	res.Method = method
	res.Archive = Archive{
		Path: filepath.Join(dir, final), Name: final, Time: time.Unix(ts, 0), Compression: b.Compression,
		Size: out.Size, Manifest: m,
	}
	res.Took = opts.now().Sub(start)
	for _, p := range m.Problems {
		log.Warn("backup problem", zap.String("volume", p.Volume), zap.String("path", p.Path), zap.String("problem", p.What))
	}
	if m.ProblemsTotal > len(m.Problems) {
		log.Warn("more backup problems", zap.Int("not_shown", m.ProblemsTotal-len(m.Problems)))
	}
	log.Info("backup done", zap.String("archive", res.Archive.Path), zap.Int64("size", out.Size),
		zap.Int64("files", m.Files), zap.String("method", string(method)), zap.Duration("took", res.Took))
	if b.Retain.Any() {
		pruned, perr := prune(dir, b.Retain, opts.location())
		res.Pruned = pruned
		for _, p := range pruned {
			log.Info("pruned", zap.String("archive", p))
		}
		if perr != nil {
			log.Error("pruning failed", zap.Error(perr))
		}
	}
	return res, nil
}

// freeStamp returns ts, or the next second no archive of dir (in any compression) is named after.
func freeStamp(dir string, ts int64) int64 {
	for ; ; ts++ {
		taken := false
		for _, c := range config.Compressions {
			if _, err := os.Lstat(filepath.Join(dir, ArchiveName(ts, c))); err == nil {
				taken = true
			}
		}
		if !taken {
			return ts
		}
	}
}

// firstMethod picks the data path to try: the bind mount where the engine may share this file system (a
// unix socket), the attach stream where the helper runs, the archive endpoint elsewhere.
func firstMethod(want Method, h helper, host string) (Method, error) {
	switch {
	case want == MethodArchive:
		return want, nil
	case !h.Runnable && want != MethodAuto:
		return "", fmt.Errorf("%s needs the helper, which cannot run here: %s", want, h.Why)
	case !h.Runnable:
		return MethodArchive, nil
	case want != MethodAuto:
		return want, nil
	case localEngine(host):
		return MethodBind, nil
	}
	return MethodStream, nil
}

// errNotShared: the helper found that the storage directory mounted into it is not the one bee2d sees.
var errNotShared = errors.New("the engine does not see the storage directory")

// transfer is the data part of one backup: one helper container, created before the applications stop.
type transfer struct {
	eng    Engine
	server string
	dir    string
	tmp    string
	comp   config.Compression
	vols   []string
	ts     int64
	start  time.Time
	opts   *Options
	spec   dockerx.HelperSpec

	id    string // the helper container
	probe string // the probe file of a bind mount, "" for none
}

// result is a transfer's outcome: the helper's, with how long the data took to move.
type result struct {
	*helperResult
	took time.Duration
}

func (t *transfer) progress(bytes, files int64) {
	if t.opts.Progress != nil {
		t.opts.Progress(Progress{Server: t.server, Bytes: bytes, Files: files, Elapsed: t.opts.now().Sub(t.start)})
	}
}

// create makes the helper container for method. A bind mount of a path the engine's host does not have
// falls back to the stream when fallback allows.
func (t *transfer) create(ctx context.Context, method Method, fallback bool) (Method, error) {
	spec := t.spec
	spec.Mounts = volumeMounts(t.vols, true)
	args := []string{"backup", "--compression", string(t.comp), "--time", strconv.FormatInt(t.ts, 10)}
	switch method {
	case MethodBind:
		token := make([]byte, 16)
		suffix := make([]byte, 8)
		randRead(token)
		randRead(suffix)
		t.probe = ".bee2d-probe-" + hex.EncodeToString(suffix)
		if err := os.WriteFile(filepath.Join(t.dir, t.probe), []byte(hex.EncodeToString(token)), 0o600); err != nil {
			return "", storageError(t.dir, err)
		}
		args = append(args, "--out", "/out/"+t.tmp, "--probe", t.probe+":"+hex.EncodeToString(token),
			"--chown", strconv.Itoa(os.Getuid())+":"+strconv.Itoa(os.Getgid()))
		spec.Mounts = append(spec.Mounts, dockerx.HelperMount{Source: t.dir, Target: "/out"})
	case MethodStream:
		if t.comp == config.CompressionNone {
			args = append(args, "--wire", "zstd")
		}
	}
	spec.Cmd = append(args, t.vols...)
	if method == MethodArchive {
		spec.Cmd = []string{"/none"} // never started
	}
	id, err := t.eng.CreateHelper(ctx, spec)
	if err != nil && method == MethodBind && fallback && strings.Contains(err.Error(), "bind source path does not exist") {
		t.cleanup(ctx)
		return t.create(ctx, MethodStream, false)
	}
	if err != nil {
		return "", err
	}
	t.id = id
	return method, nil
}

// cleanup removes the helper container and the probe file, also after ctx ended.
func (t *transfer) cleanup(ctx context.Context) {
	if t.probe != "" {
		os.Remove(filepath.Join(t.dir, t.probe))
		t.probe = ""
	}
	if t.id != "" {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		// One that cannot be removed now is removed by the next run.
		t.eng.RemoveContainer(cctx, t.id)
		t.id = ""
	}
}

func (t *transfer) run(ctx context.Context, method Method) (result, error) {
	start := time.Now()
	var r *helperResult
	var err error
	switch method {
	case MethodBind:
		r, err = t.bind(ctx)
	case MethodStream:
		r, err = t.stream(ctx)
	default:
		r, err = t.archiveEndpoint(ctx)
	}
	return result{helperResult: r, took: time.Since(start)}, err
}

// bind: the helper writes the archive into the storage directory itself and hashes it as it goes.
func (t *transfer) bind(ctx context.Context) (*helperResult, error) {
	ev := &helperEvents{progress: t.progress}
	code, err := t.eng.RunHelper(ctx, t.id, nil, io.Discard, ev)
	if err != nil {
		return nil, err
	}
	if code == exitNotShared {
		return nil, errNotShared
	}
	if code != 0 {
		return nil, storageError(t.dir, ev.failure("backup", code))
	}
	if ev.result == nil || ev.result.SHA256 == "" {
		return nil, errors.New("backup helper gave no result")
	}
	fi, err := os.Stat(filepath.Join(t.dir, t.tmp))
	if err != nil {
		return nil, err
	}
	if fi.Size() != ev.result.Size {
		return nil, fmt.Errorf("archive %s has %d bytes, the helper wrote %d", t.tmp, fi.Size(), ev.result.Size)
	}
	return ev.result, nil
}

// stream: the helper sends the archive through the attach stream; bee2d writes and hashes it.
func (t *transfer) stream(ctx context.Context) (*helperResult, error) {
	f, err := os.OpenFile(filepath.Join(t.dir, t.tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, storageError(t.dir, err)
	}
	defer f.Close()
	cw := newChunkWriter(f, sha256.New())
	ev := &helperEvents{progress: t.progress}
	var stdout io.Writer = cw
	var unwire *unwirer
	if t.comp == config.CompressionNone {
		// The helper compressed the plain archive for the stream (create's --wire): what is stored and
		// hashed is the archive itself.
		unwire = newUnwirer(cw)
		stdout = unwire
	}
	code, err := t.eng.RunHelper(ctx, t.id, nil, stdout, ev)
	if unwire != nil {
		if uerr := unwire.Close(); err == nil && code == 0 {
			err = uerr
		}
	}
	if cerr := cw.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, storageError(t.dir, err)
	}
	if code != 0 {
		return nil, ev.failure("backup", code)
	}
	if ev.result == nil {
		return nil, errors.New("backup helper gave no result")
	}
	if err := f.Sync(); err != nil {
		return nil, storageError(t.dir, err)
	}
	if err := f.Close(); err != nil {
		return nil, storageError(t.dir, err)
	}
	r := ev.result
	r.SHA256, r.Size = hex.EncodeToString(cw.h.Sum(nil)), cw.Size()
	return r, nil
}

// unwirer decompresses the zstd stream written into it (the helper's --wire) into w, on a goroutine of its
// own, so that receiving and decompressing overlap.
type unwirer struct {
	pw   *io.PipeWriter
	done chan error
}

func newUnwirer(w io.Writer) *unwirer {
	pr, pw := io.Pipe()
	u := &unwirer{pw: pw, done: make(chan error, 1)}
	go func() {
		err := func() error {
			dec, err := decompressor(pr, config.CompressionZstd)
			if err != nil {
				return err
			}
			defer dec.Close()
			_, err = io.CopyBuffer(onlyWriter{w}, dec, make([]byte, 1<<20))
			return err
		}()
		// A failing decompression (or output) stops the sender too.
		pr.CloseWithError(err)
		u.done <- err
	}()
	return u
}

func (u *unwirer) Write(p []byte) (int, error) { return u.pw.Write(p) }

// Close ends the stream and returns the decompression's error: a stream cut short is one.
func (u *unwirer) Close() error {
	u.pw.Close()
	if err := <-u.done; err != nil {
		return fmt.Errorf("decompress the helper's stream: %w", err)
	}
	return nil
}

// archiveEndpoint: the helper container, created and never started, mounts the volumes, and the engine's
// archive endpoint streams them; bee2d checks each entry, leaves out what a restore would refuse,
// compresses and hashes.
func (t *transfer) archiveEndpoint(ctx context.Context) (*helperResult, error) {
	rc, err := t.eng.CopyFromContainer(ctx, t.id, containerVolumes)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	f, err := os.OpenFile(filepath.Join(t.dir, t.tmp), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, storageError(t.dir, err)
	}
	defer f.Close()
	out := newChunkWriter(f, sha256.New())
	var w io.Writer = out
	cw, err := compressor(out, t.comp)
	if err != nil {
		out.Close()
		return nil, err
	}
	if t.comp != config.CompressionNone {
		w = cw
	}
	r, err := rewrite(rc, w, t.vols, func(b, n int64) { t.progress(b, n) })
	if err != nil {
		out.Close()
		return nil, storageError(t.dir, err)
	}
	for _, step := range []func() error{cw.Close, out.Close, f.Sync, f.Close} {
		if err := step(); err != nil {
			return nil, storageError(t.dir, err)
		}
	}
	r.SHA256, r.Size = hex.EncodeToString(out.h.Sum(nil)), out.Size()
	r.Blocks = blocksOf(cw, t.comp)
	return r, nil
}

// storageError says plainly when the storage directory is full or cannot be written.
func storageError(dir string, err error) error {
	if errors.Is(err, syscall.EROFS) {
		return fmt.Errorf("storage directory %s is read-only: %w", dir, err)
	}
	if errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("storage directory %s is not writable: %w", dir, err)
	}
	if errors.Is(err, syscall.ENOSPC) || strings.Contains(err.Error(), "no space left on device") {
		return fmt.Errorf("storage directory %s is full: %w", dir, err)
	}
	if errors.Is(err, syscall.EDQUOT) || strings.Contains(err.Error(), "disk quota exceeded") {
		return fmt.Errorf("storage directory %s is over its quota: %w", dir, err)
	}
	return err
}

// randRead fills b with random bytes (probe names and tokens).
func randRead(b []byte) {
	if _, err := io.ReadFull(rand.Reader, b); err != nil {
		panic(err)
	}
}
