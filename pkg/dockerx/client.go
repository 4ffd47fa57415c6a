package dockerx

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/docker/docker/client"
)

const (
	// pingTimeout is short so that an unreachable host is reported quickly at start, not after a long hang.
	pingTimeout = 10 * time.Second
	// callTimeout bounds every short read (list, inspect): a stuck engine must not stall a reconcile pass
	// forever.
	callTimeout = 30 * time.Second
	// changeTimeout bounds one change (create, start, rename, remove). It is longer than callTimeout because
	// the engine queues changes behind each other (every start sets up a network sandbox under a lock): on a
	// loaded host a start can wait tens of seconds and then succeed, and a client that gave up earlier would
	// report a failure for a change the engine still makes.
	changeTimeout = 2 * time.Minute
	// defaultReadTimeout bounds builds and pulls when the Endpoint does not say.
	defaultReadTimeout = 30 * time.Minute
)

// Client talks to one Docker engine. It is safe for concurrent use.
type Client struct {
	api         *client.Client
	host        string // as the settings say, for messages
	readTimeout time.Duration
	// transport is the SSH connection of an ssh:// host, closed with the client; nil otherwise.
	transport io.Closer
}

// Connect opens a client for ep and pings the engine, so that an unreachable host fails here with its address
// rather than on the first real call; an engine whose TLS certificate or SSH host key cannot be trusted fails
// here too, before any call is made. The API version is negotiated, so older engines (API 1.41) work.
func Connect(ctx context.Context, ep Endpoint) (*Client, error) {
	opts, transport, err := clientOptions(ep, time.Now())
	if err != nil {
		return nil, err
	}
	closeTransport := func() {
		if transport != nil {
			transport.Close()
		}
	}
	api, err := client.NewClientWithOpts(opts...)
	if err != nil {
		closeTransport()
		return nil, fmt.Errorf("docker client for %s: %w", describeHost(ep), err)
	}
	host := ep.Host
	if host == "" {
		host = api.DaemonHost()
	}
	pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	ping, err := api.Ping(pingCtx)
	if err != nil {
		_ = api.Close()
		closeTransport()
		return nil, connectError(host, ep, err)
	}
	api.NegotiateAPIVersionPing(ping)

	rt := ep.ReadTimeout
	if rt <= 0 {
		rt = defaultReadTimeout
	}
	return &Client{api: api, host: host, readTimeout: rt, transport: transport}, nil
}

// clientOptions is the seam where each kind of host gets its transport: a unix socket as it is; tcp:// with
// mutual TLS through a TLS configuration of bee2d's own (see tlsConfig); ssh:// through one SSH connection
// (see sshTransport), returned so that it is closed with the client. An explicit Host ignores the DOCKER_*
// environment, so a settings file means the same thing whoever runs bee2d.
func clientOptions(ep Endpoint, now time.Time) ([]client.Opt, io.Closer, error) {
	opts := []client.Opt{client.WithAPIVersionNegotiation()}
	if ep.Host == "" {
		opts = append(opts, client.FromEnv)
		if ep.TLS != nil {
			opts = append(opts, client.WithTLSClientConfig(ep.TLS.CA, ep.TLS.Cert, ep.TLS.Key))
		}
		return opts, nil, nil
	}
	u, err := url.Parse(ep.Host)
	if err != nil {
		return nil, nil, fmt.Errorf("docker host %q: %w", ep.Host, err)
	}
	switch u.Scheme {
	case "unix", "npipe", "http":
		if ep.TLS != nil {
			return nil, nil, fmt.Errorf("docker host %s: TLS applies only to tcp:// hosts", ep.Host)
		}
		return append(opts, client.WithHost(ep.Host)), nil, nil
	case "tcp", "https":
		if ep.TLS == nil {
			if !ep.Insecure {
				return nil, nil, fmt.Errorf("docker host %s: TCP without TLS is refused unless the settings say insecure: true", ep.Host)
			}
			return append(opts, client.WithHost(ep.Host)), nil, nil
		}
		// The engine's certificate must name the host bee2d was told to reach.
		cfg, err := tlsConfig(u.Hostname(), *ep.TLS, now)
		if err != nil {
			return nil, nil, fmt.Errorf("docker host %s: %w", ep.Host, err)
		}
		// WithHost sets up the transport for TCP; the dialer after it restores bee2d's connect timeout.
		return append(opts, client.WithHTTPClient(tlsHTTPClient(cfg)), client.WithHost(ep.Host),
			client.WithDialContext(tcpDialer.DialContext)), nil, nil
	case "ssh":
		t, err := newSSHTransport(u, ep.SSH)
		if err != nil {
			return nil, nil, err
		}
		// The placeholder unix host makes the client speak plain HTTP with no proxy; every connection is
		// then dialled through SSH.
		httpClient := &http.Client{
			Transport:     &http.Transport{MaxIdleConns: idleConns, MaxIdleConnsPerHost: idleConns, IdleConnTimeout: idleTimeout},
			CheckRedirect: client.CheckRedirect,
		}
		opts = append(opts, client.WithHTTPClient(httpClient), client.WithHost("unix://"+t.socket), client.WithDialContext(t.DialContext))
		return opts, t, nil
	default:
		return nil, nil, fmt.Errorf("docker host %q: unknown scheme %q", ep.Host, u.Scheme)
	}
}

// connectError words a failed first call: why a TLS or SSH peer was not trusted when that is the cause,
// else that the engine is unreachable.
func connectError(host string, ep Endpoint, err error) error {
	if why := explainTLS(err, ep.TLS); why != "" {
		return &wordedError{msg: fmt.Sprintf("docker engine at %s: %s", host, why), err: err}
	}
	var se *sshError
	if errors.As(err, &se) {
		return &wordedError{msg: fmt.Sprintf("docker engine at %s: %s", host, se.msg), err: err}
	}
	return fmt.Errorf("docker engine at %s is unreachable: %w", host, err)
}

// wordedError replaces a low-level message by one for people and keeps the cause for errors.Is and As.
type wordedError struct {
	msg string
	err error
}

func (e *wordedError) Error() string { return e.msg }
func (e *wordedError) Unwrap() error { return e.err }

func describeHost(ep Endpoint) string {
	if ep.Host != "" {
		return ep.Host
	}
	return "the default docker host"
}

// Host is the address of the engine this client talks to, as the settings say, e.g. ssh://root@web1 or
// unix:///var/run/docker.sock.
func (c *Client) Host() string {
	return c.host
}

// APIVersion is the Engine API version the client speaks with this engine, negotiated when it connected:
// the engine's own when it is older than the client's (1.41 for Docker 20.10), else the client's.
func (c *Client) APIVersion() string {
	return c.api.ClientVersion()
}

// Close releases the client's connections, and its SSH connection if it has one.
func (c *Client) Close() error {
	err := c.api.Close()
	if c.transport != nil {
		err = errors.Join(err, c.transport.Close())
	}
	return err
}

// short gives one short Docker call its own deadline.
func short(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, callTimeout)
}

// change gives one create, start, rename or remove its deadline.
func change(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, changeTimeout)
}

// long gives one build or pull its deadline.
func (c *Client) long(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.readTimeout)
}

// errNoID guards against an engine that reports success without an id.
var errNoID = errors.New("engine returned no id")
