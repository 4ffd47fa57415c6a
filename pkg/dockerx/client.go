package dockerx

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
)

const (
	// pingTimeout is short so that an unreachable host is reported quickly at start, not after a long hang.
	pingTimeout = 10 * time.Second
	// callTimeout bounds every short call (list, inspect, create, start, rename, remove): a stuck engine must
	// not stall a reconcile pass forever.
	callTimeout = 30 * time.Second
	// defaultReadTimeout bounds builds and pulls when the Endpoint does not say.
	defaultReadTimeout = 30 * time.Minute
)

// Client talks to one Docker engine. It is safe for concurrent use.
type Client struct {
	api         *client.Client
	readTimeout time.Duration
}

// Connect opens a client for ep and pings the engine, so that an unreachable host fails here with its address
// rather than on the first real call. The API version is negotiated, so older engines (API 1.41) work.
func Connect(ctx context.Context, ep Endpoint) (*Client, error) {
	opts, err := clientOptions(ep)
	if err != nil {
		return nil, err
	}
	api, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for %s: %w", describeHost(ep), err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, pingTimeout)
	defer cancel()
	ping, err := api.Ping(pingCtx)
	if err != nil {
		_ = api.Close()
		return nil, fmt.Errorf("docker engine at %s is unreachable: %w", api.DaemonHost(), err)
	}
	api.NegotiateAPIVersionPing(ping)

	rt := ep.ReadTimeout
	if rt <= 0 {
		rt = defaultReadTimeout
	}
	return &Client{api: api, readTimeout: rt}, nil
}

// clientOptions is the seam where each kind of host gets its transport. An explicit Host ignores the DOCKER_*
// environment, so a settings file means the same thing whoever runs bee2d.
func clientOptions(ep Endpoint) ([]client.Opt, error) {
	opts := []client.Opt{client.WithAPIVersionNegotiation()}
	if ep.Host == "" {
		opts = append(opts, client.FromEnv)
		if ep.TLS != nil {
			opts = append(opts, client.WithTLSClientConfig(ep.TLS.CA, ep.TLS.Cert, ep.TLS.Key))
		}
		return opts, nil
	}
	u, err := url.Parse(ep.Host)
	if err != nil {
		return nil, fmt.Errorf("docker host %q: %w", ep.Host, err)
	}
	switch u.Scheme {
	case "unix", "tcp", "npipe", "http", "https":
	case "ssh":
		return nil, fmt.Errorf("docker host %s: ssh:// hosts are not supported yet", ep.Host)
	default:
		return nil, fmt.Errorf("docker host %q: unknown scheme %q", ep.Host, u.Scheme)
	}
	opts = append(opts, client.WithHost(ep.Host))
	if ep.TLS != nil {
		opts = append(opts, client.WithTLSClientConfig(ep.TLS.CA, ep.TLS.Cert, ep.TLS.Key))
	}
	return opts, nil
}

func describeHost(ep Endpoint) string {
	if ep.Host != "" {
		return ep.Host
	}
	return "the default docker host"
}

// Host is the address of the engine this client talks to, e.g. unix:///var/run/docker.sock.
func (c *Client) Host() string {
	return c.api.DaemonHost()
}

// Close releases the client's connections.
func (c *Client) Close() error {
	return c.api.Close()
}

// short gives one short Docker call its own deadline.
func short(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, callTimeout)
}

// long gives one build or pull its deadline.
func (c *Client) long(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.readTimeout)
}

// IsNotFound tells whether err says the container, network, volume or image does not exist; removing something
// missing can then count as done.
func IsNotFound(err error) bool {
	return cerrdefs.IsNotFound(err)
}

// IsConflict tells whether err says the thing already exists or is in use, e.g. a network created twice.
func IsConflict(err error) bool {
	return cerrdefs.IsConflict(err)
}

// errNoID guards against an engine that reports success without an id.
var errNoID = errors.New("engine returned no id")
