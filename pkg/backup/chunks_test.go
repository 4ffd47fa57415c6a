package backup

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/bee2d/bee2d/pkg/config"
)

func TestChunkWriter(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	var want bytes.Buffer
	var got bytes.Buffer
	c := newChunkWriter(&got, sha256.New())
	for range 300 {
		p := make([]byte, rng.IntN(3*chunkSize/2))
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		want.Write(p)
		if rng.IntN(2) == 0 {
			if _, err := c.Write(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		// Ask for more than there is: fill stops at the end of the input.
		n, rerr, werr := c.fill(bytes.NewReader(p), int64(len(p))+10)
		if n != int64(len(p)) || rerr != nil || werr != nil {
			t.Fatalf("fill %d of %d: %v %v", n, len(p), rerr, werr)
		}
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) || c.Size() != int64(want.Len()) {
		t.Fatalf("output differs (%d vs %d bytes)", got.Len(), want.Len())
	}
	if sum := sha256.Sum256(want.Bytes()); !bytes.Equal(c.h.Sum(nil), sum[:]) {
		t.Error("hash differs")
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after <= 0 {
		return 0, errors.New("disk full")
	}
	f.after--
	return len(p), nil
}

func TestChunkWriterReportsOutputErrors(t *testing.T) {
	c := newChunkWriter(&failingWriter{after: 2}, nil)
	p := make([]byte, chunkSize)
	var err error
	for range 20 {
		if _, err = c.Write(p); err != nil {
			break
		}
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	if err == nil || err.Error() != "disk full" {
		t.Fatalf("err = %v", err)
	}
}

// Archives compressed in parallel blocks are one stream to our reader and to the command-line tools.
func TestParallelCompressionIsOneStream(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	data := make([]byte, 2*compressBlock+12345)
	for i := range data {
		if i%3 == 0 {
			data[i] = byte(rng.Uint32())
		} else {
			data[i] = "bee2d backup "[i%13]
		}
	}
	for _, tc := range []struct {
		comp config.Compression
		tool []string
	}{{config.CompressionZstd, []string{"zstd", "-dc"}}, {config.CompressionGzip, []string{"gzip", "-dc"}}} {
		var b bytes.Buffer
		w, err := compressor(&b, tc.comp)
		if err != nil {
			t.Fatal(err)
		}
		for p := data; len(p) > 0; {
			n := min(len(p), 1+rng.IntN(1<<20))
			w.Write(p[:n])
			p = p[n:]
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := decompressor(bytes.NewReader(b.Bytes()), tc.comp)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: our reader: %v, equal %v", tc.comp, err, bytes.Equal(got, data))
		}
		if path, err := exec.LookPath(tc.tool[0]); err == nil {
			cmd := exec.Command(path, tc.tool[1:]...)
			cmd.Stdin = bytes.NewReader(b.Bytes())
			got, err := cmd.Output()
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s: %v, equal %v", tc.tool[0], err, bytes.Equal(got, data))
			}
		}
	}
}

// An uncompressed archive compressed for the attach stream arrives as it was; a stream cut short, even
// between two frames' worth of data inside one, is an error, never a shorter archive.
func TestWireCompressionRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	data := make([]byte, 3*compressBlock+999)
	for i := range data {
		data[i] = "wire "[i%5]
		if i%7 == 0 {
			data[i] = byte(rng.Uint32())
		}
	}
	var wire bytes.Buffer
	w, err := zstdBlocksLevel(&wire, zstd.SpeedFastest)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	u := newUnwirer(&got)
	if _, err := u.Write(wire.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := u.Close(); err != nil || !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("whole stream: %v, equal %v", err, bytes.Equal(got.Bytes(), data))
	}
	got.Reset()
	u = newUnwirer(&got)
	u.Write(wire.Bytes()[:wire.Len()-100])
	if err := u.Close(); err == nil {
		t.Fatalf("a cut stream decompressed without error (%d of %d bytes)", got.Len(), len(data))
	}
}
