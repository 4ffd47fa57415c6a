package backup

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// ChecksumError is an archive whose content is not what its manifest says.
type ChecksumError struct {
	Archive   string
	Got, Want string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("archive %s: sha256 is %s, its manifest says %s: the archive is damaged or was changed", e.Archive, e.Got, e.Want)
}

// Verify reads an archive whole: its checksum against its manifest, when it has one (Bee2's archives have
// none: only their structure can be checked), and every entry's structure, as a restore would. read, when not
// nil, is told how many bytes of the file were read so far.
func Verify(a Archive, read func(int64)) (Summary, error) {
	if a.ManifestErr != nil {
		return Summary{}, fmt.Errorf("archive %s: its manifest cannot be read: %w", a.Name, a.ManifestErr)
	}
	f, err := os.Open(a.Path)
	if err != nil {
		return Summary{}, err
	}
	defer f.Close()
	reader := func() io.Reader {
		if read != nil {
			return &countingReader{r: f, report: read}
		}
		return f
	}
	index := a.blockIndex()
	sum, err := scanIndexed(reader(), a.Name, a.Compression, index, nil)
	if err != nil && index != nil {
		// The index is only a help: whatever failed by it, the archive is read again as one stream, which
		// says what is wrong with it if anything is, and a restore's helper is not given the index.
		if _, serr := f.Seek(0, io.SeekStart); serr != nil {
			return Summary{}, serr
		}
		sum, err = scan(reader(), a.Name, a.Compression, nil)
	}
	if err != nil {
		// A damaged archive with a manifest is first of all a checksum mismatch: say so when the file
		// differs from what was written.
		if a.Manifest != nil {
			if got, herr := fileSHA256(a.Path); herr == nil && got != a.Manifest.SHA256 {
				return Summary{}, errors.Join(&ChecksumError{Archive: a.Name, Got: got, Want: a.Manifest.SHA256}, err)
			}
		}
		return Summary{}, err
	}
	if a.Manifest != nil && sum.SHA256 != a.Manifest.SHA256 {
		return sum, &ChecksumError{Archive: a.Name, Got: sum.SHA256, Want: a.Manifest.SHA256}
	}
	return sum, nil
}

type countingReader struct {
	r      io.Reader
	n      int64
	last   time.Time
	report func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if now := time.Now(); now.Sub(c.last) >= time.Second || err != nil {
		c.last = now
		c.report(c.n)
	}
	return n, err
}

// RestoreOptions say what to restore.
type RestoreOptions struct {
	Options
	// At is the archive's timestamp; 0 takes the newest.
	At int64
	// Volumes to restore; empty means every volume the archive holds.
	Volumes []string
}

// RestoreResult is what a restore did.
type RestoreResult struct {
	Server  string
	Archive Archive
	// Volumes restored, with what each now holds.
	Volumes []VolumeStats
	// Created names the volumes that did not exist and were created.
	Created []string
	// Stopped names the containers stopped for the restore (and started again).
	Stopped []string
	// Verified tells that the archive's checksum was checked against its manifest; Bee2's archives have none.
	Verified bool
	Method   Method
	Took     time.Duration
	// Transfer is the time the data took to move, without checking and preparing.
	Transfer time.Duration
}

