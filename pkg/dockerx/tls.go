package dockerx

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/client"
)

const (
	// dialTimeout bounds opening one TCP connection (and the TLS or SSH handshake on it).
	dialTimeout = 10 * time.Second
	// idleConns is how many connections to a remote engine stay open between calls: as many as the actions a
	// server runs at once, so a busy pass does not redo a TLS handshake (or open an SSH channel) per call.
	idleConns   = 16
	idleTimeout = 30 * time.Second
)

// tcpDialer opens the TCP connections to remote engines; keepalives notice a peer that vanished.
var tcpDialer = &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}

// tlsConfig is the client side of a mutual TLS connection to host (a Docker host URL): only the CA in
// files.CA is trusted, and the engine's certificate must name the host of the URL, as a browser would check.
// A client certificate outside its validity is refused here, where the message can name the file, instead
// of as an alert from the engine.
func tlsConfig(serverName string, files TLSFiles, now time.Time) (*tls.Config, error) {
	caPEM, err := os.ReadFile(files.CA)
	if err != nil {
		return nil, fmt.Errorf("TLS CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("TLS CA %s: no PEM certificate in it", files.CA)
	}
	pair, err := tls.LoadX509KeyPair(files.Cert, files.Key)
	if err != nil {
		return nil, fmt.Errorf("TLS client certificate %s with key %s: %w", files.Cert, files.Key, err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, fmt.Errorf("TLS client certificate %s: %w", files.Cert, err)
		}
	}
	switch {
	case now.After(leaf.NotAfter):
		return nil, fmt.Errorf("TLS client certificate %s expired on %s; make a new one (bee2d tls init)",
			files.Cert, leaf.NotAfter.UTC().Format(time.DateOnly))
	case now.Before(leaf.NotBefore):
		return nil, fmt.Errorf("TLS client certificate %s is valid only from %s; is this machine's clock right?",
			files.Cert, leaf.NotBefore.UTC().Format(time.DateTime))
	}
	return &tls.Config{
		RootCAs:      pool,
		Certificates: []tls.Certificate{pair},
		ServerName:   serverName,
		MinVersion:   tls.VersionTLS12,
	}, nil
}

// tlsHTTPClient is an HTTP client whose connections use cfg; the docker client takes its transport as is
// and speaks https because the transport has a TLS configuration.
func tlsHTTPClient(cfg *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			TLSClientConfig:     cfg,
			DialContext:         tcpDialer.DialContext,
			TLSHandshakeTimeout: dialTimeout,
			MaxIdleConns:        idleConns,
			MaxIdleConnsPerHost: idleConns,
			IdleConnTimeout:     idleTimeout,
		},
		CheckRedirect: client.CheckRedirect,
	}
}

// explainTLS says in words why a TLS connection failed, naming the files involved, or "" when err is not a
// TLS failure.
func explainTLS(err error, files *TLSFiles) string {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		remote    *net.OpError
		header    tls.RecordHeaderError
	)
	switch {
	case errors.As(err, &unknownCA):
		ca := "the configured CA"
		if files != nil {
			ca = files.CA
		}
		return fmt.Sprintf("TLS: the engine's certificate is not signed by the CA in %s", ca)
	case errors.As(err, &hostname):
		return fmt.Sprintf("TLS: the engine's certificate is for %s, not %s", certNames(hostname.Certificate), hostname.Host)
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		c := invalid.Cert
		return fmt.Sprintf("TLS: the engine's certificate is valid from %s to %s, not now",
			c.NotBefore.UTC().Format(time.DateTime), c.NotAfter.UTC().Format(time.DateTime))
	case errors.As(err, &invalid):
		return "TLS: the engine's certificate is not valid: " + invalid.Error()
	case errors.As(err, &remote) && remote.Op == "remote error":
		// An alert from the engine: with TLS 1.3 it rejects the client certificate after the handshake.
		cert := "bee2d's client certificate"
		if files != nil {
			cert = "the client certificate " + files.Cert
		}
		return fmt.Sprintf("TLS: the engine refused %s (%v)", cert, remote.Err)
	case errors.As(err, &header), strings.Contains(err.Error(), "first record does not look like a TLS handshake"):
		return "TLS: the engine does not speak TLS on this port"
	}
	return ""
}

// certNames lists what a certificate is valid for: its DNS names and IP addresses.
func certNames(c *x509.Certificate) string {
	if c == nil {
		return "no name"
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no name"
	}
	return strings.Join(names, ", ")
}
