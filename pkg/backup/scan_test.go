package backup

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestAheadReader: what the goroutine reads comes out whole and in order, then r's own error, whatever the
// sizes of the reads on either side.
func TestAheadReader(t *testing.T) {
	data := make([]byte, 3*aheadSize+12345)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	cut := errors.New("stream cut")
	for _, tc := range []struct {
		name string
		r    io.Reader
		want []byte
		err  error
	}{
		{"whole", bytes.NewReader(data), data, nil},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(data[:5000])), data[:5000], nil},
		{"data with the end", iotest.DataErrReader(bytes.NewReader(data)), data, nil},
		{"cut", io.MultiReader(bytes.NewReader(data[:aheadSize+10]), iotest.ErrReader(cut)), data[:aheadSize+10], cut},
		{"unexpected end", io.MultiReader(bytes.NewReader(data[:77]), iotest.ErrReader(io.ErrUnexpectedEOF)), data[:77], io.ErrUnexpectedEOF},
		{"empty", bytes.NewReader(nil), nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newAheadReader(tc.r)
			defer a.stop()
			var got bytes.Buffer
			// Odd-sized reads, so that the caller's reads straddle the goroutine's buffers.
			buf := make([]byte, 70001)
			var err error
			for {
				var n int
				n, err = a.Read(buf)
				got.Write(buf[:n])
				if err != nil {
					break
				}
			}
			if !bytes.Equal(got.Bytes(), tc.want) {
				t.Errorf("read %d bytes, want %d (or different content)", got.Len(), len(tc.want))
			}
			want := tc.err
			if want == nil {
				want = io.EOF
			}
			if err != want {
				t.Errorf("error %v, want %v", err, want)
			}
			// The error stays.
			if _, again := a.Read(buf); again != want {
				t.Errorf("second read: error %v, want %v", again, want)
			}
		})
	}
}

// TestAheadReaderStop: a caller that stops early (a refused entry) is not left with a goroutine reading on,
// and stop may be called again.
func TestAheadReaderStop(t *testing.T) {
	var reads int
	r := readerFunc(func(p []byte) (int, error) {
		reads++
		return len(p), nil // an endless stream
	})
	a := newAheadReader(r)
	if _, err := io.ReadFull(a, make([]byte, 10)); err != nil {
		t.Fatal(err)
	}
	a.stop()
	n := reads
	a.stop()
	if reads != n {
		t.Errorf("the goroutine read on after stop: %d reads, then %d", n, reads)
	}
	if n > aheadDepth+2 {
		t.Errorf("%d reads of %d-byte buffers for 10 bytes: more than the %d buffers ahead", n, aheadSize, aheadDepth+1)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