// Restore replaces the contents of volumes with an archive's. The archive is checked whole first (checksum
// and every entry); nothing is changed when it fails. The running applications and jobs that mount the
// volumes are stopped, and started again whatever happens; a volume in use by a container bee2d does not
// manage is an error. Missing volumes are created. Each volume is replaced at once, by renames inside it: a
// restore that fails leaves it as it was.
func Restore(ctx context.Context, eng Engine, s *config.Settings, server string, ro RestoreOptions) (RestoreResult, error) {
	opts := &ro.Options
	start := opts.now()
	res := RestoreResult{Server: server}
	dir, err := Dir(s, server)
	if err != nil {
		return res, err
	}
	log := opts.log().With(zap.String("server", server))
	unlock, err := lockDir(dir)
	if err != nil {
		return res, err
	}
	defer unlock()
	a, err := Find(dir, ro.At)
	if err != nil {
		return res, err
	}
	res.Archive = a
	log.Info("checking the archive", zap.String("archive", a.Path))
	sum, err := Verify(a, nil)
	if err != nil {
		return res, err
	}
	res.Verified = a.Manifest != nil
	if !res.Verified {
		log.Warn("the archive has no manifest (Bee2's format): its checksum cannot be verified, only its structure", zap.String("archive", a.Name))
	}
	var vols []string
	for _, v := range sum.Volumes {
		vols = append(vols, v.Name)
	}
	if len(ro.Volumes) > 0 {
		var want []string
		for _, v := range ro.Volumes {
			if !slices.Contains(vols, v) {
				return res, fmt.Errorf("archive %s holds no volume %s (it holds %s)", a.Name, v, strings.Join(vols, ", "))
			}
			if !slices.Contains(want, v) {
				want = append(want, v)
			}
		}
		vols = want
	}
	if len(vols) == 0 {
		return res, fmt.Errorf("archive %s holds no volume", a.Name)
	}

	prefix := s.Prefix(server)
	name := HelperName(prefix, "restore", server)
	h, err := prepareHelper(ctx, eng, prefix, opts.Helper, opts.BuildOutput)
	if err != nil {
		return res, fmt.Errorf("helper image: %w", err)
	}
	if !h.Runnable {
		return res, fmt.Errorf("a restore needs bee2d's helper on the server, which cannot run there: %s; pass a static bee2d built for the server's platform with --helper", h.Why)
	}
	if removed, err := removeLeftoverHelper(ctx, eng, prefix, server, name); err != nil {
		return res, err
	} else if removed {
		log.Warn("removed what an interrupted restore left", zap.String("name", name))
	}
	list, err := eng.ListContainers(ctx)
	if err != nil {
		return res, err
	}
	own, foreign := runningUsers(list, prefix, server, vols)
	if len(foreign) > 0 {
		var names []string
		for _, c := range foreign {
			names = append(names, c.Name)
		}
		return res, fmt.Errorf("volumes in use by running containers that bee2d does not manage: %s; stop them first", strings.Join(names, ", "))
	}
	missing, err := missingVolumes(ctx, eng, vols)
	if err != nil {
		return res, err
	}
	for _, v := range missing {
		if err := eng.CreateVolume(ctx, v, labels.ForServer(prefix, server)); err != nil {
			return res, err
		}
		log.Info("created the missing volume", zap.String("volume", v))
		res.Created = append(res.Created, v)
	}
	var ownNames []string
	for _, c := range own {
		ownNames = append(ownNames, c.Name)
	}
	rh := &restoreHelper{
		eng: eng, dir: dir, archive: a,
		spec: dockerx.HelperSpec{
			Name:   name,
			Image:  h.Image,
			Mounts: volumeMounts(vols, false),
			Cmd: []string{"restore", "--compression", string(a.Compression), "--sha256", sum.SHA256,
				"--name", a.Name, "--stamp", strconv.FormatInt(opts.now().Unix(), 10)},
			// The helper exists, naming the containers it stops, before they stop: a reconcile pass that sees
			// them down also sees why.
			Labels: helperLabels(prefix, server, "restore", ownNames),
		},
		vols:    vols,
		indexed: sum.Indexed,
	}
	defer rh.cleanup(ctx)
	method := MethodStream
	if opts.Method != MethodStream && localEngine(eng.Host()) {
		method = MethodBind
	}
	if method, err = rh.create(ctx, method); err != nil {
		return res, err
	}
	st, err := stopAll(ctx, eng, own, opts.stopTimeout(), log.With(zap.String("for", "restore")))
	if err != nil {
		return res, fmt.Errorf("stop the containers using the volumes: %w", err)
	}
	res.Stopped = st.names()
	ev := &helperEvents{progress: func(b, n int64) {
		if opts.Progress != nil {
			opts.Progress(Progress{Server: server, Bytes: b, Files: n, Elapsed: opts.now().Sub(start)})
		}
	}}
	log.Info("restoring", zap.String("archive", a.Name), zap.Strings("volumes", vols), zap.String("method", string(method)))
	transfer := time.Now()
	code, err := rh.run(ctx, ev)
	if err == nil && code == exitNotShared && method == MethodBind {
		rh.cleanup(ctx)
		ev = &helperEvents{progress: ev.progress}
		if method, err = rh.create(ctx, MethodStream); err == nil {
			code, err = rh.run(ctx, ev)
		}
	}
	if err == nil && code != 0 {
		err = ev.failure("restore", code)
	}
	if err == nil && ev.result == nil {
		err = errors.New("restore helper gave no result")
	}
	res.Transfer = time.Since(transfer)
	if serr := st.start(ctx, eng, log); serr != nil {
		err = errors.Join(err, fmt.Errorf("start the containers stopped for the restore: %w", serr))
	}
	if err != nil {
		return res, err
	}
	res.Volumes = ev.result.Volumes
	res.Method = method
	res.Took = opts.now().Sub(start)
	log.Info("restore done", zap.String("archive", a.Name), zap.Strings("volumes", vols), zap.Duration("took", res.Took))
	return res, nil
}

