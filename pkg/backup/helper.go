package backup

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/bee2d/bee2d/pkg/config"
)

// The helper is bee2d's own static binary run in a container on the server as `bee2d helper backup|restore`,
// with the volumes mounted under /volumes. It reads, compresses and extracts next to the data, and tells bee2d
// what happens as JSON lines on stderr (events); stdout carries the archive when it is not written to a bind
// mount.

// HelperCommand is the first argument that makes bee2d run as the helper.
const HelperCommand = "helper"

// containerVolumes is where a helper container mounts the volumes, one directory each.
const containerVolumes = "/volumes"

// volumesDir is where the helper program looks for them: containerVolumes, except in tests that run the
// helper in place.
var volumesDir = containerVolumes

// Helper exit codes besides 0 and 1.
const (
	// exitNotShared: the storage directory mounted into the helper is not the one bee2d sees (the engine runs
	// on another machine), so the archive must travel through the attach stream.
	exitNotShared = 3
)

// event is one line the helper writes to stderr.
type event struct {
	Event  string        `json:"event"` // progress, result, error
	Bytes  int64         `json:"bytes,omitempty"`
	Files  int64         `json:"files,omitempty"`
	Result *helperResult `json:"result,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// helperResult is what a helper run did.
type helperResult struct {
	// SHA256 and Size of the archive written (backup to a file) or read (restore).
	SHA256        string        `json:"sha256,omitempty"`
	Size          int64         `json:"size,omitempty"`
	Volumes       []VolumeStats `json:"volumes"`
	Problems      []Problem     `json:"problems,omitempty"`
	ProblemsTotal int           `json:"problems_total,omitempty"`
	// Blocks are a compressed archive's block sizes, for the manifest's index.
	Blocks []int64 `json:"blocks,omitempty"`
}

// events writes events as JSON lines; safe for the progress ticker and the main flow at once.
type events struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (e *events) send(ev event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.enc.Encode(ev)
}

// HelperMain runs the helper with its arguments (after "helper") and returns the exit code.
func HelperMain(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ev := &events{enc: json.NewEncoder(stderr)}
	if len(args) == 0 {
		ev.send(event{Event: "error", Error: "helper: want backup or restore"})
		return 1
	}
	var err error
	switch args[0] {
	case "backup":
		err = helperBackup(args[1:], stdout, ev)
	case "restore":
		err = helperRestore(args[1:], stdin, ev)
	default:
		err = fmt.Errorf("helper: unknown command %q", args[0])
	}
	var ns notShared
	switch {
	case errors.As(err, &ns):
		ev.send(event{Event: "error", Error: err.Error()})
		return exitNotShared
	case err != nil:
		ev.send(event{Event: "error", Error: err.Error()})
		return 1
	}
	return 0
}

type notShared struct{ dir string }

func (n notShared) Error() string {
	return n.dir + " is not the storage directory bee2d sees"
}

// checkProbe makes sure dir is the directory bee2d put the probe file name, holding token, into.
func checkProbe(dir, probe string) error {
	name, token, ok := strings.Cut(probe, ":")
	if !ok || !probeName.MatchString(name) {
		return fmt.Errorf("bad probe %q", probe)
	}
	got, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil || string(got) != token {
		return notShared{dir}
	}
	return nil
}

// progress sends the archiver's counters every second until stop is closed.
func progress(ev *events, a *archiver, stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			ev.send(event{Event: "progress", Bytes: a.bytes.Load(), Files: a.files.Load()})
		}
	}
}

func helperBackup(args []string, stdout io.Writer, ev *events) error {
	fs := flag.NewFlagSet("helper backup", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	comp := fs.String("compression", "none", "none, gzip or zstd")
	out_ := fs.String("out", "", "write the archive to this new file instead of stdout")
	probe := fs.String("probe", "", "NAME:TOKEN of the probe file beside -out")
	owner := fs.String("chown", "", "UID:GID to give the archive file")
	at := fs.Int64("time", time.Now().Unix(), "time of the archive's volumes/ entry")
	wire := fs.String("wire", "none", "zstd: compress an uncompressed archive on its way through stdout (bee2d stores it uncompressed)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	vols := fs.Args()
	if len(vols) == 0 {
		return errors.New("helper backup: no volumes")
	}
	if *wire != "none" && *wire != "zstd" {
		return fmt.Errorf("helper backup: unknown wire compression %q", *wire)
	}
	var f *os.File
	var out *chunkWriter
	if *out_ != "" {
		dir := filepath.Dir(*out_)
		if err := checkProbe(dir, *probe); err != nil {
			return err
		}
		var err error
		if f, err = os.OpenFile(*out_, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600); err != nil {
			return err
		}
		defer f.Close()
		if *owner != "" {
			uid, gid, err := parseOwner(*owner)
			if err != nil {
				return err
			}
			if err := f.Chown(uid, gid); err != nil {
				return err
			}
		}
		out = newChunkWriter(f, sha256.New())
	} else {
		// bee2d hashes what it receives.
		out = newChunkWriter(stdout, nil)
	}
	var w io.Writer = out
	var cw io.WriteCloser
	var err error
	if f == nil && *wire == "zstd" && config.Compression(*comp) == config.CompressionNone {
		// The attach stream carries a few hundred MB/s at best, less through TLS and a loaded engine:
		// fewer bytes through it are worth a fast compression here and a decompression in bee2d.
		cw, err = zstdBlocksLevel(out, zstd.SpeedFastest)
		if err == nil {
			w = cw
		}
	} else if cw, err = compressor(out, config.Compression(*comp)); err == nil && config.Compression(*comp) != config.CompressionNone {
		w = cw
	}
	if err != nil {
		out.Close()
		return err
	}
	a := newArchiver(w)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		progress(ev, a, stop)
	}()
	err = writeVolumes(a, vols, time.Unix(*at, 0))
	close(stop)
	<-done
	if err == nil {
		err = cw.Close()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && f != nil {
		err = f.Sync()
	}
	if err != nil {
		if f != nil {
			os.Remove(*out_)
		}
		return err
	}
	res := &helperResult{Volumes: a.volumeStats(), Problems: a.problems, ProblemsTotal: a.total,
		Blocks: blocksOf(cw, config.Compression(*comp))}
	if f != nil {
		res.SHA256, res.Size = hex.EncodeToString(out.h.Sum(nil)), out.Size()
	}
	ev.send(event{Event: "result", Result: res})
	return nil
}

func writeVolumes(a *archiver, vols []string, at time.Time) error {
	if err := a.start(at); err != nil {
		return err
	}
	for _, v := range vols {
		if !config.ValidName(v) {
			return fmt.Errorf("invalid volume name %q", v)
		}
		if err := a.volume(v, filepath.Join(volumesDir, v)); err != nil {
			return err
		}
	}
	return a.finish()
}

func parseOwner(s string) (int, int, error) {
	u, g, ok := strings.Cut(s, ":")
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bad owner %q, want UID:GID", s)
	}
	return uid, gid, nil
}

func helperRestore(args []string, stdin io.Reader, ev *events) error {
	fs := flag.NewFlagSet("helper restore", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	comp := fs.String("compression", "none", "none, gzip or zstd")
	in := fs.String("in", "", "read the archive from this file instead of stdin")
	probe := fs.String("probe", "", "NAME:TOKEN of the probe file beside -in")
	want := fs.String("sha256", "", "the archive's checksum; nothing is replaced when it differs")
	name := fs.String("name", "archive", "the archive's name, for messages")
	stamp := fs.Int64("stamp", time.Now().Unix(), "names the restore's working directories")
	wire := fs.String("wire", "none", "zstd: stdin carries the archive compressed for the way (bee2d stores it uncompressed)")
	index := fs.String("index", "", "the archive's manifest beside -in, whose block index lets the blocks be decompressed at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	vols := fs.Args()
	if len(vols) == 0 {
		return errors.New("helper restore: no volumes")
	}
	if *index != "" && *in == "" {
		return errors.New("helper restore: --index applies to --in")
	}
	if *wire != "none" && *wire != "zstd" {
		return fmt.Errorf("helper restore: unknown wire compression %q", *wire)
	}
	if *wire != "none" && *in != "" {
		return errors.New("helper restore: --wire applies to stdin, not to --in")
	}
	r := stdin
	if *wire == "zstd" {
		// The checksum and the structure are those of the archive itself, after the wire's decompression.
		dr, err := decompressor(stdin, config.CompressionZstd)
		if err != nil {
			return err
		}
		defer dr.Close()
		r = dr
	}
	var blocks []int64
	if *in != "" {
		if err := checkProbe(filepath.Dir(*in), *probe); err != nil {
			return err
		}
		f, err := os.Open(*in)
		if err != nil {
			return err
		}
		defer f.Close()
		r = f
		if *index != "" {
			// bee2d read the archive by this index a moment ago; should the manifest have changed since,
			// the archive is read as one stream (its sha256 is checked either way).
			if m, err := ReadManifest(*index); err == nil && indexable(config.Compression(*comp)) {
				if fi, err := f.Stat(); err == nil && validBlocks(m.Blocks, fi.Size()) {
					blocks = m.Blocks
				}
			}
		}
	}
	byName := map[string]*volumeRestore{}
	var order []*volumeRestore
	for _, v := range vols {
		if !config.ValidName(v) {
			return fmt.Errorf("invalid volume name %q", v)
		}
		vr := &volumeRestore{Name: v, Dir: filepath.Join(volumesDir, v), ts: *stamp}
		byName[v] = vr
		order = append(order, vr)
	}
	abort := func() {
		for _, vr := range order {
			vr.abort()
		}
	}
	for _, vr := range order {
		if err := vr.begin(); err != nil {
			abort()
			return err
		}
	}
	buf := make([]byte, 1<<20)
	var bytes, files int64
	last := time.Now()
	sum, err := scanIndexed(bufio.NewReaderSize(r, 1<<20), *name, config.Compression(*comp), blocks, func(e entry, content io.Reader) error {
		vr := byName[e.Volume]
		if vr == nil {
			return nil
		}
		if err := vr.extract(e, content, buf); err != nil {
			return fmt.Errorf("restore %s:/%s: %w", e.Volume, e.Rel, err)
		}
		bytes += e.Hdr.Size
		files++
		if time.Since(last) >= time.Second {
			last = time.Now()
			ev.send(event{Event: "progress", Bytes: bytes, Files: files})
		}
		return nil
	})
	if err == nil && *want != "" && sum.SHA256 != *want {
		err = fmt.Errorf("archive %s changed since it was checked: sha256 %s, expected %s", *name, sum.SHA256, *want)
	}
	for _, vr := range order {
		if err == nil && !vr.seen {
			err = fmt.Errorf("archive %s holds no volume %s", *name, vr.Name)
		}
		if err == nil {
			err = vr.finishDirs()
		}
		if err == nil {
			err = syncFS(vr.Dir)
		}
	}
	if err != nil {
		abort()
		return err
	}
	// Every volume is staged and on disk: only renames are left.
	var done []string
	for i, vr := range order {
		committed, err := vr.swap()
		if err == nil {
			done = append(done, vr.Name)
			continue
		}
		for _, rest := range order[i+1:] {
			rest.abort()
		}
		if committed {
			err = fmt.Errorf("volume %s: %w; the volume holds the restored data, and the next restore of it finishes the cleanup", vr.Name, err)
		} else {
			vr.abort()
			err = fmt.Errorf("volume %s: %w; the volume is unchanged", vr.Name, err)
		}
		if len(done) > 0 {
			err = fmt.Errorf("%w (restored already: %s)", err, strings.Join(done, ", "))
		}
		return err
	}
	res := &helperResult{SHA256: sum.SHA256, Size: sum.Size}
	for _, v := range sum.Volumes {
		if byName[v.Name] != nil {
			res.Volumes = append(res.Volumes, v)
		}
	}
	ev.send(event{Event: "result", Result: res})
	return nil
}
