package backup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/bee2d/bee2d/pkg/config"
)

// A compressed stream is decompressed on one core, or nearly: where a gzip member ends is known only once
// it is decompressed, and a zstd decoder works through one frame's blocks in turn. bee2d compresses its
// archives in independent blocks of 4 MiB of tar each (parallelWriter: a gzip member or a zstd frame each)
// and keeps the blocks' compressed sizes in the manifest ("blocks"); with them, a verify and a restore
// decompress several blocks at once, as the backup compressed them. The index only says where to cut:
// each piece must decompress whole on its own, a gzip piece as exactly one member, and the archive's
// sha256 is checked as always. Verify reads the archive again as one stream when anything fails by the
// index, and gives a restore's helper the index only when it fitted.

// maxBlockContent bounds what one indexed block may decompress to (bee2d writes 4 MiB), and with it the
// memory of a reader: a hostile index or block cannot make it hold more.
const maxBlockContent = 16 << 20

// maxBlockSize bounds a block's compressed size in an index: what maxBlockContent takes when stored
// (deflate: 5 bytes every 64 KiB; zstd: 3 bytes every 128 KiB), with headers and trailers.
const maxBlockSize = maxBlockContent + maxBlockContent/(64<<10)*5 + 1024

// indexable tells the compressions whose archives bee2d indexes.
func indexable(c config.Compression) bool {
	return c == config.CompressionGzip || c == config.CompressionZstd
}

// IndexError is a manifest's block index that does not fit its archive.
type IndexError struct {
	Block  int
	Reason string
}

func (e *IndexError) Error() string {
	return fmt.Sprintf("the manifest's block index does not fit the archive at block %d: %s", e.Block, e.Reason)
}

// validBlocks tells whether sizes can index a file of size bytes: all positive and at most maxBlockSize,
// adding up to size.
func validBlocks(sizes []int64, size int64) bool {
	if len(sizes) == 0 {
		return false
	}
	var sum int64
	for _, s := range sizes {
		if s <= 0 || s > maxBlockSize {
			return false
		}
		sum += s
		if sum > size {
			return false
		}
	}
	return sum == size
}

// blockReader decompresses the blocks that sizes index in r on every core and returns their content in
// order.
type blockReader struct {
	order chan *indexedBlock
	cur   *indexedBlock
	off   int
	err   error
	quit  chan struct{}
	wg    sync.WaitGroup
}

// indexedBlock is one block of an indexed archive: src as stored, out decompressed.
type indexedBlock struct {
	i        int
	src, out []byte
	err      error
	ready    chan struct{}
}

// blockBufs hold a block's content: bee2d's blocks hold compressBlock bytes each.
var blockBufs = sync.Pool{New: func() any { return make([]byte, 0, compressBlock) }}

