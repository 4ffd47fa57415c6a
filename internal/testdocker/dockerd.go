package testdocker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/bee2d/bee2d/internal/pki"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// engineStartTimeout bounds how long a new dockerd may take to answer.
const engineStartTimeout = 90 * time.Second

// Engine is a Docker engine of a test's own: a dockerd process with its own data root, exec root (where it
// runs its own containerd), pid file and unix socket, in a network namespace of its own, so it shares
// nothing with the machine's engine but the kernel and the file system. (In the machine's namespace a
// second dockerd would not do: with --bridge=none, and when restarted, dockerd deletes the interface
// docker0, the machine's engine's default bridge.) Its networks, routes and published ports live in its
// namespace; its unix socket is reachable from anywhere, and its TLS port is relayed from 127.0.0.1 of the
// machine. It starts empty: a test builds what it needs on it.
type Engine struct {
	// Host is its unix socket as a docker host URL.
	Host string
	// TCPHost is tcp://127.0.0.1:<port> when it was started with TLS, else "".
	TCPHost string
	// Dir holds its data, its socket and its log (dockerd.log).
	Dir string

	bin   string
	ip    string // iproute2, to bring up the namespace's loopback
	args  []string
	relay net.Listener // 127.0.0.1:<port> of the machine to the same port in the engine's namespace

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// EngineTLS are the PEM files an engine serves mutual TLS with: it presents Cert and Key and accepts only
// clients with a certificate signed by CA.
type EngineTLS struct {
	CA, Cert, Key string
}

// StartEngine starts an engine of the test's own (see NewEngine), removed with everything in it when the
// test ends. Without dockerd, or without root, the test is skipped, except under CI=true, where it fails.
func StartEngine(t testing.TB, tls *EngineTLS) *Engine {
	t.Helper()
	switch {
	case dockerdPath() == "":
		Need(t, "dockerd not found (Debian: apt-get install docker.io)")
	case ipPath() == "":
		Need(t, "ip not found (Debian: apt-get install iproute2)")
	case os.Geteuid() != 0:
		Need(t, "starting a dockerd needs root")
	}
	e, err := NewEngine(tls)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Remove(); err != nil {
			t.Errorf("remove engine: %v", err)
		}
	})
	return e
}

// NewEngine starts a dockerd of its own and waits until it answers; with tls it also listens on
// tcp://127.0.0.1:<free port> with mutual TLS. The caller removes it with Remove.
func NewEngine(tls *EngineTLS) (*Engine, error) {
	bin, ip := dockerdPath(), ipPath()
	switch {
	case bin == "":
		return nil, errors.New("dockerd not found (Debian: apt-get install docker.io)")
	case ip == "":
		return nil, errors.New("ip not found (Debian: apt-get install iproute2)")
	}
	// Unix socket paths are short: t.TempDir can be too long.
	dir, err := os.MkdirTemp("", "bee2d-engine")
	if err != nil {
		return nil, err
	}
	e := &Engine{Dir: dir, Host: "unix://" + filepath.Join(dir, "docker.sock"), bin: bin, ip: ip}
	config := filepath.Join(dir, "daemon.json")
	// An empty configuration file: the machine's /etc/docker/daemon.json (its data root, its storage driver)
	// is for the machine's engine.
	if err := os.WriteFile(config, []byte("{}\n"), 0o644); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e.args = []string{
		"--config-file", config,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", filepath.Join(dir, "exec"),
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", e.Host,
		"--bridge=none", "--iptables=false", "--ip6tables=false",
		// vfs works on any file system, also inside a container; the tests' images are a few megabytes.
		"--storage-driver=vfs",
		"--shutdown-timeout=5",
		"--log-level=warn",
	}
	if tls != nil {
		// The relay holds the port on the machine's side; dockerd listens on the same one in its namespace.
		if e.relay, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		e.TCPHost = "tcp://" + e.relay.Addr().String()
		e.args = append(e.args, "--tlsverify", "--tlscacert", tls.CA, "--tlscert", tls.Cert, "--tlskey", tls.Key,
			"-H", e.TCPHost)
		go e.serveRelay()
	}
	if err := e.Start(); err != nil {
		_ = e.Remove()
		return nil, err
	}
	return e, nil
}

