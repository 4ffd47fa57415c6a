package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bee2d/bee2d/internal/pki"
	"github.com/bee2d/bee2d/pkg/config"
)

// remoteTLSDir is where the daemon.json that `tls init` prints expects the engine's files on the server.
const remoteTLSDir = "/etc/docker/tls"

// The files `tls init` writes to conf/docker/<server>/: the client's names are the ones Bee2 used, and the
// ones bee2d looks for by default.
const (
	caFile         = "ca.pem"
	caKeyFile      = "ca-key.pem"
	serverCertFile = "docker-server.crt"
	serverKeyFile  = "docker-server.pem"
	clientCertFile = "docker-client.crt"
	clientKeyFile  = "docker-client.pem"
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
	s, err := load(c.config, stderr)
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

// daemonJSON is the engine's /etc/docker/daemon.json, in the order Bee2's Ansible template had.
type daemonJSON struct {
	TLS         bool     `json:"tls"`
	TLSVerify   bool     `json:"tlsverify"`
	TLSCACert   string   `json:"tlscacert"`
	TLSCert     string   `json:"tlscert"`
	TLSKey      string   `json:"tlskey"`
	IPv6        bool     `json:"ipv6,omitempty"`
	FixedCIDRv6 string   `json:"fixed-cidr-v6,omitempty"`
	Hosts       []string `json:"hosts"`
}

func (req *tlsInit) run(s *config.Settings, now time.Time, stdout, stderr io.Writer) error {
	confDir := filepath.Join(s.Dir, "conf", "docker")
	dir := filepath.Join(confDir, req.server)
	if !req.force {
		for _, f := range []string{serverCertFile, clientCertFile} {
			if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
				return fmt.Errorf("%s already has certificates; --force replaces them (and %s then needs the new ones)", dir, req.server)
			}
		}
	}
	ca, made, err := loadOrMakeCA(confDir, now)
	if err != nil {
		return err
	}
	cn := req.ips[0].String()
	if len(req.names) > 0 {
		cn = req.names[0]
	}
	notAfter := now.Add(pki.CertValidity)
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter // nothing it signs outlives the CA
	}
	ips := req.ips
	if !containsIP(ips, net.IPv4(127, 0, 0, 1)) {
		// daemon.json listens on 127.0.0.1:2376 too, for `docker --tlsverify` on the server itself.
		ips = append(ips, net.IPv4(127, 0, 0, 1))
	}
	server, err := ca.Issue(pki.Template{Usage: pki.Server, CommonName: cn, DNSNames: req.names, IPs: ips,
		NotBefore: now.Add(-time.Hour), NotAfter: notAfter})
	if err != nil {
		return err
	}
	client, err := ca.Issue(pki.Template{Usage: pki.Client, CommonName: "bee2d",
		NotBefore: now.Add(-time.Hour), NotAfter: notAfter})
	if err != nil {
		return err
	}
	if err := pki.WriteFile(filepath.Join(dir, caFile), ca.CertPEM, 0o644); err != nil {
		return err
	}
	if err := server.Save(filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile)); err != nil {
		return err
	}
	if err := client.Save(filepath.Join(dir, clientCertFile), filepath.Join(dir, clientKeyFile)); err != nil {
		return err
	}

	dj := daemonJSON{
		TLS: true, TLSVerify: true,
		TLSCACert: remoteTLSDir + "/" + caFile,
		TLSCert:   remoteTLSDir + "/" + serverCertFile,
		TLSKey:    remoteTLSDir + "/" + serverKeyFile,
		Hosts:     []string{"127.0.0.1:2376"},
	}
	for _, ip := range req.ips {
		if !ip.IsLoopback() {
			dj.Hosts = append(dj.Hosts, net.JoinHostPort(ip.String(), "2376"))
		}
	}
	dj.Hosts = append(dj.Hosts, "fd://")
	if req.ipv6Subnet != "" {
		dj.IPv6, dj.FixedCIDRv6 = true, req.ipv6Subnet
	}
	out, err := json.MarshalIndent(dj, "", "  ")
	if err != nil {
		return err
	}

	rel := func(p string) string {
		if r, err := filepath.Rel(s.Dir, p); err == nil {
			return r
		}
		return p
	}
	if made {
		fmt.Fprintf(stderr, "made the CA %s (key %s, mode 0600): keep the key safe, every server trusts it\n",
			rel(filepath.Join(confDir, caFile)), rel(filepath.Join(confDir, caKeyFile)))
	} else {
		fmt.Fprintf(stderr, "used the CA %s\n", rel(filepath.Join(confDir, caFile)))
	}
	names := append(append([]string{}, req.names...), ipStrings(ips)...)
	fmt.Fprintf(stderr, "wrote %s/: %s, %s and %s (for %s, valid until %s), %s and %s (for bee2d)\n",
		rel(dir), caFile, serverCertFile, serverKeyFile, strings.Join(names, ", "),
		server.Cert.NotAfter.UTC().Format(time.DateOnly), clientCertFile, clientKeyFile)
	fmt.Fprintf(stderr, "on %s: copy %s, %s and %s to %s/ (the key mode 0600), save the JSON below as\n"+
		"/etc/docker/daemon.json and restart docker. Debian's docker.service passes -H fd:// itself, which\n"+
		"dockerd refuses beside \"hosts\": override its ExecStart with plain /usr/sbin/dockerd.\n",
		req.server, caFile, serverCertFile, serverKeyFile, remoteTLSDir)
	if hint := settingsHint(s, req); hint != "" {
		fmt.Fprint(stderr, hint)
	}
	fmt.Fprintf(stdout, "%s\n", out)
	return nil
}

