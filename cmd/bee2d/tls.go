package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bee2d/bee2d/internal/pki"
	"github.com/bee2d/bee2d/pkg/config"
)

const tlsSynopsis = "tls init SERVER -c settings.yml [--name NAME]... [--ip IP]... [--ipv6-subnet PREFIX] [--force]"

// stringsFlag is a repeatable flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// tlsInit is what `tls init` was asked for.
type tlsInit struct {
	server     string
	names      []string
	ips        []net.IP
	ipv6Subnet string // fixed-cidr-v6, "" for none
	force      bool
}

func cmdTLS(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "init" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			fmt.Fprintf(stdout, "Usage: bee2d %s\n", tlsSynopsis)
			return errHelp
		}
		fmt.Fprintf(stderr, "Usage: bee2d %s\n", tlsSynopsis)
		return errUsage
	}
	var c common
	var names, ips stringsFlag
	var subnet string
	var force bool
	fs := newFlags("tls init", tlsSynopsis, &c, false, stderr)
	fs.Var(&names, "name", "a DNS name the engine is reached by (repeatable; default: the server's dns.private)")
	fs.Var(&ips, "ip", "the private address the engine listens on (repeatable; default: the server's private_ip)")
	fs.StringVar(&subnet, "ipv6-subnet", "", "the server's IPv6 /64: containers get its first /80 (ipv6, fixed-cidr-v6)")
	fs.BoolVar(&force, "force", false, "replace the server's certificates if it has some")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bee2d %s\n\n"+
			"Makes the CA (once, in conf/docker/ beside the settings), a server certificate with the names and\n"+
			"addresses given and a client certificate, in conf/docker/SERVER/, and prints the daemon.json to install\n"+
			"on the server.\n\nFlags:\n", tlsSynopsis)
		fs.PrintDefaults()
	}
	// The server may come before or after the flags.
	server, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return err
	}
	if server == "" || c.config == "" {
		fmt.Fprintf(stderr, "bee2d tls init: a server and -c settings.yml are required\n")
		fs.Usage()
		return errUsage
	}
	s, err := load(c, stderr)
	if err != nil {
		return err
	}
	req, err := tlsRequest(s, server, names, ips, subnet)
	if err != nil {
		return err
	}
	req.force = force
	return req.run(s, time.Now(), stdout, stderr)
}

// parseInterleaved parses flags around one positional argument and returns it.
func parseInterleaved(fs *flag.FlagSet, args []string) (string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return "", errHelp
			}
			return "", errUsage
		}
		if fs.NArg() == 0 {
			break
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(pos) {
	case 0:
		return "", nil
	case 1:
		return pos[0], nil
	}
	fmt.Fprintf(fs.Output(), "bee2d %s: unexpected argument %q\n", fs.Name(), pos[1])
	fs.Usage()
	return "", errUsage
}

// tlsRequest checks the flags against the settings, which give the defaults: the server's dns.private
// names and its private_ip.
func tlsRequest(s *config.Settings, server string, names, ips []string, subnet string) (*tlsInit, error) {
	srv := s.Server(server)
	if srv == nil {
		var known []string
		for _, x := range s.Servers {
			known = append(known, x.Name)
		}
		return nil, fmt.Errorf("no server %q in %s (servers: %s)", server, s.File, strings.Join(known, ", "))
	}
	req := &tlsInit{server: server}
	if len(names) == 0 {
		names = srv.DNS.Private
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, n)
			continue
		}
		if n == "" || strings.ContainsAny(n, " /:@") {
			return nil, fmt.Errorf("--name %q is not a DNS name", n)
		}
		req.names = append(req.names, n)
	}
	if len(ips) == 0 {
		if n := srv.Extra["private_ip"]; n != nil && n.Kind == yaml.ScalarNode {
			ips = []string{n.Value}
		}
	}
	for _, v := range ips {
		ip := net.ParseIP(v)
		if ip == nil {
			return nil, fmt.Errorf("--ip %q is not an IP address", v)
		}
		req.ips = append(req.ips, ip)
	}
	if len(req.ips) == 0 {
		return nil, fmt.Errorf("server %s: give --ip, the private address its engine listens on (the settings have no private_ip)", server)
	}
	if subnet != "" {
		cidr, err := fixedCIDRv6(subnet)
		if err != nil {
			return nil, err
		}
		req.ipv6Subnet = cidr
	}
	return req, nil
}

