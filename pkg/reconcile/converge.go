package reconcile

import (
	"context"
	"fmt"
	"net"
	"strings"

	"go.uber.org/zap"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
)

// PlanServer observes a server and plans its convergence. It lists bee2d's containers only, and lists all
// containers, networks, volumes and images only when something must be created.
func PlanServer(ctx context.Context, o Observer, d *Desired, opt Options) (*Plan, *Snapshot, error) {
	return PlanServerWith(ctx, o, d, opt, Hints{})
}

// Hints let a caller that keeps state from pass to pass, the daemon, observe less.
type Hints struct {
	// Full skips the cheap snapshot when something is known to be missing (a managed container was
	// destroyed): the complete one would follow it anyway.
	Full bool
	// Prerequisites holds the networks, volumes and images of an earlier complete snapshot, reused instead
	// of listing them again; containers are always listed afresh. The caller drops it when an action
	// fails, so that a network or image removed by hand costs one failed create, then a fresh list.
	Prerequisites *Snapshot
	// NetworksSeen is the Desired.NetworksDigest of the networks an earlier pass found as the settings say
	// (Converged.NetworksSeen). While the desired networks keep that digest, a pass lists no network unless
	// something is to be created, and may take them from Prerequisites; otherwise it lists them afresh, so
	// that a changed subnet is seen though nothing else changed. Empty: the networks are listed when a
	// container of bee2d's was created for other networks (its labels.Networks differs), or when there is none.
	NetworksSeen string
}

// PlanServerWith is PlanServer with hints.
func PlanServerWith(ctx context.Context, o Observer, d *Desired, opt Options, h Hints) (*Plan, *Snapshot, error) {
	freshNetworks := h.NetworksSeen == "" || h.NetworksSeen != d.NetworksDigest()
	if h.Full {
		snap := &Snapshot{}
		if err := snap.complete(ctx, o, h.Prerequisites, freshNetworks); err != nil {
			return nil, nil, err
		}
		return Diff(d, snap, opt), snap, nil
	}
	snap, err := observeCheap(ctx, o, d.Prefix, h.NetworksSeen != "" && freshNetworks)
	if err != nil {
		return nil, nil, err
	}
	if h.NetworksSeen == "" && !snap.NetworksListed && !networksVouched(d, snap) {
		if snap.Networks, err = o.ListNetworks(ctx); err != nil {
			return nil, nil, err
		}
		snap.NetworksListed = true
	}
	p := Diff(d, snap, opt)
	if p.NeedsFullSnapshot {
		if err := snap.complete(ctx, o, h.Prerequisites, freshNetworks); err != nil {
			return nil, nil, err
		}
		p = Diff(d, snap, opt)
	}
	return p, snap, nil
}

// ObserveAll takes the full snapshot: containers, networks, volumes and images.
func ObserveAll(ctx context.Context, o Observer) (*Snapshot, error) {
	s := &Snapshot{}
	if err := s.complete(ctx, o, nil, true); err != nil {
		return nil, err
	}
	return s, nil
}

// EndpointFor tells how to reach a server's engine: its docker section if given; else Bee2's default of
// TLS on port 2376 of the first private DNS name, with the client files in conf/docker/<server>/ beside
// the settings (ca.pem, or ca.crt as Bee2's Ansible role saved it); else DOCKER_HOST or the local socket.
// Files named in the settings are relative to the settings file. Plain tcp:// is refused unless the
// settings say insecure: true; see InsecureWarning.
func EndpointFor(s *config.Settings, server string) (engine.Endpoint, error) {
	srv := s.Server(server)
	if srv == nil {
		return engine.Endpoint{}, fmt.Errorf("no server %q in %s", server, s.File)
	}
	ep := engine.Endpoint{ReadTimeout: s.Docker.ReadTimeout}
	switch {
	case srv.Docker != nil:
		ep.Host = srv.Docker.Host
		ep.Insecure = srv.Docker.Insecure
		if t := srv.Docker.TLS; t != nil {
			ep.TLS = &engine.TLSFiles{CA: s.ResolvePath(t.CA), Cert: s.ResolvePath(t.Cert), Key: s.ResolvePath(t.Key)}
		}
		if f := srv.Docker.SSH; f != nil {
			ep.SSH = &engine.SSHFiles{KnownHosts: s.ResolvePath(f.KnownHosts), Identity: s.ResolvePath(f.Identity)}
		}
	case len(srv.DNS.Private) > 0:
		ep.Host = "tcp://" + net.JoinHostPort(srv.DNS.Private[0], "2376")
		f := s.ServerTLSFiles(server)
		ep.TLS = &engine.TLSFiles{CA: f.CA, Cert: f.ClientCert, Key: f.ClientKey}
	}
	if strings.HasPrefix(ep.Host, "tcp://") && ep.TLS == nil && !ep.Insecure {
		return ep, fmt.Errorf("server %s: %s without TLS is refused; give docker.tls or set docker.insecure: true", server, ep.Host)
	}
	return ep, nil
}

// WarnInsecure logs, when ep is a server reached over TCP without TLS, that anyone who reaches it is root
// on it; log names the server. Callers do this once each time bee2d starts, so the warning is seen at every
// start but does not flood the log.
func WarnInsecure(log *zap.Logger, ep engine.Endpoint) {
	if ep.Insecure && ep.TLS == nil && strings.HasPrefix(ep.Host, "tcp://") {
		log.Warn("docker api over tcp without tls: anyone who reaches it is root on the server",
			zap.String("host", ep.Host), zap.String("because", "docker.insecure: true"))
	}
}
