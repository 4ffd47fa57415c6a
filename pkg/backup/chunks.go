package backup

import (
	"errors"
	"hash"
	"io"
	"sync"
)

// chunkWriter buffers what is written into large chunks and hands each to two goroutines of their own, one
// writing it out, one hashing it, while the caller goes on reading and archiving: on two cores that is what
// lets a backup keep up with a plain `tar | cat`. It can also read file content straight into its chunks
// (fill), so that data crosses user space once. An error of the output comes back from a later call.
type chunkWriter struct {
	w    io.Writer
	h    hash.Hash // nil: no hash
	cur  []byte
	free chan *chunk
	out  chan *chunk
	sum  chan *chunk
	wg   sync.WaitGroup
	n    int64

	mu  sync.Mutex
	err error
}

type chunk struct {
	b    []byte
	refs sync.WaitGroup
}

const (
	chunkSize  = 1 << 20
	chunkDepth = 4
)

func newChunkWriter(w io.Writer, h hash.Hash) *chunkWriter {
	c := &chunkWriter{w: w, h: h, free: make(chan *chunk, chunkDepth+1), out: make(chan *chunk, chunkDepth)}
	for range chunkDepth + 1 {
		c.free <- &chunk{b: make([]byte, 0, chunkSize)}
	}
	c.wg.Add(1)
	go c.writeLoop()
	if h != nil {
		c.sum = make(chan *chunk, chunkDepth)
		c.wg.Add(1)
		go c.hashLoop()
	}
	c.cur = (<-c.free).b
	return c
}

func (c *chunkWriter) writeLoop() {
	defer c.wg.Done()
	for ch := range c.out {
		if c.failed() == nil {
			if _, err := c.w.Write(ch.b); err != nil {
				c.fail(err)
			}
		}
		ch.refs.Done()
	}
}

func (c *chunkWriter) hashLoop() {
	defer c.wg.Done()
	for ch := range c.sum {
		c.h.Write(ch.b)
		ch.refs.Done()
	}
}

func (c *chunkWriter) fail(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

func (c *chunkWriter) failed() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// submit hands the current chunk over and takes a free one.
func (c *chunkWriter) submit() {
	if len(c.cur) == 0 {
		return
	}
	ch := &chunk{b: c.cur}
	n := 1
	if c.sum != nil {
		n = 2
	}
	ch.refs.Add(n)
	c.n += int64(len(ch.b))
	c.out <- ch
	if c.sum != nil {
		c.sum <- ch
	}
	// Recycle it once both are done with it.
	go func() {
		ch.refs.Wait()
		c.free <- &chunk{b: ch.b[:0]}
	}()
	c.cur = (<-c.free).b
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		if err := c.failed(); err != nil {
			return written, err
		}
		m := copy(c.cur[len(c.cur):cap(c.cur)], p)
		c.cur = c.cur[:len(c.cur)+m]
		p = p[m:]
		written += m
		if len(c.cur) == cap(c.cur) {
			c.submit()
		}
	}
	return written, nil
}

// fill reads up to n bytes of r into the output. It returns how many it read, and the read error (the
// input's problem) apart from the write error (the output's).
func (c *chunkWriter) fill(r io.Reader, n int64) (read int64, rerr, werr error) {
	for read < n {
		if err := c.failed(); err != nil {
			return read, nil, err
		}
		room := c.cur[len(c.cur):cap(c.cur)]
		room = room[:min(int64(len(room)), n-read)]
		m, err := r.Read(room)
		c.cur = c.cur[:len(c.cur)+m]
		read += int64(m)
		if len(c.cur) == cap(c.cur) {
			c.submit()
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			if err == nil && m == 0 || err != nil {
				return read, err, nil
			}
		}
	}
	return read, nil, nil
}

// Close writes what is buffered, waits for the goroutines and returns the first error of the output.
func (c *chunkWriter) Close() error {
	c.submit()
	close(c.out)
	if c.sum != nil {
		close(c.sum)
	}
	c.wg.Wait()
	return c.failed()
}

// Size is the number of bytes handed to the output.
func (c *chunkWriter) Size() int64 { return c.n }
