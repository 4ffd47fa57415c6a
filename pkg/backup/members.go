package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
)

// A gzip stream is decompressed on one core: where one member ends is known only once it is decompressed.
// bee2d writes its gzip archives as independent members of 4 MiB of tar each (parallelWriter) and keeps the
// members' compressed sizes in the manifest (gzip_members); with them, a restore and a verify decompress
// several members at once, as the backup compressed them. The index only says where to cut: every member
// must be one whole gzip member that ends exactly where the next begins, the last one where the file ends,
// and the archive's sha256 is checked as always. An index that does not fit the archive is an IndexError,
// after which the caller reads the archive as any gzip stream.

// maxMemberContent bounds what one indexed member may decompress to (bee2d writes 4 MiB), and with it the
// memory of a reader: a hostile index or member cannot make it hold more.
const maxMemberContent = 16 << 20

// maxMemberSize bounds a member's compressed size in an index: what maxMemberContent takes when deflate
// stores it (5 bytes every 64 KiB), with the header and the trailer.
const maxMemberSize = maxMemberContent + maxMemberContent/(64<<10)*5 + 1024

// IndexError is a manifest's gzip member index that does not fit its archive.
type IndexError struct {
	Member int
	Reason string
}

func (e *IndexError) Error() string {
	return fmt.Sprintf("the manifest's gzip member index does not fit the archive at member %d: %s", e.Member, e.Reason)
}

// validMembers tells whether sizes can index a file of size bytes: all positive, adding up to size.
func validMembers(sizes []int64, size int64) bool {
	if len(sizes) == 0 {
		return false
	}
	var sum int64
	for _, s := range sizes {
		if s <= 0 || s > maxMemberSize {
			return false
		}
		sum += s
		if sum > size {
			return false
		}
	}
	return sum == size
}

// memberReader decompresses the gzip members that sizes index in r on every core and returns their content
// in order.
type memberReader struct {
	order chan *member
	cur   *member
	off   int
	err   error
	quit  chan struct{}
	wg    sync.WaitGroup
}

type member struct {
	i     int
	in    []byte
	out   []byte
	err   error
	ready chan struct{}
}

func newMemberReader(r io.Reader, sizes []int64) *memberReader {
	workers := runtime.GOMAXPROCS(0)
	m := &memberReader{order: make(chan *member, 2*workers), quit: make(chan struct{})}
	work := make(chan *member, workers)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(work)
		defer close(m.order)
		send := func(mb *member) bool {
			select {
			case m.order <- mb:
				return true
			case <-m.quit:
				return false
			}
		}
		for i, size := range sizes {
			mb := &member{i: i, in: make([]byte, size), ready: make(chan struct{})}
			if n, err := io.ReadFull(r, mb.in); err != nil {
				// The archive itself ends early: its own error, as a stream reader would give it.
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				mb.in, mb.err = nil, fmt.Errorf("gzip member %d: %d of its %d bytes: %w", i, n, size, err)
				close(mb.ready)
				send(mb)
				return
			}
			if !send(mb) {
				return
			}
			select {
			case work <- mb:
			case <-m.quit:
				return
			}
		}
		// Nothing may follow the last member.
		var one [1]byte
		n, err := io.ReadFull(r, one[:])
		end := &member{i: len(sizes), ready: make(chan struct{})}
		switch {
		case n > 0:
			end.err = &IndexError{Member: len(sizes), Reason: "data follows the last member"}
		case !errors.Is(err, io.EOF):
			end.err = err
		}
		close(end.ready)
		send(end)
	}()
	for range workers {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			for mb := range work {
				mb.out, mb.err = inflateMember(mb.i, mb.in)
				mb.in = nil
				close(mb.ready)
			}
		}()
	}
	return m
}

// memberBufs hold a member's content: bee2d's members hold compressBlock bytes each.
var memberBufs = sync.Pool{New: func() any { return make([]byte, 0, compressBlock) }}

// inflateMember decompresses one member, which must fill in exactly, into a buffer of memberBufs.
func inflateMember(i int, in []byte) ([]byte, error) {
	br := bytes.NewReader(in)
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, &IndexError{Member: i, Reason: "no gzip member starts there: " + err.Error()}
	}
	zr.Multistream(false)
	out := memberBufs.Get().([]byte)[:0]
	for {
		if len(out) == cap(out) {
			if len(out) > maxMemberContent {
				memberBufs.Put(out[:0])
				return nil, &IndexError{Member: i, Reason: fmt.Sprintf("it holds more than %d bytes", maxMemberContent)}
			}
			out = append(out, 0)[:len(out)]
		}
		n, err := zr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			memberBufs.Put(out[:0])
			return nil, fmt.Errorf("gzip member %d: %w", i, err)
		}
	}
	if len(out) > maxMemberContent {
		memberBufs.Put(out[:0])
		return nil, &IndexError{Member: i, Reason: fmt.Sprintf("it holds more than %d bytes", maxMemberContent)}
	}
	if br.Len() != 0 {
		memberBufs.Put(out[:0])
		return nil, &IndexError{Member: i, Reason: fmt.Sprintf("it ends %d bytes before the next", br.Len())}
	}
	return out, nil
}

func (m *memberReader) Read(p []byte) (int, error) {
	for m.cur == nil || m.off == len(m.cur.out) {
		if m.err != nil {
			return 0, m.err
		}
		mb, ok := <-m.order
		if !ok {
			m.err = io.EOF
			return 0, io.EOF
		}
		<-mb.ready
		if m.cur != nil && m.cur.out != nil {
			memberBufs.Put(m.cur.out[:0])
		}
		if mb.err != nil {
			m.cur, m.err = nil, mb.err
			return 0, mb.err
		}
		m.cur, m.off = mb, 0
	}
	n := copy(p, m.cur.out[m.off:])
	m.off += n
	return n, nil
}

// Close stops the goroutines and waits for them, so that r may be read by someone else; safe to call twice.
func (m *memberReader) Close() error {
	select {
	case <-m.quit:
	default:
		close(m.quit)
	}
	m.wg.Wait()
	return nil
}
