package dockerx

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// defaultRemoteSocket is where an ssh:// host's engine listens when the URL names no path.
const defaultRemoteSocket = "/var/run/docker.sock"

// SSH keepalives find a connection that died without a word (a VPN that dropped, a host that lost power),
// so the next call dials anew instead of hanging on it.
const (
	sshKeepaliveInterval = 15 * time.Second
	sshKeepaliveTimeout  = 10 * time.Second
)

// sshTransport carries every API call to one engine over a single SSH connection: each HTTP connection of
// the docker client is a channel to the remote docker socket (direct-streamlocal@openssh.com, what
// `ssh -L local.sock:/var/run/docker.sock` uses), so sshd sees one login however many calls run at once,
// and no ssh process is started. A connection that drops is dialled again by the next call.
type sshTransport struct {
	addr       string // host:port
	user       string
	socket     string // the engine's socket on the remote host
	knownHosts string
	identity   string // "" for the agent and the default key files

	mu     sync.Mutex
	conn   *sshConn
	closed bool
}

// sshConn is one SSH connection; done closes when it ends.
type sshConn struct {
	*ssh.Client
	done   chan struct{}
	closed atomic.Bool // set by Close, before done closes
}

func (c *sshConn) Close() error {
	c.closed.Store(true)
	return c.Client.Close()
}

// newSSHTransport reads an ssh://[user@]host[:port][/socket] URL. The user defaults to the local user, the
// port to 22, the socket to /var/run/docker.sock, the known hosts to ~/.ssh/known_hosts.
func newSSHTransport(u *url.URL, files *SSHFiles) (*sshTransport, error) {
	t := &sshTransport{socket: defaultRemoteSocket}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("docker host %s names no host", u.Redacted())
	}
	if _, ok := u.User.Password(); ok {
		return nil, fmt.Errorf("docker host %s: passwords are not supported; use a key", u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = "22"
	}
	t.addr = net.JoinHostPort(u.Hostname(), port)
	if u.Path != "" && u.Path != "/" {
		t.socket = u.Path
	}
	t.user = u.User.Username()
	if t.user == "" {
		cur, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("docker host %s names no user and the local one is unknown: %w", u.Redacted(), err)
		}
		t.user = cur.Username
	}
	if files != nil {
		t.knownHosts, t.identity = files.KnownHosts, files.Identity
	}
	if t.knownHosts == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("docker host %s: no known_hosts file given and no home directory: %w", u.Redacted(), err)
		}
		t.knownHosts = filepath.Join(home, ".ssh", "known_hosts")
	}
	return t, nil
}

// DialContext opens a channel to the remote engine's socket; network and addr, which the HTTP client
// derives from a placeholder host, are ignored.
func (t *sshTransport) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	c, err := t.client(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := c.DialContext(ctx, "unix", t.socket)
	var rejected *ssh.OpenChannelError
	if err != nil && !errors.As(err, &rejected) && ctx.Err() == nil {
		// Not a refusal by sshd: the connection died since the last call (a dropped VPN, a restarted
		// sshd). Drop it and dial once more.
		c.Close()
		if c, err = t.client(ctx); err != nil {
			return nil, err
		}
		conn, err = c.DialContext(ctx, "unix", t.socket)
	}
	if err != nil {
		return nil, &sshError{msg: fmt.Sprintf("SSH: %s@%s cannot open the docker socket %s: %v%s",
			t.user, t.addr, t.socket, err, channelHint(err)), err: err}
	}
	return conn, nil
}

// client returns the live connection, dialling one when there is none. Callers that arrive during a dial
// wait for it rather than opening a second connection.
func (t *sshTransport) client(ctx context.Context) (*sshConn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, net.ErrClosed
	}
	if t.conn != nil && !t.conn.ended() {
		return t.conn, nil
	}
	if t.conn != nil {
		t.conn.Close()
	}
	t.conn = nil
	c, err := t.dial(ctx)
	if err != nil {
		return nil, err
	}
	t.conn = c
	return c, nil
}

