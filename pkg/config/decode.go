package config

import (
	"fmt"
	"math"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

const nameRule = "a name must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"

var (
	topKeys     = []string{"servers", "docker", "applications", "jobs", "provisioner", "inventory", "openvpn", "security", "sync"}
	serverKeys  = []string{"docker", "dns", "ip", "ipv6", "plan", "os", "private_ip", "playbook", "region", "vpn", "mail"}
	connKeys    = []string{"host", "tls", "insecure", "ssh"}
	tlsKeys     = []string{"ca", "cert", "key"}
	sshKeys     = []string{"known_hosts", "identity"}
	dockerKeys  = []string{"prefix", "read_timeout", "dockerfiles", "secrets_dir", "backup"}
	backupKeys  = []string{"storage_dir", "volumes", "schedule", "retain", "compression", "stop"}
	retainKeys  = []string{"last", "daily", "weekly", "monthly"}
	serviceKeys = []string{"server", "build_dir", "image", "git", "branch", "git_dir", "dockerfile", "env", "link", "volumes", "ports", "schedule", "poll", "build_args", "reload", "env_file"}
)

// DefaultStorageDir is Bee2's docker.backup.<server>.storage_dir default.
const DefaultStorageDir = "./volumes"

// svcMeta keeps the nodes of one service that the cross-checks point at.
type svcMeta struct {
	svc         *Service
	section     string     // the server of the docker.<server> section it is in; "" at the top level
	path        string     // applications.haproxy
	key         *yaml.Node // the name
	server      *yaml.Node
	buildDir    *yaml.Node
	sourceGiven bool   // build_dir, git or image appears, valid or not
	gitGiven    bool   // git appears, valid or not
	gitOpts     []pair // branch, git_dir, dockerfile
	links       []strItem
	ports       []portItem
	refs        []envRef
	buildArgs   *yaml.Node // the build_args key
	reloads     []reloadMeta
	secrets     []secretUse // {secret: name} env values
	envFiles    []strItem
	jobRefs     []envRef // +name env values
	dbVars      []dbUse  // _type^password and friends
	c           containerMeta
	// traefik is the traefik.http key when given, with what it holds.
	traefik      *yaml.Node
	traefikHosts []string
	traefikPort  int
	traefikTLS   bool
}

// portItem is one ports entry: port is the host port.
type portItem struct {
	port      int
	container int
	proto     string
	hostIPs   []string // as written; none: the defaults (ipv4, and the first network's host IPv6)
	node      *yaml.Node
	path      string
}

// envRef is an env value $name.
type envRef struct {
	name string
	node *yaml.Node
	path string
}

type backupMeta struct {
	backup   *Backup
	key      *yaml.Node
	path     string
	schedule *yaml.Node
	stop     []strItem
}

func pos(n *yaml.Node) Pos {
	return Pos{Line: n.Line, Col: n.Column}
}

// settings decodes the root mapping.
func (d *decoder) settings(root *yaml.Node) *Settings {
	s := &Settings{Docker: Docker{
		Prefix:      DefaultPrefix,
		ReadTimeout: DefaultReadTimeout,
		Backup:      map[string]*Backup{},
	}}
	if root.Kind != yaml.MappingNode {
		d.errorf(root, "", "settings must be a mapping, got %s", describe(root))
		return s
	}
	for _, p := range d.pairs(root, "") {
		switch p.Key {
		case "servers":
			d.servers(s, p.Val)
		case "docker":
			d.docker(s, p.Val)
		case "applications":
			s.Applications = d.services(p.Val, "applications", KindApp)
		case "jobs":
			s.Jobs = d.services(p.Val, "jobs", KindJob)
		case "sync":
			d.syncSection(s, p.Val)
		case "provisioner", "inventory", "openvpn", "security":
			switch p.Key {
			case "provisioner":
				d.provisioner(s, p.Val)
			case "security":
				d.security(s, p.Val)
			}
			if s.Extra == nil {
				s.Extra = map[string]*yaml.Node{}
			}
			s.Extra[p.Key] = p.Val
		default:
			d.unknownKey(p, "", topKeys)
		}
	}
	return s
}

func (d *decoder) servers(s *Settings, n *yaml.Node) {
	entries, _ := d.mapping(n, "servers")
	for _, e := range entries {
		path := joinPath("servers", e.Key)
		if !ValidName(e.Key) {
			d.errorf(e.KNode, path, "invalid server name %q: %s", e.Key, nameRule)
		}
		srv := &Server{Name: e.Key, Pos: pos(e.KNode)}
		s.Servers = append(s.Servers, srv)
		fields, _ := d.mapping(e.Val, path)
		for _, f := range fields {
			fp := joinPath(path, f.Key)
			switch f.Key {
			case "docker":
				srv.Docker = d.connection(f, fp)
			case "dns":
				srv.DNS = d.dns(f.Val, fp)
			case "ip":
				d.serverIP(srv, f.Val, fp)
			case "ipv6":
				d.serverIPv6(srv, f.Val, fp)
				fallthrough
			case "plan", "os", "private_ip", "playbook", "region", "vpn", "mail":
				if srv.Extra == nil {
					srv.Extra = map[string]*yaml.Node{}
				}
				srv.Extra[f.Key] = f.Val
			default:
				d.unknownKey(f, path, serverKeys)
			}
		}
	}
}

func (d *decoder) connection(f pair, path string) *Connection {
	c := &Connection{Pos: pos(f.KNode)}
	fields, _ := d.mapping(f.Val, path)
	var scheme string
	var hostNode, tlsKey, insecureKey, sshKey *yaml.Node
	for _, p := range fields {
		fp := joinPath(path, p.Key)
		switch p.Key {
		case "host":
			h, ok := d.str(p.Val, fp)
			if !ok {
				continue
			}
			c.Host, hostNode = h, p.Val
			var msg string
			if scheme, msg = checkHost(h); msg != "" {
				d.errorf(p.Val, fp, "%s", msg)
			}
		case "tls":
			c.TLS, tlsKey = d.tls(p, fp), p.KNode
		case "insecure":
			c.Insecure, insecureKey = d.boolean(p.Val, fp), p.KNode
		case "ssh":
			c.SSH, sshKey = d.ssh(p, fp), p.KNode
		default:
			d.unknownKey(p, path, connKeys)
		}
	}
	if sshKey != nil && scheme != "ssh" {
		d.errorf(sshKey, joinPath(path, "ssh"), "ssh applies only to an ssh:// host%s", notScheme(scheme))
	}
	remote := scheme == "unix" || scheme == "ssh"
	switch {
	case tlsKey != nil && remote:
		d.errorf(tlsKey, joinPath(path, "tls"), "tls applies only to a tcp:// host, not %s://", scheme)
	case insecureKey != nil && c.Insecure && tlsKey != nil:
		d.errorf(insecureKey, joinPath(path, "insecure"), "insecure and tls exclude each other")
	case insecureKey != nil && c.Insecure && remote:
		d.errorf(insecureKey, joinPath(path, "insecure"), "insecure applies only to a tcp:// host, not %s://", scheme)
	case scheme == "tcp" && tlsKey == nil && !c.Insecure:
		// The Docker API over plain TCP is root on the host for anyone on the network: say so explicitly.
		d.errorf(hostNode, joinPath(path, "host"), "plain tcp:// needs tls (or insecure: true)")
	}
	return c
}

// checkHost returns the scheme of a Docker host URL, or a message saying what is wrong with it.
func checkHost(h string) (scheme, msg string) {
	u, err := url.Parse(h)
	if err != nil || (u.Scheme != "unix" && u.Scheme != "tcp" && u.Scheme != "ssh") {
		return "", fmt.Sprintf("docker host %q must be a unix://, tcp:// or ssh:// URL", h)
	}
	switch u.Scheme {
	case "unix":
		if u.Path == "" {
			return "", fmt.Sprintf("docker host %q names no socket path", h)
		}
	default:
		if u.Hostname() == "" {
			return "", fmt.Sprintf("docker host %q names no host", h)
		}
	}
	if _, ok := u.User.Password(); ok && u.Scheme == "ssh" {
		return "", fmt.Sprintf("docker host %q has a password: use a key (the SSH agent or docker.ssh.identity)", u.Redacted())
	}
	return u.Scheme, ""
}

func (d *decoder) tls(f pair, path string) *TLSFiles {
	fields, ok := d.mapping(f.Val, path)
	if !ok {
		return nil
	}
	t := &TLSFiles{}
	for _, p := range fields {
		fp := joinPath(path, p.Key)
		switch p.Key {
		case "ca":
			t.CA, _ = d.str(p.Val, fp)
		case "cert":
			t.Cert, _ = d.str(p.Val, fp)
		case "key":
			t.Key, _ = d.str(p.Val, fp)
		default:
			d.unknownKey(p, path, tlsKeys)
		}
	}
	var missing []string
	for _, m := range []struct{ name, val string }{{"ca", t.CA}, {"cert", t.Cert}, {"key", t.Key}} {
		if m.val == "" {
			missing = append(missing, m.name)
		}
	}
	if len(missing) > 0 {
		d.errorf(f.KNode, path, "tls needs ca, cert and key; missing %s", strings.Join(missing, ", "))
	}
	return t
}

// notScheme finishes "applies only to ..." with the scheme given, if any.
func notScheme(scheme string) string {
	if scheme == "" {
		return ", and host is not set"
	}
	return ", not " + scheme + "://"
}

func (d *decoder) ssh(f pair, path string) *SSHFiles {
	fields, ok := d.mapping(f.Val, path)
	if !ok {
		return nil
	}
	s := &SSHFiles{}
	for _, p := range fields {
		fp := joinPath(path, p.Key)
		switch p.Key {
		case "known_hosts":
			s.KnownHosts, _ = d.str(p.Val, fp)
		case "identity":
			s.Identity, _ = d.str(p.Val, fp)
		default:
			d.unknownKey(p, path, sshKeys)
		}
	}
	return s
}

func (d *decoder) dns(n *yaml.Node, path string) DNS {
	var dns DNS
	fields, _ := d.mapping(n, path)
	for _, p := range fields {
		fp := joinPath(path, p.Key)
		switch p.Key {
		case "private":
			dns.Private = values(d.strList(p.Val, fp))
		case "public":
			dns.Public = values(d.strList(p.Val, fp))
		default:
			if dns.Extra == nil {
				dns.Extra = map[string]*yaml.Node{}
			}
			dns.Extra[p.Key] = p.Val
		}
	}
	return dns
}

func (d *decoder) docker(s *Settings, n *yaml.Node) {
	fields, _ := d.mapping(n, "docker")
	for _, p := range fields {
		fp := joinPath("docker", p.Key)
		switch p.Key {
		case "prefix":
			if v, ok := d.prefix(p.Val, fp); ok {
				s.Docker.Prefix = v
			}
		case "read_timeout":
			v, ok := d.integer(p.Val, fp)
			switch {
			case !ok:
			case v <= 0:
				d.errorf(p.Val, fp, "read_timeout must be a positive number of seconds, got %d", v)
			case v > math.MaxInt64/int64(time.Second):
				d.errorf(p.Val, fp, "read_timeout %d is too long", v)
			default:
				s.Docker.ReadTimeout = time.Duration(v) * time.Second
			}
		case "dockerfiles":
			if v, ok := d.str(p.Val, fp); ok {
				if v == "" {
					d.errorf(p.Val, fp, "dockerfiles must not be empty")
					continue
				}
				d.dockerfiles, d.dockerfilesNode = v, p.Val
			}
		case "secrets_dir":
			if v, ok := d.str(p.Val, fp); ok {
				if v == "" {
					d.errorf(p.Val, fp, "secrets_dir must not be empty")
					continue
				}
				d.secretsDir, d.secretsDirNode = v, p.Val
			}
		case "backup":
			d.backups(s, p.Val, fp)
		default:
			d.section(s, p)
		}
	}
}

func (d *decoder) backups(s *Settings, n *yaml.Node, path string) {
	entries, _ := d.mapping(n, path)
	for _, e := range entries {
		bp := joinPath(path, e.Key)
		b := &Backup{Server: e.Key, StorageDir: DefaultStorageDir, Compression: CompressionNone, Pos: pos(e.KNode)}
		m := backupMeta{backup: b, key: e.KNode, path: bp}
		fields, _ := d.mapping(e.Val, bp)
		for _, p := range fields {
			fp := joinPath(bp, p.Key)
			switch p.Key {
			case "storage_dir":
				if v, ok := d.str(p.Val, fp); ok {
					if v == "" {
						d.errorf(p.Val, fp, "storage_dir must not be empty")
						continue
					}
					b.StorageDir = v
				}
			case "volumes":
				seen := map[string]bool{}
				for _, item := range d.strList(p.Val, fp) {
					switch {
					case !ValidName(item.val):
						d.errorf(item.node, item.path, "invalid volume name %q: %s", item.val, nameRule)
					case seen[item.val]:
						d.errorf(item.node, item.path, "volume %q is listed twice", item.val)
					default:
						seen[item.val] = true
						b.Volumes = append(b.Volumes, item.val)
					}
				}
			case "schedule":
				if v, ok := d.str(p.Val, fp); ok {
					b.Schedule, m.schedule = v, p.Val
				}
			case "retain":
				b.Retain = d.retain(p.Val, fp)
			case "compression":
				v, ok := d.str(p.Val, fp)
				if !ok {
					continue
				}
				c := Compression(v)
				if !slices.Contains(Compressions, c) {
					d.errorf(p.Val, fp, "unknown compression %q: none, gzip or zstd%s", v, didYouMean(v, compressionNames()))
					continue
				}
				b.Compression = c
			case "stop":
				m.stop = d.strList(p.Val, fp)
				b.Stop = values(m.stop)
			default:
				d.unknownKey(p, bp, backupKeys)
			}
		}
		s.Docker.Backup[e.Key] = b
		d.backupMeta = append(d.backupMeta, m)
	}
}

func compressionNames() []string {
	out := make([]string, len(Compressions))
	for i, c := range Compressions {
		out[i] = string(c)
	}
	return out
}

// retain decodes docker.backup.<server>.retain: counts of archives to keep.
func (d *decoder) retain(n *yaml.Node, path string) Retain {
	var r Retain
	fields, _ := d.mapping(n, path)
	for _, p := range fields {
		fp := joinPath(path, p.Key)
		var dst *int
		switch p.Key {
		case "last":
			dst = &r.Last
		case "daily":
			dst = &r.Daily
		case "weekly":
			dst = &r.Weekly
		case "monthly":
			dst = &r.Monthly
		default:
			d.unknownKey(p, path, retainKeys)
			continue
		}
		v, ok := d.integer(p.Val, fp)
		switch {
		case !ok:
		case v < 0:
			d.errorf(p.Val, fp, "%s must be a count of archives, 0 or more, got %d", p.Key, v)
		case v > 100000:
			d.errorf(p.Val, fp, "%s %d is too large", p.Key, v)
		default:
			*dst = int(v)
		}
	}
	return r
}

func (d *decoder) services(n *yaml.Node, section string, kind Kind) []*Service {
	return d.servicesOf(n, section, kind, "")
}

// servicesOf decodes applications or jobs: top-level ones (server "", each names its own) or those of one
// server's docker section.
func (d *decoder) servicesOf(n *yaml.Node, section string, kind Kind, server string) []*Service {
	var out []*Service
	entries, _ := d.mapping(n, section)
	for _, e := range entries {
		path := joinPath(section, e.Key)
		svc := &Service{Kind: kind, Name: e.Key, Server: server, Pos: pos(e.KNode)}
		m := &svcMeta{svc: svc, path: path, key: e.KNode, section: server}
		if !ValidName(e.Key) {
			d.errorf(e.KNode, path, "invalid name %q: %s", e.Key, nameRule)
		}
		fields, _ := d.mapping(e.Val, path)
		for _, f := range fields {
			d.serviceField(m, f)
		}
		out = append(out, svc)
		d.svcs = append(d.svcs, m)
	}
	return out
}

func (d *decoder) serviceField(m *svcMeta, f pair) {
	svc := m.svc
	fp := joinPath(m.path, f.Key)
	nonEmpty := func() (string, bool) { return d.nonEmpty(f, fp) }
	switch f.Key {
	case "server":
		v, ok := d.str(f.Val, fp)
		switch {
		case !ok:
		case m.section != "" && v != m.section:
			d.errorf(f.Val, fp, "server %q in the section of server %q: leave server out here", v, m.section)
		case m.section == "":
			svc.Server, m.server = v, f.Val
		}
	case "build_dir":
		m.sourceGiven = true
		if v, ok := nonEmpty(); ok {
			svc.BuildDir, m.buildDir = v, f.Val
		}
	case "image":
		m.sourceGiven = true
		svc.Image, _ = nonEmpty()
	case "git":
		m.sourceGiven, m.gitGiven = true, true
		if v, ok := nonEmpty(); ok {
			if msg := checkGitURL(v); msg != "" {
				d.errorf(f.Val, fp, "%s", msg)
				return
			}
			svc.Git = v
		}
	case "schedule", "poll":
		if svc.Kind != KindJob {
			d.errorf(f.KNode, fp, "%s is only for jobs", f.Key)
			return
		}
		v, ok := nonEmpty()
		if !ok {
			return
		}
		if f.Key == "schedule" {
			if _, err := ParseSchedule(v); err != nil {
				d.errorf(f.Val, fp, "invalid schedule %q: %v", v, err)
				return
			}
			svc.Schedule = v
			return
		}
		if dur, ok := d.period(f.Val, fp, "poll", v, "5m"); ok {
			svc.Poll = dur
		}
	case "branch", "git_dir", "dockerfile":
		m.gitOpts = append(m.gitOpts, f)
		v, ok := nonEmpty()
		if !ok {
			return
		}
		if f.Key != "branch" && !filepath.IsLocal(v) {
			// The build context is taken from the clone; a path out of it would send other files to the engine.
			d.errorf(f.Val, fp, "%s %q must be a relative path inside the repository", f.Key, v)
			return
		}
		switch f.Key {
		case "branch":
			svc.Branch = v
		case "git_dir":
			svc.GitDir = v
		case "dockerfile":
			svc.Dockerfile = v
		}
	case "build_args":
		m.buildArgs = f.KNode
		svc.BuildArgs = d.buildArgs(f.Val, fp)
	case "reload":
		if svc.Kind != KindApp {
			d.errorf(f.KNode, fp, "reload is only for applications")
			return
		}
		svc.Reload = d.reloads(f.Val, fp, m)
	case "env":
		svc.Env = d.env(f.Val, fp, m)
	case "env_file":
		// One file or a list, read in order after env once the whole file is decoded.
		if deref(f.Val).Kind == yaml.ScalarNode && !isNull(f.Val) {
			if v, ok := nonEmpty(); ok {
				m.envFiles = append(m.envFiles, strItem{val: v, node: f.Val, path: fp})
				svc.EnvFiles = append(svc.EnvFiles, v)
			}
			return
		}
		for _, item := range d.strList(f.Val, fp) {
			if item.val == "" {
				d.errorf(item.node, item.path, "env_file must not be empty")
				continue
			}
			m.envFiles = append(m.envFiles, item)
			svc.EnvFiles = append(svc.EnvFiles, item.val)
		}
	case "link":
		m.links = d.strList(f.Val, fp)
		svc.Link = values(m.links)
	case "volumes":
		svc.Volumes = d.checkedList(f.Val, fp, checkBind)
	case "ports":
		items, _ := d.list(f.Val, fp, "ports")
		for i, item := range items {
			if p, ok := d.port(item, indexPath(fp, i)); ok {
				m.ports = append(m.ports, p)
			}
		}
	default:
		if !d.containerField(m, f) {
			d.unknownKey(f, m.path, append(slices.Clone(serviceKeys), containerKeys...))
		}
	}
}

// strItem is one string of a list with its place.
type strItem struct {
	val  string
	node *yaml.Node
	path string
}

// strList returns the strings of a list; null is an empty list. Items that are not strings are reported and
// left out.
func (d *decoder) strList(n *yaml.Node, path string) []strItem {
	items, _ := d.list(n, path, "strings")
	var out []strItem
	for i, item := range items {
		ip := indexPath(path, i)
		if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
			d.errorf(item, ip, "expected a string, got %s", describe(item))
			continue
		}
		out = append(out, strItem{val: item.Value, node: item, path: ip})
	}
	return out
}

