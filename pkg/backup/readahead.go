package backup

import (
	"io"
	"io/fs"
	"os"
	"sync"
)

// Small files cost a backup in system calls (open, stat, read, stat, close) more than in bytes. The archiver
// has the regular files of a directory opened, stat'ed and, when small, read whole by a few goroutines ahead
// of it, in order, while it writes the entries before them: on a server with several cores, or a cold cache
// where each read waits for the disk, those calls overlap. The archive is the same as when every file is
// read in turn: the same entries, in the same order, with the same checks.

const (
	// readAheadWorkers open and read files at once; more than the cores, for reads that wait for a disk.
	readAheadWorkers = 4
	// readAheadFiles bounds the files opened ahead of the archiver, readAheadSmall the size of a file read
	// whole ahead: at most readAheadFiles × readAheadSmall bytes wait in memory.
	readAheadFiles = 32
	readAheadSmall = 256 << 10
)

// opened is a regular file opened for the archive, with what was read of it ahead.
type opened struct {
	f   *os.File // nil once the file was read whole ahead (and closed), or when it could not be opened
	fi  fs.FileInfo
	err error // the open or first stat failed: nothing more is known

	// ahead tells that data holds the content, as much of its fi.Size() bytes as could be read, and
	// after the stat that followed the read (nil when it failed).
	ahead bool
	data  []byte
	buf   *[]byte // data's buffer, back to smallBufs once written
	after fs.FileInfo
}

var smallBufs = sync.Pool{New: func() any {
	b := make([]byte, readAheadSmall)
	return &b
}}

// openFile opens a regular file without following a symlink put in its place, and stats it. With readSmall,
// a file of at most readAheadSmall bytes is read whole, stat'ed again and closed.
func openFile(p string, readSmall bool) opened {
	f, err := openNoFollow(p)
	if err != nil {
		return opened{err: err}
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return opened{err: err}
	}
	o := opened{f: f, fi: fi}
	if !readSmall || !fi.Mode().IsRegular() || fi.Size() > readAheadSmall {
		return o
	}
	o.buf = smallBufs.Get().(*[]byte)
	n, _ := io.ReadFull(f, (*o.buf)[:fi.Size()])
	o.data, o.ahead = (*o.buf)[:n], true
	if after, err := f.Stat(); err == nil {
		o.after = after
	}
	f.Close()
	o.f = nil
	return o
}

// release closes what o holds open and returns its buffer.
func (o *opened) release() {
	if o.f != nil {
		o.f.Close()
		o.f = nil
	}
	if o.buf != nil {
		smallBufs.Put(o.buf)
		o.buf, o.data = nil, nil
	}
}

// readAhead opens (and reads, when small) the files at paths on readAheadWorkers goroutines and returns
// their results in order through next. stop must be called once done, also after an error: it waits for
// the goroutines and releases what the results not taken hold.
type readAhead struct {
	jobs  []*readJob
	i     int
	slots chan struct{}
	quit  chan struct{}
	wg    sync.WaitGroup
}

type readJob struct {
	path string
	o    opened
	done chan struct{}
}

func newReadAhead(paths []string) *readAhead {
	ra := &readAhead{slots: make(chan struct{}, readAheadFiles), quit: make(chan struct{})}
	ra.jobs = make([]*readJob, len(paths))
	for i, p := range paths {
		ra.jobs[i] = &readJob{path: p, done: make(chan struct{})}
	}
	work := make(chan *readJob)
	ra.wg.Add(1)
	go func() {
		// The feeder hands the jobs out in order, never more than readAheadFiles ahead of next.
		defer ra.wg.Done()
		defer close(work)
		for _, j := range ra.jobs {
			select {
			case ra.slots <- struct{}{}:
			case <-ra.quit:
				return
			}
			select {
			case work <- j:
			case <-ra.quit:
				return
			}
		}
	}()
	for range min(readAheadWorkers, len(paths)) {
		ra.wg.Add(1)
		go func() {
			defer ra.wg.Done()
			for j := range work {
				j.o = openFile(j.path, true)
				close(j.done)
			}
		}()
	}
	return ra
}

// next returns the next file's result; the caller releases it.
func (ra *readAhead) next() *opened {
	j := ra.jobs[ra.i]
	ra.i++
	<-j.done
	<-ra.slots
	return &j.o
}

func (ra *readAhead) stop() {
	close(ra.quit)
	ra.wg.Wait()
	for _, j := range ra.jobs[ra.i:] {
		select {
		case <-j.done:
			j.o.release()
		default: // never handed out
		}
	}
}
