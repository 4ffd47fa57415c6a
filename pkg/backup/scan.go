package backup

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/bee2d/bee2d/pkg/config"
)

// Summary is what reading a whole archive found.
type Summary struct {
	// SHA256 and Size are those of the archive file (compressed, as stored).
	SHA256  string
	Size    int64
	Volumes []VolumeStats
	Files   int64
	Bytes   int64
	// Indexed tells that the blocks were decompressed by the manifest's index, which therefore fits.
	Indexed bool
}

// TruncatedError is an archive that ends before its end.
type TruncatedError struct {
	Archive string
	After   string // the last entry read whole, "" for none
	Err     error
}

func (e *TruncatedError) Error() string {
	if e.After == "" {
		return fmt.Sprintf("archive %s is truncated or damaged before its first entry: %v", e.Archive, e.Err)
	}
	return fmt.Sprintf("archive %s is truncated or damaged after entry %q: %v", e.Archive, e.After, e.Err)
}

func (e *TruncatedError) Unwrap() error { return e.Err }

// scan reads a whole archive from r (as stored: compressed with comp), checks every entry and calls visit,
// when not nil, with each accepted entry and its content. The file's hash covers every byte of r, also past
// the tar's end.
func scan(r io.Reader, name string, comp config.Compression, visit func(entry, io.Reader) error) (Summary, error) {
	return scanIndexed(r, name, comp, nil, visit)
}

// scanIndexed is scan of a compressed archive whose blocks' compressed sizes are known (the manifest's
// blocks), decompressed on every core; with no blocks, or uncompressed, it is scan. An index that does not
// fit the archive fails, with an *IndexError where that is plain.
func scanIndexed(r io.Reader, name string, comp config.Compression, blocks []int64, visit func(entry, io.Reader) error) (Summary, error) {
	raw := newHashingReader(r)
	defer raw.stop()
	// Large reads below the tar reader's 512-byte ones, so that the hashing goroutine gets large pieces.
	var dec io.ReadCloser
	var err error
	if indexable(comp) && len(blocks) > 0 {
		if dec, err = newBlockReader(bufio.NewReaderSize(raw, 1<<20), comp, blocks); err != nil {
			return Summary{}, &TruncatedError{Archive: name, Err: err}
		}
	} else if dec, err = decompressor(bufio.NewReaderSize(raw, 1<<20), comp); err != nil {
		return Summary{}, &TruncatedError{Archive: name, Err: err}
	}
	defer dec.Close()
	var content io.Reader = dec
	if _, indexed := dec.(*blockReader); !indexed && comp != config.CompressionNone && comp != "" {
		ahead := newAheadReader(dec)
		defer ahead.stop() // before dec.Close
		content = ahead
	}
	tail := &zeroTail{r: content}
	tr := tar.NewReader(tail)
	c := newChecker(name)
	last := ""
	// Content nobody visits is skipped in large reads (io.Discard alone would read it 8 KiB at a time).
	skip := getMiB()
	defer putMiB(skip)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return Summary{}, &TruncatedError{Archive: name, After: last, Err: err}
		}
		e, ok, err := c.check(h)
		if err != nil {
			return Summary{}, err
		}
		if ok && visit != nil {
			if err := visit(e, tr); err != nil {
				return Summary{}, err
			}
		}
		if _, err := io.CopyBuffer(onlyWriter{io.Discard}, tr, skip); err != nil {
			return Summary{}, &TruncatedError{Archive: name, After: last, Err: err}
		}
		last = h.Name
	}
	tail.ended = true
	// The tar's end is two zero blocks; a stream that just stops at an entry boundary is cut, not complete.
	if tail.zeros < 512 {
		return Summary{}, &TruncatedError{Archive: name, After: last, Err: errors.New("no end-of-archive marker")}
	}
	// What follows the end marker must be padding, and a compressed stream must end properly.
	if _, err := io.Copy(io.Discard, tail); err != nil {
		return Summary{}, &TruncatedError{Archive: name, After: last, Err: err}
	}
	if tail.nonZeroAfter {
		return Summary{}, &EntryError{Archive: name, Entry: last, Reason: "data follows the end of the archive"}
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return Summary{}, fmt.Errorf("read archive %s: %w", name, err)
	}
	_, indexed := dec.(*blockReader)
	s := Summary{SHA256: raw.sum(), Size: raw.n, Indexed: indexed}
	for _, v := range c.volumes {
		s.Volumes = append(s.Volumes, *v)
		s.Files += v.Files
		s.Bytes += v.Bytes
	}
	return s, nil
}

// hashingReader hashes what is read through it on a goroutine of its own, so that checking an archive's
// checksum runs beside decompressing and extracting it rather than after each read.
type hashingReader struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	ch   chan []byte
	free chan []byte
	done chan struct{}
}

// mibBufs are the 1 MiB buffers of scan and its readers, kept between archives: a verify of every archive
// of a server, or a fuzzer, would otherwise allocate a dozen of them for each.
var mibBufs = sync.Pool{New: func() any { return make([]byte, 1<<20) }}

