package backup

import (
	"errors"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/bee2d/bee2d/pkg/config"
)

// parallelWriter compresses blocks of its input on every CPU at once, each block as a complete zstd frame or
// gzip member, and writes them in order. Concatenated frames and members are one valid stream for every
// decoder (zstd -d, gzip -d, pigz -d, tar -z); this is how `zstd -T0` and pigz use all cores, and what a
// single Go stream encoder does not.
type parallelWriter struct {
	w     io.Writer
	enc   func(dst, src []byte, worker int) ([]byte, error)
	block int
	cur   *block

	work  chan *block
	queue chan *block
	free  chan *block
	wg    sync.WaitGroup
	done  chan struct{}

	mu  sync.Mutex
	err error

	// sizes are the compressed sizes of the blocks written, in order; read after Close.
	sizes []int64
}

type block struct {
	src, out []byte
	ready    chan struct{}
	err      error
}

const compressBlock = 4 << 20

func newParallelWriter(w io.Writer, workers int, enc func(dst, src []byte, worker int) ([]byte, error)) *parallelWriter {
	p := &parallelWriter{w: w, enc: enc, block: compressBlock,
		work: make(chan *block, workers), queue: make(chan *block, 2*workers), free: make(chan *block, 2*workers+1),
		done: make(chan struct{})}
	for range 2*workers + 1 {
		p.free <- &block{src: make([]byte, 0, compressBlock)}
	}
	for i := range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for b := range p.work {
				b.out, b.err = enc(b.out[:0], b.src, i)
				close(b.ready)
			}
		}()
	}
	go p.writeLoop()
	p.cur = p.take()
	return p
}

// take returns a free block, its buffers kept from their last use.
func (p *parallelWriter) take() *block {
	b := <-p.free
	b.src, b.out, b.err, b.ready = b.src[:0], b.out[:0], nil, make(chan struct{})
	return b
}

func (p *parallelWriter) writeLoop() {
	defer close(p.done)
	for b := range p.queue {
		<-b.ready
		err := b.err
		if err == nil && p.failed() == nil {
			_, err = p.w.Write(b.out)
			p.sizes = append(p.sizes, int64(len(b.out)))
		}
		if err != nil {
			p.fail(err)
		}
		p.free <- b
	}
}

func (p *parallelWriter) fail(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	p.mu.Unlock()
}

func (p *parallelWriter) failed() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

func (p *parallelWriter) submit() {
	if len(p.cur.src) == 0 {
		return
	}
	p.queue <- p.cur
	p.work <- p.cur
	p.cur = p.take()
}

func (p *parallelWriter) Write(b []byte) (int, error) {
	n := 0
	for len(b) > 0 {
		if err := p.failed(); err != nil {
			return n, err
		}
		src := p.cur.src
		m := copy(src[len(src):p.block], b)
		p.cur.src = src[:len(src)+m]
		b, n = b[m:], n+m
		if len(p.cur.src) == p.block {
			p.submit()
		}
	}
	return n, nil
}

// fill reads up to n bytes of r straight into the blocks to compress, sparing a copy through a buffer of the
// caller's. It returns how many it read, and the read error (the input's problem) apart from the write error
// (the output's); an early end of r ends the fill without error.
func (p *parallelWriter) fill(r io.Reader, n int64) (read int64, rerr, werr error) {
	for read < n {
		if err := p.failed(); err != nil {
			return read, nil, err
		}
		src := p.cur.src
		room := src[len(src):p.block]
		room = room[:min(int64(len(room)), n-read)]
		m, err := r.Read(room)
		p.cur.src = src[:len(src)+m]
		read += int64(m)
		if len(p.cur.src) == p.block {
			p.submit()
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			if err == nil && m == 0 || err != nil {
				return read, err, nil
			}
		} else if m == 0 {
			return read, nil, nil
		}
	}
	return read, nil, nil
}

// Close compresses what is left and waits until every block is written.
func (p *parallelWriter) Close() error {
	p.submit() // the block taken after it stays unused
	close(p.work)
	close(p.queue)
	p.wg.Wait()
	<-p.done
	return p.failed()
}

// blockSizes returns the compressed size of each block written, in order, once Close has returned: the
// sizes of its gzip members or zstd frames, which a reader can then decompress several at once (see
// blockReader).
func (p *parallelWriter) blockSizes() []int64 { return p.sizes }

// blocksOf returns the block sizes of what a gzip or zstd compressor of the archive wrote, once it is
// closed; nil for any other writer.
func blocksOf(w io.Writer, comp config.Compression) []int64 {
	if p, ok := w.(*parallelWriter); ok && indexable(comp) {
		return p.blockSizes()
	}
	return nil
}

// zstdBlocks compresses blocks as zstd frames at zstd's default level (3).
func zstdBlocks(w io.Writer) (*parallelWriter, error) {
	return zstdBlocksLevel(w, zstd.SpeedDefault)
}

// zstdBlocksLevel compresses blocks as zstd frames at level.
func zstdBlocksLevel(w io.Writer, level zstd.EncoderLevel) (*parallelWriter, error) {
	workers := runtime.GOMAXPROCS(0)
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(level), zstd.WithEncoderConcurrency(workers),
		zstd.WithLowerEncoderMem(false))
	if err != nil {
		return nil, err
	}
	return newParallelWriter(w, workers, func(dst, src []byte, _ int) ([]byte, error) {
		// Room for the worst case at once: EncodeAll appends block by block, and growing the slice as it goes
		// copied more than compressing took.
		if need := enc.MaxEncodedSize(len(src)); cap(dst) < need {
			dst = make([]byte, 0, need)
		}
		return enc.EncodeAll(src, dst), nil
	}), nil
}

// gzipBlocks compresses blocks as gzip members at gzip's default level (6).
func gzipBlocks(w io.Writer) (*parallelWriter, error) {
	workers := runtime.GOMAXPROCS(0)
	writers := make([]*gzip.Writer, workers)
	outs := make([]*appendWriter, workers)
	for i := range writers {
		outs[i] = &appendWriter{}
		gw, err := gzip.NewWriterLevel(outs[i], gzipLevel)
		if err != nil {
			return nil, err
		}
		writers[i] = gw
	}
	return newParallelWriter(w, workers, func(dst, src []byte, i int) ([]byte, error) {
		// The member goes straight into dst, sized for the worst case (stored blocks: 5 bytes per 64 KiB,
		// and the header and trailer), rather than through a buffer copied after.
		if need := len(src) + len(src)/(64<<10)*5 + 1024; cap(dst) < need {
			dst = make([]byte, 0, need)
		}
		out, gw := outs[i], writers[i]
		out.b = dst[:0]
		gw.Reset(out)
		if _, err := gw.Write(src); err != nil {
			return nil, err
		}
		if err := gw.Close(); err != nil {
			return nil, err
		}
		dst, out.b = out.b, nil
		return dst, nil
	}), nil
}

// appendWriter appends what is written to b.
type appendWriter struct{ b []byte }

func (a *appendWriter) Write(p []byte) (int, error) {
	a.b = append(a.b, p...)
	return len(p), nil
}
