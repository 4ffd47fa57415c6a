package reload

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

// ProbeCommand is the first argument that makes bee2d's binary the TLS probe (see ProbeMain): bee2d runs
// itself in a probe container in the network namespace of the application it checks.
const ProbeCommand = "__bee2d-probe-tls"

// ProbeMain is the probe: ProbeMain(addr, seconds, name=serial...) connects to addr with each name as SNI
// until the certificate served for every name has the expected serial, or the seconds have passed. It
// prints one line per name, "name served-serial" (or "name error: ..."), and exits 0 when all matched, 1
// otherwise, 2 on bad arguments.
func ProbeMain(args []string, stdout, stderr io.Writer) int {
	if len(args) < 3 {
		fmt.Fprintln(stderr, "usage: "+ProbeCommand+" HOST:PORT SECONDS NAME=SERIAL...")
		return 2
	}
	addr := args[0]
	secs, err := strconv.Atoi(args[1])
	if err != nil || secs < 0 {
		fmt.Fprintf(stderr, "bad seconds %q\n", args[1])
		return 2
	}
	type want struct{ name, serial string }
	var wants []want
	for _, a := range args[2:] {
		name, serial, ok := strings.Cut(a, "=")
		if !ok || name == "" {
			fmt.Fprintf(stderr, "bad NAME=SERIAL %q\n", a)
			return 2
		}
		wants = append(wants, want{name, strings.ToLower(serial)})
	}
	deadline := time.Now().Add(time.Duration(secs) * time.Second)
	got := make([]string, len(wants))
	for {
		all := true
		for i, w := range wants {
			if got[i] == w.serial {
				continue
			}
			got[i] = servedSerial(addr, w.name, deadline)
			all = all && got[i] == w.serial
		}
		if all || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	code := 0
	for i, w := range wants {
		fmt.Fprintf(stdout, "%s %s\n", w.name, got[i])
		if got[i] != w.serial {
			code = 1
		}
	}
	return code
}

// servedSerial is the serial of the certificate addr serves for name, or "error: ..." when it serves none.
func servedSerial(addr, name string, deadline time.Time) string {
	ctx, cancel := context.WithTimeout(context.Background(), max(time.Until(deadline), 2*time.Second))
	defer cancel()
	d := tls.Dialer{Config: &tls.Config{
		ServerName: name,
		// The point is to see what is served, trusted or not (a placeholder, a test CA).
		InsecureSkipVerify: true, //nolint:gosec
	}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "error: " + oneLine(err)
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "error: no certificate"
	}
	return certs[0].SerialNumber.Text(16)
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// parseProbe reads the probe's output: the served serial (or error text) per name.
func parseProbe(out string) map[string]string {
	served := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if name, serial, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			served[name] = serial
		}
	}
	return served
}

// hostPort is the probe's address for a port of the container it shares the network of.
func hostPort(port int) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