func getMiB() []byte { return mibBufs.Get().([]byte) }

func putMiB(b []byte) {
	//lint:ignore SA6002 the slice header Put allocates is 24 bytes against a 1 MiB buffer; a *[]byte carried through the readers would cost more code than it saves
	mibBufs.Put(b[:cap(b)])
}

func newHashingReader(r io.Reader) *hashingReader {
	h := &hashingReader{r: r, h: sha256.New(), ch: make(chan []byte, 4), free: make(chan []byte, 5), done: make(chan struct{})}
	for range 5 {
		// As large as the reads above it (scan's 1 MiB): a larger read would allocate a new buffer.
		h.free <- getMiB()[:0]
	}
	go func() {
		defer close(h.done)
		for b := range h.ch {
			h.h.Write(b)
			h.free <- b[:0]
		}
	}()
	return h
}

func (h *hashingReader) Read(p []byte) (int, error) {
	n, err := h.r.Read(p)
	if n > 0 {
		b := <-h.free
		h.ch <- append(b, p[:n]...)
		h.n += int64(n)
	}
	return n, err
}

// sum waits for the hash of everything read; the reader must not be read after.
func (h *hashingReader) sum() string {
	h.stop()
	return hex.EncodeToString(h.h.Sum(nil))
}

// stop ends the hashing goroutine and gives its buffers back; safe to call more than once.
func (h *hashingReader) stop() {
	select {
	case <-h.done:
	default:
		close(h.ch)
		<-h.done
		// Every buffer is back in free: the goroutine returned each one it took.
		for range cap(h.free) {
			putMiB(<-h.free)
		}
	}
}

// zeroTail counts the zero bytes that end what was read so far, and notes non-zero data read once the tar
// reader has finished (marked by ended).
type zeroTail struct {
	r            io.Reader
	zeros        int64
	ended        bool
	nonZeroAfter bool
}

func (z *zeroTail) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	i := n - 1
	for i >= 0 && p[i] == 0 {
		i--
	}
	if i >= 0 {
		z.zeros = int64(n - 1 - i)
		if z.ended {
			z.nonZeroAfter = true
		}
	} else {
		z.zeros += int64(n)
	}
	return n, err
}

func newHash() hash.Hash { return sha256.New() }

// aheadReader reads r on a goroutine of its own, a few large buffers ahead of its caller: decompressing an
// archive (one core for gzip) then runs beside what is done with its content (hashing and writing files),
// rather than in turn with it. The errors of r come through unchanged, after the bytes read before them.
type aheadReader struct {
	full chan aheadBuf
	free chan []byte
	cur  aheadBuf
	quit chan struct{}
	done chan struct{}
}

type aheadBuf struct {
	b   []byte
	off int
	err error
}

const aheadDepth = 4

// aheadSize is the size of the buffers aheadReader reads into, mibBufs'.
const aheadSize = 1 << 20

func newAheadReader(r io.Reader) *aheadReader {
	a := &aheadReader{full: make(chan aheadBuf, aheadDepth), free: make(chan []byte, aheadDepth+1),
		quit: make(chan struct{}), done: make(chan struct{})}
	for range aheadDepth + 1 {
		a.free <- getMiB()
	}
	go func() {
		defer close(a.done)
		for {
			var b []byte
			select {
			case b = <-a.free:
			case <-a.quit:
				return
			}
			// Fill the buffer, short only at an error (io.EOF included): r's own error, never one made up
			// here, so that a truncated stream still says so.
			n := 0
			var err error
			for n < len(b) && err == nil {
				var m int
				m, err = r.Read(b[n:])
				n += m
			}
			select {
			case a.full <- aheadBuf{b: b[:n], err: err}:
			case <-a.quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return a
}

func (a *aheadReader) Read(p []byte) (int, error) {
	for a.cur.off == len(a.cur.b) {
		if a.cur.err != nil {
			return 0, a.cur.err
		}
		if a.cur.b != nil {
			a.free <- a.cur.b[:cap(a.cur.b)]
		}
		a.cur = <-a.full
	}
	n := copy(p, a.cur.b[a.cur.off:])
	a.cur.off += n
	return n, nil
}

// stop ends the reading goroutine and waits for it, so that r may be closed, and gives the buffers back;
// safe to call more than once.
func (a *aheadReader) stop() {
	select {
	case <-a.quit:
		return
	default:
		close(a.quit)
	}
	<-a.done
	// The goroutine has exited: every buffer is in free, in full or the caller's current one.
	for {
		select {
		case b := <-a.free:
			putMiB(b)
		case f := <-a.full:
			putMiB(f.b)
		default:
			if a.cur.b != nil {
				putMiB(a.cur.b)
				a.cur = aheadBuf{err: errAheadStopped}
			}
			return
		}
	}
}

// errAheadStopped is what an aheadReader read after stop says.
var errAheadStopped = errors.New("read after the archive's reader stopped")