// settingsHint says how the settings reach the server with these files, when they do not already.
func settingsHint(s *config.Settings, req *tlsInit) string {
	srv := s.Server(req.server)
	if srv.Docker == nil && len(srv.DNS.Private) > 0 {
		return "" // Bee2's default: tcp://<dns.private[0]>:2376 with conf/docker/<server>/ — these files.
	}
	host := req.ips[0].String()
	if len(req.names) > 0 {
		host = req.names[0]
	}
	d := filepath.Join("conf", "docker", req.server)
	return fmt.Sprintf("settings: servers.%s.docker: {host: \"tcp://%s\", tls: {ca: %s, cert: %s, key: %s}}\n",
		req.server, net.JoinHostPort(host, "2376"), filepath.Join(d, caFile), filepath.Join(d, clientCertFile), filepath.Join(d, clientKeyFile))
}

// loadOrMakeCA reads the CA of conf/docker/, or makes it when there is none.
func loadOrMakeCA(dir string, now time.Time) (*pki.KeyPair, bool, error) {
	certPath, keyPath := filepath.Join(dir, caFile), filepath.Join(dir, caKeyFile)
	_, certErr := os.Stat(certPath)
	_, keyErr := os.Stat(keyPath)
	switch {
	case certErr == nil && keyErr == nil:
		ca, err := pki.Load(certPath, keyPath)
		if err != nil {
			return nil, false, fmt.Errorf("CA: %w", err)
		}
		if now.After(ca.Cert.NotAfter) {
			return nil, false, fmt.Errorf("the CA %s expired on %s", certPath, ca.Cert.NotAfter.UTC().Format(time.DateOnly))
		}
		return ca, false, nil
	case certErr == nil || keyErr == nil:
		return nil, false, fmt.Errorf("%s and %s go together; one of them is missing", certPath, keyPath)
	}
	ca, err := pki.NewCA("bee2d CA", now, pki.CAValidity)
	if err != nil {
		return nil, false, err
	}
	if err := ca.Save(certPath, keyPath); err != nil {
		return nil, false, err
	}
	return ca, true, nil
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}

func ipStrings(ips []net.IP) []string {
	out := make([]string, len(ips))
	for i, ip := range ips {
		out[i] = ip.String()
	}
	return out
}