func values(items []strItem) []string {
	if items == nil {
		return nil
	}
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.val
	}
	return out
}

// period reads a duration of at least a second (a poll, an interval), or says what is wrong with v.
func (d *decoder) period(n *yaml.Node, path, what, v, example string) (time.Duration, bool) {
	dur, err := time.ParseDuration(v)
	if err != nil || dur < time.Second {
		d.errorf(n, path, "invalid %s %q: want a duration of at least 1s such as %s", what, v, example)
		return 0, false
	}
	return dur, true
}

// nonEmpty reads the string value of f; an empty one is reported and not ok, null is not ok.
func (d *decoder) nonEmpty(f pair, path string) (string, bool) {
	v, ok := d.str(f.Val, path)
	if ok && v == "" {
		d.errorf(f.Val, path, "%s must not be empty", f.Key)
		return "", false
	}
	return v, ok
}

// prefix reads a container name prefix (docker.prefix, docker.<server>.prefix).
func (d *decoder) prefix(n *yaml.Node, path string) (string, bool) {
	v, ok := d.str(n, path)
	if ok && !ValidName(v) {
		d.errorf(n, path, "invalid prefix %q: %s", v, nameRule)
		return "", false
	}
	return v, ok
}

// checkedList returns the strings of a list that check accepts; check says what is wrong with one, or "".
func (d *decoder) checkedList(n *yaml.Node, path string, check func(string) string) []string {
	var out []string
	for _, item := range d.strList(n, path) {
		if msg := check(item.val); msg != "" {
			d.errorf(item.node, item.path, "%s", msg)
			continue
		}
		out = append(out, item.val)
	}
	return out
}
