package backup

import (
	"bytes"
	"os"
	"testing"
	"time"
)

func TestZZHelperSpeed(t *testing.T) {
	volumesDir = "/var/lib/docker/volumes"
	defer func() { volumesDir = containerVolumes }()
	out, _ := os.MkdirTemp("/dev/shm", "zz")
	defer os.RemoveAll(out)
	os.WriteFile(out+"/.bee2d-probe-0123456789abcdef", []byte("t"), 0o600)
	for _, c := range []string{"zstd", "none"} {
		start := time.Now()
		var stderr bytes.Buffer
		code := HelperMain([]string{"backup", "--compression", c, "--out", out + "/.1-volumes.tar.tmp." + c, "--probe", ".bee2d-probe-0123456789abcdef:t", "b2bk56a944-mixed"}, nil, nil, &stderr)
		fi, err := os.Stat(out + "/.1-volumes.tar.tmp." + c)
		if err != nil { t.Fatal(stderr.String()) }; t.Logf("%s: code %d in %v, %d bytes", c, code, time.Since(start), fi.Size())
		os.Remove(out + "/.1-volumes.tar.tmp." + c)
	}
}
