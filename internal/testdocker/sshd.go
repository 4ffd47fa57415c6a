package testdocker

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// SSHD is an OpenSSH server of a test's own on 127.0.0.1, with its own host key and configuration, that
// lets one test key in and forwards to unix sockets (what bee2d's ssh:// hosts use), and nothing else.
type SSHD struct {
	// Addr is 127.0.0.1:<port>.
	Addr string
	// User is who the key logs in as: the user running the test.
	User string
	// Identity is the test key's private key file; KnownHosts a known_hosts file with the server's key.
	Identity   string
	KnownHosts string
	// HostKey is the server's public key.
	HostKey ssh.PublicKey
	Dir     string

	t      testing.TB
	bin    string
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartSSHD starts sshd (Debian's openssh-server) on a free port of 127.0.0.1. Without sshd, or without
// root (sshd must switch to the logged-in user), the test is skipped, except under CI=true, where it fails.
func StartSSHD(t testing.TB) *SSHD {
	t.Helper()
	bin := "/usr/sbin/sshd"
	if p, err := exec.LookPath("sshd"); err == nil {
		bin = p
	}
	if _, err := os.Stat(bin); err != nil {
		Need(t, "sshd not found (Debian: apt-get install openssh-server)")
	}
	if os.Geteuid() != 0 {
		Need(t, "running sshd needs root")
	}
	// sshd refuses to start without its privilege separation directory, which the package's service
	// would make.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	cur, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	free, err := freeTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	s := &SSHD{Dir: t.TempDir(), User: cur.Username, t: t, bin: bin, Addr: fmt.Sprintf("127.0.0.1:%d", free)}
	hostKey := filepath.Join(s.Dir, "host_ed25519")
	if s.HostKey, err = WriteSSHKey(hostKey); err != nil {
		t.Fatal(err)
	}
	s.Identity = filepath.Join(s.Dir, "id_ed25519")
	clientKey, err := WriteSSHKey(s.Identity)
	if err != nil {
		t.Fatal(err)
	}
	authorized := filepath.Join(s.Dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(clientKey), 0o600); err != nil {
		t.Fatal(err)
	}
	s.KnownHosts = filepath.Join(s.Dir, "known_hosts")
	if err := WriteKnownHosts(s.KnownHosts, s.Addr, s.HostKey); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.Addr)
	config := strings.Join([]string{
		"Port " + port,
		"ListenAddress " + host,
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + authorized,
		"PidFile none",
		"UsePAM no",
		// The files are in a temporary directory whose modes sshd would otherwise judge.
		"StrictModes no",
		"PermitRootLogin prohibit-password",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"AllowStreamLocalForwarding yes",
		"X11Forwarding no",
		"PermitTTY no",
		// VERBOSE logs each login, which tests count.
		"LogLevel VERBOSE",
		"",
	}, "\n")
	cfg := filepath.Join(s.Dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.stop() })
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s *SSHD) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	logFile, err := os.OpenFile(filepath.Join(s.Dir, "sshd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	// -D: no daemon; -e: log to stderr.
	cmd := exec.Command(s.bin, "-D", "-e", "-f", filepath.Join(s.Dir, "sshd_config"))
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start sshd: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			s.cmd = nil
			return fmt.Errorf("sshd exited at start:\n%s", s.Log())
		default:
		}
		if c, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd did not listen on %s:\n%s", s.Addr, s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends sshd and every connection it serves.
func (s *SSHD) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	// sshd serves each connection in a child of its own session: end those first, then the listener.
	for _, pid := range descendants(s.cmd.Process.Pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
	s.cmd = nil
}

// descendants lists the processes below pid, children before their own children.
func descendants(pid int) []int {
	parents := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			parents[ppid] = append(parents[ppid], child)
		}
	}
	var out []int
	queue := []int{pid}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range parents[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

// Restart ends sshd with every connection it serves and starts it again on the same port: to clients, a
// dropped connection.
func (s *SSHD) Restart() {
	s.t.Helper()
	s.stop()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// Logins counts the logins sshd accepted so far.
func (s *SSHD) Logins() int {
	return strings.Count(s.Log(), "Accepted publickey")
}

// Log is what sshd has logged.
func (s *SSHD) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "sshd.log"))
	return string(b)
}

// WriteSSHKey writes a new Ed25519 private key in OpenSSH format (mode 0600) and returns its public key.
func WriteSSHKey(path string) (ssh.PublicKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	return ssh.NewPublicKey(pub)
}

// WriteKnownHosts writes a known_hosts file that accepts key for addr (host:port).
func WriteKnownHosts(path, addr string, key ssh.PublicKey) error {
	if key == nil {
		return errors.New("no key")
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(addr)}, key)
	return os.WriteFile(path, []byte(line+"\n"), 0o644)
}