// restoreHelper is the one helper container of a restore.
type restoreHelper struct {
	eng     Engine
	dir     string
	archive Archive
	spec    dockerx.HelperSpec
	vols    []string
	// indexed: the check read the archive by its manifest's block index, which the helper may use too.
	indexed bool

	id    string
	probe string
	in    *os.File // the archive, sent through stdin
}

// wired tells whether the archive goes through stdin compressed for the way (the helper's --wire): an
// uncompressed one does, as a backup's comes back, since the attach stream, not the CPU, is what bounds a
// restore to another engine.
func (r *restoreHelper) wired() bool {
	return r.in != nil && (r.archive.Compression == config.CompressionNone || r.archive.Compression == "")
}

// create makes the helper: with the storage directory mounted read-only (bind), or reading the archive
// from its stdin (stream).
func (r *restoreHelper) create(ctx context.Context, method Method) (Method, error) {
	spec := r.spec
	spec.Cmd = slices.Clone(spec.Cmd)
	if method == MethodBind {
		token := make([]byte, 16)
		suffix := make([]byte, 8)
		randRead(token)
		randRead(suffix)
		r.probe = ".bee2d-probe-" + hex.EncodeToString(suffix)
		if err := os.WriteFile(filepath.Join(r.dir, r.probe), []byte(hex.EncodeToString(token)), 0o600); err != nil {
			return "", err
		}
		spec.Cmd = append(spec.Cmd, "--in", "/in/"+r.archive.Name, "--probe", r.probe+":"+hex.EncodeToString(token))
		if r.indexed {
			spec.Cmd = append(spec.Cmd, "--index", "/in/"+r.archive.Name+manifestSuffix)
		}
		spec.Mounts = append(slices.Clone(spec.Mounts), dockerx.HelperMount{Source: r.dir, Target: "/in", ReadOnly: true})
	} else {
		f, err := os.Open(r.archive.Path)
		if err != nil {
			return "", err
		}
		r.in = f
		spec.Stdin = true
		if r.wired() {
			spec.Cmd = append(spec.Cmd, "--wire", "zstd")
		}
	}
	spec.Cmd = append(spec.Cmd, r.vols...)
	id, err := r.eng.CreateHelper(ctx, spec)
	if err != nil && method == MethodBind && strings.Contains(err.Error(), "bind source path does not exist") {
		r.cleanup(ctx)
		return r.create(ctx, MethodStream)
	}
	if err != nil {
		return "", err
	}
	r.id = id
	return method, nil
}

func (r *restoreHelper) run(ctx context.Context, ev *helperEvents) (int, error) {
	if r.in == nil {
		return r.eng.RunHelper(ctx, r.id, nil, io.Discard, ev)
	}
	if !r.wired() {
		return r.eng.RunHelper(ctx, r.id, r.in, io.Discard, ev)
	}
	// Compressed on a goroutine of its own, so that reading, compressing and sending overlap.
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		zw, err := zstdBlocksLevel(pw, zstd.SpeedFastest)
		if err == nil {
			_, err = io.Copy(zw, r.in)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err)
	}()
	code, err := r.eng.RunHelper(ctx, r.id, pr, io.Discard, ev)
	// A helper that gave up early stops reading: the compression must not wait for it.
	pr.CloseWithError(errHelperDone)
	<-done
	return code, err
}

// errHelperDone ends the compression of a restore's stdin once the helper has exited.
var errHelperDone = errors.New("the restore helper has exited")

// cleanup removes the helper and the probe file, also after ctx ended.
func (r *restoreHelper) cleanup(ctx context.Context) {
	if r.probe != "" {
		os.Remove(filepath.Join(r.dir, r.probe))
		r.probe = ""
	}
	if r.in != nil {
		r.in.Close()
		r.in = nil
	}
	if r.id != "" {
		cctx, cancel := cleanupContext(ctx)
		defer cancel()
		r.eng.RemoveContainer(cctx, r.id)
		r.id = ""
	}
}

// fileSHA256 hashes a whole file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := newHash()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}
