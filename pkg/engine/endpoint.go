package engine

import "time"

// Endpoint says how to reach one Docker engine.
type Endpoint struct {
	// Host is a Docker host URL (unix://, tcp://, ssh://). Empty means DOCKER_HOST, else the local socket.
	Host string
	// TLS files for tcp:// with mutual TLS; nil for none.
	TLS *TLSFiles
	// Insecure allows tcp:// without TLS.
	Insecure bool
	// SSH options for ssh:// hosts; nil for the defaults.
	SSH *SSHFiles
	// ReadTimeout bounds long calls (builds, pulls, archives); short calls use their own timeouts.
	ReadTimeout time.Duration
}

// Equal tells whether two endpoints reach the same engine the same way.
func (e Endpoint) Equal(o Endpoint) bool {
	if (e.TLS == nil) != (o.TLS == nil) || (e.TLS != nil && *e.TLS != *o.TLS) {
		return false
	}
	if (e.SSH == nil) != (o.SSH == nil) || (e.SSH != nil && *e.SSH != *o.SSH) {
		return false
	}
	return e.Host == o.Host && e.Insecure == o.Insecure && e.ReadTimeout == o.ReadTimeout
}

// TLSFiles are absolute paths of PEM files.
type TLSFiles struct {
	CA, Cert, Key string
}

// SSHFiles are absolute paths of an ssh:// host's files; empty means the default.
type SSHFiles struct {
	// KnownHosts holds the accepted host keys; default ~/.ssh/known_hosts.
	KnownHosts string
	// Identity is a private key (not passphrase-protected) tried before the SSH agent's keys; default none.
	Identity string
}
