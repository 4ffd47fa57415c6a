package backup

import (
	"io"
	"os"
	"testing"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
)

func TestZZCompressSpeed(t *testing.T) {
	for _, p := range []string{os.Getenv("F1"), os.Getenv("F2"), os.Getenv("F3")} {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Skip(err)
		}
		for _, c := range []config.Compression{config.CompressionZstd, config.CompressionGzip} {
			start := time.Now()
			cw := &countW{}
			w, _ := compressor(cw, c)
			w.Write(data)
			w.Close()
			el := time.Since(start)
			t.Logf("%s %s: %d -> %d in %v (%.0f MB/s)", p, c, len(data), cw.n, el, float64(len(data))/1e6/el.Seconds())
		}
	}
}

type countW struct{ n int }

func (c *countW) Write(p []byte) (int, error) { c.n += len(p); return len(p), nil }

var _ = io.Discard