func newBlockReader(r io.Reader, comp config.Compression, sizes []int64) (*blockReader, error) {
	workers := runtime.GOMAXPROCS(0)
	// One zstd decoder a worker, each decoding one block at a time, bounded as the stream decoder is.
	zds := make([]*zstd.Decoder, workers)
	if comp == config.CompressionZstd {
		for i := range zds {
			zd, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(maxZstdWindow),
				zstd.WithDecoderMaxMemory(maxBlockContent))
			if err != nil {
				for _, made := range zds[:i] {
					made.Close()
				}
				return nil, err
			}
			zds[i] = zd
		}
	}
	br := &blockReader{order: make(chan *indexedBlock, 2*workers), quit: make(chan struct{})}
	work := make(chan *indexedBlock, workers)
	br.wg.Add(1)
	go func() {
		defer br.wg.Done()
		defer close(work)
		defer close(br.order)
		send := func(b *indexedBlock) bool {
			select {
			case br.order <- b:
				return true
			case <-br.quit:
				return false
			}
		}
		for i, size := range sizes {
			b := &indexedBlock{i: i, src: make([]byte, size), ready: make(chan struct{})}
			if n, err := io.ReadFull(r, b.src); err != nil {
				// The archive itself ends early: its own error, as a stream reader would give it.
				if errors.Is(err, io.EOF) {
					err = io.ErrUnexpectedEOF
				}
				b.src, b.err = nil, fmt.Errorf("%d of its %d bytes: %w", n, size, err)
				close(b.ready)
				send(b)
				return
			}
			if !send(b) {
				return
			}
			b.out = blockBufs.Get().([]byte)[:0]
			select {
			case work <- b:
			case <-br.quit:
				return
			}
		}
		// Nothing may follow the last block.
		var one [1]byte
		n, err := io.ReadFull(r, one[:])
		end := &indexedBlock{i: len(sizes), ready: make(chan struct{})}
		switch {
		case n > 0:
			end.err = &IndexError{Reason: "data follows the last block"}
		case !errors.Is(err, io.EOF):
			end.err = err
		}
		close(end.ready)
		send(end)
	}()
	for _, zd := range zds {
		br.wg.Add(1)
		go func() {
			defer br.wg.Done()
			if zd != nil {
				defer zd.Close()
			}
			for b := range work {
				if zd != nil {
					b.out, b.err = decodeZstdBlock(zd, b.src, b.out)
				} else {
					b.out, b.err = decodeGzipBlock(b.src, b.out)
				}
				b.src = nil
				close(b.ready)
			}
		}()
	}
	return br, nil
}

// decodeGzipBlock decompresses one gzip member, which must fill src exactly, into out.
func decodeGzipBlock(src, out []byte) ([]byte, error) {
	in := bytes.NewReader(src)
	zr, err := gzip.NewReader(in)
	if err != nil {
		return out, &IndexError{Reason: "no gzip member starts there: " + err.Error()}
	}
	zr.Multistream(false)
	for {
		if len(out) == cap(out) {
			if len(out) > maxBlockContent {
				return out, &IndexError{Reason: fmt.Sprintf("it holds more than %d bytes", maxBlockContent)}
			}
			out = append(out, 0)[:len(out)]
		}
		n, err := zr.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err
		}
	}
	if len(out) > maxBlockContent {
		return out, &IndexError{Reason: fmt.Sprintf("it holds more than %d bytes", maxBlockContent)}
	}
	if in.Len() != 0 {
		return out, &IndexError{Reason: fmt.Sprintf("its member ends %d bytes before the next block", in.Len())}
	}
	return out, nil
}

// decodeZstdBlock decompresses whole zstd frames, which must fill src exactly, into out.
func decodeZstdBlock(zd *zstd.Decoder, src, out []byte) ([]byte, error) {
	res, err := zd.DecodeAll(src, out)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return out, &IndexError{Reason: fmt.Sprintf("it holds more than %d bytes", maxBlockContent)}
	}
	if err != nil {
		return out, err
	}
	return res, nil
}

func (br *blockReader) Read(p []byte) (int, error) {
	for br.cur == nil || br.off == len(br.cur.out) {
		if br.err != nil {
			return 0, br.err
		}
		b, ok := <-br.order
		if !ok {
			br.err = io.EOF
			return 0, io.EOF
		}
		<-b.ready
		if br.cur != nil && br.cur.out != nil {
			//lint:ignore SA6002 the slice header Put allocates is 24 bytes against a 4 MiB block; a *[]byte carried through the block pipeline would cost more code than it saves
			blockBufs.Put(br.cur.out[:0])
		}
		br.cur, br.off = nil, 0
		if b.err != nil {
			if ie := (*IndexError)(nil); errors.As(b.err, &ie) {
				ie.Block = b.i
				br.err = ie
			} else {
				br.err = fmt.Errorf("block %d: %w", b.i, b.err)
			}
			return 0, br.err
		}
		br.cur = b
	}
	n := copy(p, br.cur.out[br.off:])
	br.off += n
	return n, nil
}

// Close stops the goroutines and waits for them, so that r may be read by someone else; safe to call twice.
func (br *blockReader) Close() error {
	select {
	case <-br.quit:
	default:
		close(br.quit)
	}
	br.wg.Wait()
	return nil
}
