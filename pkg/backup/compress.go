package backup

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/bee2d/bee2d/pkg/config"
)

// Levels match the command-line tools' defaults, so that sizes compare with zstd's and gzip's own: zstd -3,
// gzip -6.
const gzipLevel = 6

// maxZstdWindow is the largest window a zstd archive may ask for: the zstd tool's own limit when it
// decompresses without --memory (2^27). The decoder allocates the window a frame's header declares, before
// any data: unbounded, a hostile file of a few bytes would make a restore allocate half a gigabyte. bee2d's
// own frames need 4 MiB (compressBlock).
const maxZstdWindow = 128 << 20

// compressor wraps w in the compression c; Close flushes the compressor, not w.
func compressor(w io.Writer, c config.Compression) (io.WriteCloser, error) {
	switch c {
	case config.CompressionNone, "":
		return nopWriteCloser{w}, nil
	case config.CompressionGzip:
		return gzipBlocks(w)
	case config.CompressionZstd:
		return zstdBlocks(w)
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// decompressor reads r as compressed with c. A truncated stream is an error, never a short archive.
func decompressor(r io.Reader, c config.Compression) (io.ReadCloser, error) {
	switch c {
	case config.CompressionNone, "":
		return io.NopCloser(r), nil
	case config.CompressionGzip:
		return gzip.NewReader(r)
	case config.CompressionZstd:
		d, err := zstd.NewReader(r, zstd.WithDecoderMaxWindow(maxZstdWindow), zstd.WithDecoderMaxMemory(maxZstdWindow))
		if err != nil {
			return nil, err
		}
		return zstdReadCloser{d}, nil
	}
	return nil, fmt.Errorf("unknown compression %q", c)
}

type zstdReadCloser struct{ *zstd.Decoder }

func (z zstdReadCloser) Close() error {
	z.Decoder.Close()
	return nil
}