func ipPath() string {
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	return ""
}

func dockerdPath() string {
	if p, err := exec.LookPath("dockerd"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/dockerd"); err == nil {
		return "/usr/sbin/dockerd"
	}
	return ""
}

// Start starts the engine (again, after Stop, with the same data, socket and port: containers with a
// restart policy come back as after a reboot) and waits until it answers.
func (e *Engine) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd != nil {
		return errors.New("testdocker: engine already running")
	}
	logFile, err := os.OpenFile(filepath.Join(e.Dir, "dockerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// A new network namespace, whose loopback the shell brings up before it becomes dockerd.
	cmd := exec.Command("/bin/sh", append([]string{"-c", `"$0" link set lo up && exec "$@"`, e.ip, e.bin}, e.args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// If the process that started it dies, the engine dies with it rather than run on unowned.
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	e.cmd, e.exited = cmd, exited

	deadline := time.Now().Add(engineStartTimeout)
	for {
		select {
		case <-exited:
			e.cmd = nil
			return fmt.Errorf("dockerd exited at start; its log ends:\n%s", e.logTail())
		default:
		}
		if err := ping(e.Host); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("dockerd did not answer on %s within %s: %v; its log ends:\n%s", e.Host, engineStartTimeout, err, e.logTail())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ping(host string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cli, err := dockerx.Connect(ctx, dockerx.Endpoint{Host: host})
	if err != nil {
		return err
	}
	return cli.Close()
}

// Stop stops the engine as a shutdown of its host would: dockerd stops its containers and exits.
func (e *Engine) Stop() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cmd == nil {
		return nil
	}
	_ = e.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-e.exited:
	case <-time.After(60 * time.Second):
		_ = e.cmd.Process.Kill()
		<-e.exited
	}
	e.cmd = nil
	return nil
}

// Client connects to the engine's unix socket; the client is closed when the test ends.
func (e *Engine) Client(t testing.TB) *dockerx.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli, err := dockerx.Connect(ctx, dockerx.Endpoint{Host: e.Host})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// Remove removes the containers first, so that their mounts are gone, then stops the engine and deletes
// its directory.
func (e *Engine) Remove() error {
	e.mu.Lock()
	running := e.cmd != nil
	e.mu.Unlock()
	if running {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		if cli, err := dockerx.Connect(ctx, dockerx.Endpoint{Host: e.Host}); err == nil {
			if list, err := cli.ListContainers(ctx); err == nil {
				for _, c := range list {
					_ = cli.RemoveContainer(ctx, c.ID)
				}
			}
			cli.Close()
		}
		cancel()
	}
	if err := e.Stop(); err != nil {
		return err
	}
	if e.relay != nil {
		e.relay.Close()
	}
	unmountBelow(e.Dir)
	return os.RemoveAll(e.Dir)
}

// serveRelay forwards each connection to 127.0.0.1:<port> of the machine to the same address in the
// engine's namespace, until Remove closes the listener.
func (e *Engine) serveRelay() {
	addr := e.relay.Addr().String()
	for {
		in, err := e.relay.Accept()
		if err != nil {
			return
		}
		go func() {
			defer in.Close()
			e.mu.Lock()
			var pid int
			if e.cmd != nil {
				pid = e.cmd.Process.Pid
			}
			e.mu.Unlock()
			if pid == 0 {
				return // stopped: as if nothing listened
			}
			out, err := dialInNetns(fmt.Sprintf("/proc/%d/ns/net", pid), addr)
			if err != nil {
				return
			}
			defer out.Close()
			done := make(chan struct{}, 2)
			go func() { io.Copy(out, in); done <- struct{}{} }()
			go func() { io.Copy(in, out); done <- struct{}{} }()
			<-done
		}()
	}
}

// dialInNetns opens a TCP connection from inside the network namespace at nsPath: the socket is made on a
// thread switched into that namespace, and keeps belonging to it when the thread switches back.
func dialInNetns(nsPath, addr string) (net.Conn, error) {
	type result struct {
		conn net.Conn
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		home, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer home.Close()
		target, err := os.Open(nsPath)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		// A thread that cannot go home stays locked, and so ends with this goroutine.
		if unix.Setns(int(home.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.conn, r.err
}

// unmountBelow detaches whatever an engine that died hard left mounted in dir.
func unmountBelow(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	// Deepest first.
	for i := len(points) - 1; i >= 0; i-- {
		_ = syscall.Unmount(points[i], syscall.MNT_DETACH)
	}
}

func (e *Engine) logTail() string {
	b, _ := os.ReadFile(filepath.Join(e.Dir, "dockerd.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return strings.Join(lines, "\n")
}

func freeTCPPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// GoBuildDir writes into dir a Dockerfile building an image FROM scratch that runs goSource (one file of
// package main, standard library only) compiled as a static binary, /app: a build_dir for bee2d, which
// sends it to whatever engine a server names.
func GoBuildDir(t testing.TB, dir, goSource string) {
	t.Helper()
	if err := WriteGoBuildDir(dir, goSource); err != nil {
		t.Fatal(err)
	}
}

// WriteGoBuildDir is GoBuildDir for programs other than tests.
func WriteGoBuildDir(dir, goSource string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := compileGo(goSource, filepath.Join(dir, "app")); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n"), 0o644)
}

// compileGo builds a static linux binary; Go's build cache makes a second build of the same source cheap.
func compileGo(goSource, out string) error {
	src, err := os.MkdirTemp("", "testdocker-go")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	for name, content := range map[string]string{"go.mod": "module testapp\n\ngo 1.22\n", "main.go": goSource} {
		if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s", "-o", out, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH,
		"GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false")
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("compile test program: %w\n%s", err, log.String())
	}
	return nil
}

// TLSName is the DNS name in the certificate of an engine from StartTLSEngine, beside 127.0.0.1; any other
// name (localhost, say) is a wrong one.
const TLSName = "docker-tls.test"

// EngineCerts are the files of a TLS engine's CA and of a client certificate it accepts, made by the test
// with the pki package (what `bee2d tls init` uses). CA can issue more, e.g. expired ones.
type EngineCerts struct {
	Dir                           string
	CA                            *pki.KeyPair
	CAFile, ClientCert, ClientKey string
	ServerCert, ServerKey         string
}

// StartTLSEngine starts an engine that also serves tcp://127.0.0.1:<port> with mutual TLS, from a new CA:
// its certificate names 127.0.0.1 and TLSName.
func StartTLSEngine(t testing.TB) (*Engine, *EngineCerts) {
	t.Helper()
	certs := NewEngineCerts(t, pki.Template{Usage: pki.Server, CommonName: TLSName, DNSNames: []string{TLSName},
		IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	e := StartEngine(t, &EngineTLS{CA: certs.CAFile, Cert: certs.ServerCert, Key: certs.ServerKey})
	return e, certs
}

// NewEngineCerts makes a CA, a server certificate from server and a client certificate, as PEM files in a
// temporary directory.
func NewEngineCerts(t testing.TB, server pki.Template) *EngineCerts {
	t.Helper()
	dir := t.TempDir()
	ca, err := pki.NewCA("bee2d test CA", time.Now(), 0)
	if err != nil {
		t.Fatal(err)
	}
	c := &EngineCerts{Dir: dir, CA: ca, CAFile: filepath.Join(dir, "ca.pem"),
		ServerCert: filepath.Join(dir, "server.crt"), ServerKey: filepath.Join(dir, "server.pem"),
		ClientCert: filepath.Join(dir, "docker-client.crt"), ClientKey: filepath.Join(dir, "docker-client.pem")}
	if err := pki.WriteFile(c.CAFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	c.Issue(t, server, c.ServerCert, c.ServerKey)
	c.Issue(t, pki.Template{Usage: pki.Client, CommonName: "bee2d"}, c.ClientCert, c.ClientKey)
	return c
}

// Issue writes a certificate from tmpl signed by the CA, and its key.
func (c *EngineCerts) Issue(t testing.TB, tmpl pki.Template, certFile, keyFile string) {
	t.Helper()
	kp, err := c.CA.Issue(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	if err := kp.Save(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
}