// fixedCIDRv6 is Bee2's fixed-cidr-v6: the first /80 of the host's IPv6 subnet, so that containers get
// addresses routed to the host.
func fixedCIDRv6(subnet string) (string, error) {
	ip, ipnet, err := net.ParseCIDR(subnet)
	if err != nil {
		if ip = net.ParseIP(subnet); ip == nil {
			return "", fmt.Errorf("--ipv6-subnet %q is not an IPv6 prefix such as 2001:db8:1:2::/64", subnet)
		}
		ipnet = &net.IPNet{IP: ip, Mask: net.CIDRMask(64, 128)}
	}
	if ip.To4() != nil {
		return "", fmt.Errorf("--ipv6-subnet %q is IPv4; give the server's IPv6 prefix", subnet)
	}
	if ones, _ := ipnet.Mask.Size(); ones > 80 {
		return "", fmt.Errorf("--ipv6-subnet %q is smaller than a /80; give the server's /64 (or any prefix up to /80)", subnet)
	}
	return (&net.IPNet{IP: ipnet.IP, Mask: net.CIDRMask(80, 128)}).String(), nil
}

func (req *tlsInit) run(s *config.Settings, now time.Time, stdout, stderr io.Writer) error {
	files := s.ServerTLSFiles(req.server)
	made, err := pki.InitServer(pki.ServerRequest{
		Files: pki.ServerFiles{CACert: files.CACert, CAKey: files.CAKey, CA: files.CACopy,
			ServerCert: files.ServerCert, ServerKey: files.ServerKey, ClientCert: files.ClientCert, ClientKey: files.ClientKey},
		Names: req.names, IPs: req.ips, FixedCIDRv6: req.ipv6Subnet, Force: req.force, Now: now,
	})
	if errors.Is(err, pki.ErrHasCertificates) {
		return fmt.Errorf("%s already has certificates; --force replaces them (and %s then needs the new ones)", files.Dir, req.server)
	}
	if err != nil {
		return err
	}

	rel := func(p string) string {
		if r, err := filepath.Rel(s.Dir, p); err == nil {
			return r
		}
		return p
	}
	if made.MadeCA {
		fmt.Fprintf(stderr, "made the CA %s (key %s, mode 0600): keep the key safe, every server trusts it\n",
			rel(files.CACert), rel(files.CAKey))
	} else {
		fmt.Fprintf(stderr, "used the CA %s\n", rel(files.CACert))
	}
	cert := made.Server.Cert
	names := append(append([]string{}, cert.DNSNames...), ipStrings(cert.IPAddresses)...)
	fmt.Fprintf(stderr, "wrote %s/: %s, %s and %s (for %s, valid until %s), %s and %s (for bee2d)\n",
		rel(files.Dir), config.CAFile, config.ServerCertFile, config.ServerKeyFile, strings.Join(names, ", "),
		cert.NotAfter.UTC().Format(time.DateOnly), config.ClientCertFile, config.ClientKeyFile)
	fmt.Fprintf(stderr, "on %s: copy %s, %s and %s to %s/ (the key mode 0600), save the JSON below as\n"+
		"/etc/docker/daemon.json and restart docker. Debian's docker.service passes -H fd:// itself, which\n"+
		"dockerd refuses beside \"hosts\": override its ExecStart with plain /usr/sbin/dockerd.\n",
		req.server, config.CAFile, config.ServerCertFile, config.ServerKeyFile, pki.DaemonTLSDir)
	if hint := settingsHint(s, req, rel(files.CACopy), rel(files.ClientCert), rel(files.ClientKey)); hint != "" {
		fmt.Fprint(stderr, hint)
	}
	fmt.Fprintf(stdout, "%s\n", made.DaemonJSON)
	return nil
}

// settingsHint says how the settings reach the server with these files, when they do not already.
func settingsHint(s *config.Settings, req *tlsInit, ca, cert, key string) string {
	srv := s.Server(req.server)
	if srv.Docker == nil && len(srv.DNS.Private) > 0 {
		return "" // Bee2's default: tcp://<dns.private[0]>:2376 with conf/docker/<server>/ — these files.
	}
	host := req.ips[0].String()
	if len(req.names) > 0 {
		host = req.names[0]
	}
	return fmt.Sprintf("settings: servers.%s.docker: {host: \"tcp://%s\", tls: {ca: %s, cert: %s, key: %s}}\n",
		req.server, net.JoinHostPort(host, "2376"), ca, cert, key)
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}
