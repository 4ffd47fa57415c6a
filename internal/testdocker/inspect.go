package testdocker

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Inspected is what tests read of a container's inspect, as the engine's JSON has it: bee2d's client has
// no call for a container's environment or exit code, and tests must not import the Docker SDK.
type Inspected struct {
	ID      string
	Created time.Time
	State   struct {
		Status    string
		Running   bool
		ExitCode  int
		StartedAt time.Time
	}
	Config struct {
		Env []string
		Cmd []string
	}
	NetworkSettings struct {
		Networks map[string]struct {
			IPAddress, GlobalIPv6Address string
			Aliases                      []string
		}
	}
}

// engineGet asks the engine at host (a unix:// URL; "" is DOCKER_HOST, else the local socket) for path.
func engineGet(host, path string) ([]byte, error) {
	if host == "" {
		host = os.Getenv("DOCKER_HOST")
	}
	if host == "" {
		host = "unix:///var/run/docker.sock"
	}
	sock, ok := strings.CutPrefix(host, "unix://")
	if !ok {
		return nil, fmt.Errorf("engine %s: only unix:// hosts are read here", host)
	}
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", sock)
	}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("http://docker" + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// Inspect returns the inspect of the container name (or id) on the engine at host.
func Inspect(host, name string) (Inspected, error) {
	var c Inspected
	body, err := engineGet(host, "/containers/"+url.PathEscape(name)+"/json")
	if err != nil {
		return c, fmt.Errorf("inspect %s: %w", name, err)
	}
	if err := json.Unmarshal(body, &c); err != nil {
		return c, fmt.Errorf("inspect %s: %w", name, err)
	}
	return c, nil
}

// Logs returns a container's output so far, stdout and stderr together, or the error reading it.
func Logs(host, name string) string {
	body, err := engineGet(host, "/containers/"+url.PathEscape(name)+"/logs?stdout=1&stderr=1")
	if err != nil {
		return err.Error()
	}
	// Without a TTY the engine frames each chunk: one byte of stream, three zero, a big-endian length.
	var out bytes.Buffer
	for len(body) >= 8 {
		n := int(binary.BigEndian.Uint32(body[4:8]))
		if body[0] > 2 || 8+n > len(body) {
			out.Write(body) // not framed (a TTY container): the output as it is
			return out.String()
		}
		out.Write(body[8 : 8+n])
		body = body[8+n:]
	}
	return out.String()
}