func (t *sshTransport) dial(ctx context.Context) (*sshConn, error) {
	cfg, closeAgent, err := t.clientConfig()
	if err != nil {
		return nil, &sshError{msg: "SSH: " + err.Error(), err: err}
	}
	defer closeAgent()
	raw, err := tcpDialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, &sshError{msg: fmt.Sprintf("SSH: cannot reach %s: %s", t.addr, netReason(err)), err: err}
	}
	// The handshake takes no context: bound it by a deadline on the connection.
	deadline := time.Now().Add(dialTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = raw.SetDeadline(deadline)
	cc, chans, reqs, err := ssh.NewClientConn(raw, t.addr, cfg)
	if err != nil {
		raw.Close()
		return nil, &sshError{msg: t.explain(err), err: err}
	}
	_ = raw.SetDeadline(time.Time{})
	c := &sshConn{Client: ssh.NewClient(cc, chans, reqs), done: make(chan struct{})}
	go func() {
		_ = c.Wait()
		close(c.done)
	}()
	go c.keepalive(sshKeepaliveInterval, sshKeepaliveTimeout)
	return c, nil
}

// clientConfig checks the host key against known_hosts, offering only the key types known_hosts has for
// the host (as OpenSSH does, so a host known by its ECDSA key is not refused for showing its Ed25519 one),
// and authenticates with the identity file, then the agent's keys, then the default key files. The
// returned function closes the agent connection, once the handshake is over.
func (t *sshTransport) clientConfig() (*ssh.ClientConfig, func(), error) {
	if _, err := os.Stat(t.knownHosts); err != nil {
		return nil, nil, fmt.Errorf("known_hosts file %s: %w; add %s's host key to it first (ssh-keyscan%s %s >> %s, then check it)",
			t.knownHosts, errors.Unwrap(err), t.addr, portFlag(t.addr), hostOnly(t.addr), t.knownHosts)
	}
	hostKeys, err := knownhosts.New(t.knownHosts)
	if err != nil {
		return nil, nil, err
	}
	signers, closeAgent, err := t.signers()
	if err != nil {
		return nil, nil, err
	}
	return &ssh.ClientConfig{
		User:              t.user,
		Auth:              []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback:   hostKeys,
		HostKeyAlgorithms: knownAlgorithms(hostKeys, t.addr),
		Timeout:           dialTimeout,
	}, closeAgent, nil
}

// signers are the keys offered, in order: the configured identity, the agent's, and (with no identity
// configured) ~/.ssh/id_ed25519, id_ecdsa and id_rsa where they exist without a passphrase. An agent's
// keys sign through the agent, so its connection stays open until the returned function is called.
func (t *sshTransport) signers() ([]ssh.Signer, func(), error) {
	var out []ssh.Signer
	closeAgent := func() {}
	if t.identity != "" {
		s, err := readKey(t.identity)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, s)
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		if conn, err := net.DialTimeout("unix", sock, dialTimeout); err == nil {
			closeAgent = func() { conn.Close() }
			if keys, err := agent.NewClient(conn).Signers(); err == nil {
				out = append(out, keys...)
			}
		}
	}
	if t.identity == "" {
		if home, err := os.UserHomeDir(); err == nil {
			for _, name := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
				if s, err := readKey(filepath.Join(home, ".ssh", name)); err == nil {
					out = append(out, s)
				}
			}
		}
	}
	if len(out) == 0 {
		closeAgent()
		return nil, nil, errors.New("no key to log in with: load one into ssh-agent (SSH_AUTH_SOCK) or set docker.ssh.identity")
	}
	return out, closeAgent, nil
}

func readKey(path string) (ssh.Signer, error) {
	pemBytes, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}
	s, err := ssh.ParsePrivateKey(pemBytes)
	var pass *ssh.PassphraseMissingError
	if errors.As(err, &pass) {
		return nil, fmt.Errorf("identity %s is protected by a passphrase: load it into ssh-agent instead", path)
	}
	if err != nil {
		return nil, fmt.Errorf("identity %s: %w", path, err)
	}
	return s, nil
}

// knownAlgorithms lists the host key algorithms known_hosts has for addr, or nil (every algorithm) when it
// has none, so that the handshake fails with "unknown host" rather than with "mismatch".
func knownAlgorithms(hostKeys ssh.HostKeyCallback, addr string) []string {
	var kerr *knownhosts.KeyError
	if err := hostKeys(addr, &net.TCPAddr{IP: net.IPv4zero, Port: 22}, probeKey{}); !errors.As(err, &kerr) {
		return nil
	}
	var out []string
	seen := map[string]bool{}
	add := func(algos ...string) {
		for _, a := range algos {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	for _, k := range kerr.Want {
		if k.Key.Type() == ssh.KeyAlgoRSA {
			// An RSA host key signs with SHA-2 today; ssh-rsa (SHA-1) last.
			add(ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA)
			continue
		}
		add(k.Key.Type())
	}
	return out
}

// probeKey matches no known_hosts line: asking about it lists the keys known for a host.
type probeKey struct{}

func (probeKey) Type() string                        { return "bee2d-probe" }
func (probeKey) Marshal() []byte                     { return []byte("bee2d-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }

// ended tells whether the connection is over (closed by either side, or by keepalive).
func (c *sshConn) ended() bool {
	if c.closed.Load() {
		return true
	}
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// keepalive closes the connection when the server stops answering.
func (c *sshConn) keepalive(interval, timeout time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		answered := make(chan error, 1)
		go func() {
			_, _, err := c.SendRequest("keepalive@openssh.com", true, nil)
			answered <- err
		}()
		timer := time.NewTimer(timeout)
		select {
		case err := <-answered:
			timer.Stop()
			if err != nil {
				c.Close()
				return
			}
		case <-timer.C:
			c.Close()
			return
		case <-c.done:
			timer.Stop()
			return
		}
	}
}

// Close ends the SSH connection and refuses new calls.
func (t *sshTransport) Close() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closed = true
	if t.conn != nil {
		err := t.conn.Close()
		t.conn = nil
		return err
	}
	return nil
}

// explain says why the SSH handshake failed, naming the files to look at.
func (t *sshTransport) explain(err error) string {
	var kerr *knownhosts.KeyError
	var revoked *knownhosts.RevokedError
	switch {
	case errors.As(err, &kerr) && len(kerr.Want) == 0:
		return fmt.Sprintf("SSH: the host key of %s is not in %s; add it first (ssh-keyscan%s %s >> %s, then check it)",
			t.addr, t.knownHosts, portFlag(t.addr), hostOnly(t.addr), t.knownHosts)
	case errors.As(err, &kerr):
		w := kerr.Want[0]
		return fmt.Sprintf("SSH: the host key of %s does not match %s:%d; refusing to connect (a reinstalled server, or someone in between)",
			t.addr, w.Filename, w.Line)
	case errors.As(err, &revoked):
		return fmt.Sprintf("SSH: the host key of %s is revoked in %s:%d", t.addr, revoked.Revoked.Filename, revoked.Revoked.Line)
	case strings.Contains(err.Error(), "unable to authenticate"):
		return fmt.Sprintf("SSH: %s@%s accepted none of the keys offered (identity file, agent, ~/.ssh/id_*)", t.user, t.addr)
	}
	return fmt.Sprintf("SSH: handshake with %s failed: %s", t.addr, netReason(err))
}

// channelHint says what usually stops sshd from forwarding to a socket.
func channelHint(err error) string {
	var open *ssh.OpenChannelError
	if errors.As(err, &open) {
		switch open.Reason {
		case ssh.Prohibited:
			return " (sshd forbids it: set AllowStreamLocalForwarding yes)"
		case ssh.ConnectionFailed:
			return " (is the engine running there, may this user open its socket, and does sshd allow forwarding?)"
		}
	}
	return ""
}

// netReason words a dial error without the phrases the docker client rewrites into "Is the docker daemon
// running?", which would hide that the SSH server was the one not answering.
func netReason(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "nothing listens there"
	case errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer in time"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

// sshError is a failure of the SSH transport, worded for people; it unwraps to the cause but, unlike it,
// is no net.Error, so the docker client reports it as it is.
type sshError struct {
	msg string
	err error
}

func (e *sshError) Error() string { return e.msg }
func (e *sshError) Unwrap() error { return e.err }

func hostOnly(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

func portFlag(addr string) string {
	if _, p, err := net.SplitHostPort(addr); err == nil && p != "22" {
		return " -p " + p
	}
	return ""
}
