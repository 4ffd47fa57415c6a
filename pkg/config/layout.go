package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Bee2's later layout (September 2018 on) moved containers under one docker.<server> section per server; the
// 2017 layout keeps top-level applications and jobs with a server key. Both may appear in one file.

var (
	sectionKeys  = []string{"prefix", "networks", "applications", "jobs", "env_keys"}
	networkKeys  = []string{"ipv4", "ipv6", "masquerade", "bridge", "ifprefix"}
	ipv6Keys     = []string{"docker", "subnet"}
	ipv6DockKeys = []string{"suffix_bridge", "suffix_net", "static_web"}
	securityKeys = []string{"pgp_id", "folder", "password_store"}
)

// EnvKeysAsWritten is the env_keys value that keeps plain env keys as written.
const EnvKeysAsWritten = "as-written"

// sectionMeta keeps the nodes of one docker.<server> section for the checks that need the whole file.
type sectionMeta struct {
	server  string
	key     *yaml.Node
	path    string
	section *Section
}

// section decodes docker.<server>: what one server runs.
func (d *decoder) section(s *Settings, p pair) {
	path := joinPath("docker", p.Key)
	if deref(p.Val).Kind != yaml.MappingNode {
		// A misspelt global key (read_timout: 900) lands here: say both readings.
		d.errorf(p.KNode, path, "unknown key %q%s: docker's own keys are %s, and any other key is a server's section, which must be a mapping, got %s",
			p.Key, didYouMean(p.Key, dockerKeys), strings.Join(dockerKeys, ", "), describe(p.Val))
		return
	}
	if !ValidName(p.Key) {
		d.errorf(p.KNode, path, "invalid server name %q: %s", p.Key, nameRule)
		return
	}
	sec := &Section{Pos: pos(p.KNode)}
	d.sections = append(d.sections, sectionMeta{server: p.Key, key: p.KNode, path: path, section: sec})
	for _, f := range d.pairs(deref(p.Val), path) {
		fp := joinPath(path, f.Key)
		switch f.Key {
		case "prefix":
			if v, ok := d.prefix(f.Val, fp); ok {
				sec.Prefix = v
			}
		case "networks":
			sec.Networks = d.networks(f.Val, fp)
		case "applications":
			d.sectionServices(s, f.Val, fp, KindApp, p.Key)
		case "jobs":
			d.sectionServices(s, f.Val, fp, KindJob, p.Key)
		case "env_keys":
			v, ok := d.str(f.Val, fp)
			switch {
			case !ok:
			case v == EnvKeysAsWritten:
				sec.EnvKeysAsWritten = true
			case v == "upper":
			default:
				d.errorf(f.Val, fp, "env_keys must be %q (keys as written, as Bee2's 2021 code sent them) or \"upper\" (the default), got %q", EnvKeysAsWritten, v)
			}
		default:
			if d.anchorUsed(f.Val) {
				// Bee2's README keeps an anchor here (mastodon-config: &mastodon_config) for containers to
				// merge: the value is used through its aliases, the key itself means nothing.
				continue
			}
			d.unknownKey(f, path, sectionKeys)
		}
	}
}

func (d *decoder) sectionServices(s *Settings, n *yaml.Node, path string, kind Kind, server string) {
	list := d.servicesOf(n, path, kind, server)
	if kind == KindApp {
		s.Applications = append(s.Applications, list...)
	} else {
		s.Jobs = append(s.Jobs, list...)
	}
}

// anchorUsed tells whether n carries an anchor that an alias elsewhere in the file refers to.
func (d *decoder) anchorUsed(n *yaml.Node) bool {
	if d.aliased == nil {
		d.aliased = map[*yaml.Node]bool{}
		var walk func(n *yaml.Node)
		seen := map[*yaml.Node]bool{}
		walk = func(n *yaml.Node) {
			if seen[n] {
				return
			}
			seen[n] = true
			if n.Kind == yaml.AliasNode && n.Alias != nil {
				d.aliased[n.Alias] = true
			}
			for _, c := range n.Content {
				walk(c)
			}
		}
		if d.root != nil {
			walk(d.root)
		}
	}
	return n.Anchor != "" && d.aliased[n]
}

// networks decodes docker.<server>.networks.
func (d *decoder) networks(n *yaml.Node, path string) []*Network {
	var out []*Network
	entries, _ := d.mapping(n, path)
	for _, e := range entries {
		np := joinPath(path, e.Key)
		if !ValidName(e.Key) {
			d.errorf(e.KNode, np, "invalid network name %q: %s", e.Key, nameRule)
			continue
		}
		if e.Key == "network" {
			d.errorf(e.KNode, np, "%q names the default network <prefix>-network, which bee2d makes itself; choose another name", e.Key)
			continue
		}
		nw := &Network{Name: e.Key, Pos: pos(e.KNode)}
		fields, _ := d.mapping(e.Val, np)
		for _, f := range fields {
			fp := joinPath(np, f.Key)
			switch f.Key {
			case "ipv4", "ipv6":
				if f.Key == "ipv6" {
					// Bee2 turned IPv6 on when the key was there, even without a value.
					nw.EnableIPv6 = true
				}
				v, ok := d.str(f.Val, fp)
				if !ok {
					continue
				}
				if msg := checkSubnet(v, f.Key == "ipv6"); msg != "" {
					d.errorf(f.Val, fp, "%s", msg)
					continue
				}
				if f.Key == "ipv4" {
					nw.IPv4 = v
				} else {
					nw.IPv6 = v
				}
			case "masquerade":
				if b, ok := d.boolean11(f.Val, fp); ok {
					nw.Masquerade = &b
				}
			case "bridge", "ifprefix":
				v, ok := d.str(f.Val, fp)
				if !ok {
					continue
				}
				if !bridgeName(v) {
					d.errorf(f.Val, fp, "invalid %s %q: a Linux interface name of 1 to 15 letters, digits, '-', '_' or '.'", f.Key, v)
					continue
				}
				if f.Key == "bridge" {
					nw.Bridge = v
				} else {
					nw.IfPrefix = v
				}
			default:
				d.unknownKey(f, np, networkKeys)
			}
		}
		out = append(out, nw)
	}
	return out
}

// checkSubnet says what is wrong with a network's subnet, or "".
func checkSubnet(v string, six bool) string {
	p, err := netip.ParsePrefix(v)
	if err != nil {
		if a, aerr := netip.ParseAddr(v); aerr == nil {
			// Bee2's specs write 172.20.0.1: Docker wants the subnet with its length.
			bits := 24
			if a.Is6() {
				bits = 64
			}
			return fmt.Sprintf("subnet %q has no prefix length: write it as a CIDR such as %s", v, netip.PrefixFrom(a, bits).Masked())
		}
		return fmt.Sprintf("invalid subnet %q: want a CIDR such as 172.20.0.0/24", v)
	}
	if six != p.Addr().Is6() || p.Addr().Is4In6() {
		want := "an IPv4"
		if six {
			want = "an IPv6"
		}
		return fmt.Sprintf("subnet %q is not %s subnet", v, want)
	}
	return ""
}

// bridgeName tells whether v can name a Linux network interface.
func bridgeName(v string) bool {
	if v == "" || len(v) > 15 {
		return false
	}
	return strings.IndexFunc(v, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
	}) < 0
}

// yaml11Bools are the words YAML 1.1 (Bee2's Ruby) reads as booleans and YAML 1.2 as strings.
var yaml11Bools = map[string]bool{
	"y": true, "Y": true, "yes": true, "Yes": true, "YES": true, "on": true, "On": true, "ON": true,
	"n": false, "N": false, "no": false, "No": false, "NO": false, "off": false, "Off": false, "OFF": false,
}

// boolean11 reads a boolean as Bee2's YAML 1.1 did: true/false and also yes/no/on/off. ok is false for null
// and for anything else, which is reported.
func (d *decoder) boolean11(n *yaml.Node, path string) (value, ok bool) {
	n = deref(n)
	if isNull(n) {
		return false, false
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" && n.Style == 0 {
		if b, is := yaml11Bools[n.Value]; is {
			return b, true
		}
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		d.errorf(n, path, "expected a boolean (true or false), got %s", describe(n))
		return false, false
	}
	return d.boolean(n, path), true
}

// serverIP decodes servers.<s>.ip: host addresses by network name (the later layout).
func (d *decoder) serverIP(srv *Server, n *yaml.Node, path string) {
	entries, _ := d.mapping(n, path)
	for _, e := range entries {
		ep := joinPath(path, e.Key)
		var h HostIP
		v := deref(e.Val)
		if v.Kind == yaml.ScalarNode {
			// Name.com's layout: ip.<name>: <address>.
			s, ok := d.str(v, ep)
			if !ok {
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				d.errorf(v, ep, "invalid address %q", s)
				continue
			}
			if a.Is4() {
				h.IPv4 = s
			} else {
				h.IPv6 = s
			}
		} else {
			fields, _ := d.mapping(v, ep)
			for _, f := range fields {
				fp := joinPath(ep, f.Key)
				switch f.Key {
				case "ipv4", "ipv6":
					s, ok := d.str(f.Val, fp)
					if !ok {
						continue
					}
					a, err := netip.ParseAddr(s)
					if err != nil || a.Is4() != (f.Key == "ipv4") {
						d.errorf(f.Val, fp, "invalid %s address %q", f.Key, s)
						continue
					}
					if f.Key == "ipv4" {
						h.IPv4 = s
					} else {
						h.IPv6 = s
					}
				default:
					d.unknownKey(f, ep, []string{"ipv4", "ipv6"})
				}
			}
		}
		if srv.IP == nil {
			srv.IP = map[string]HostIP{}
		}
		srv.IP[e.Key] = h
	}
}

// serverIPv6 decodes servers.<s>.ipv6: the suffixes of the Docker networks' addresses.
func (d *decoder) serverIPv6(srv *Server, n *yaml.Node, path string) {
	fields, _ := d.mapping(n, path)
	for _, f := range fields {
		fp := joinPath(path, f.Key)
		switch f.Key {
		case "docker":
			dfields, _ := d.mapping(f.Val, fp)
			for _, g := range dfields {
				gp := joinPath(fp, g.Key)
				switch g.Key {
				case "suffix_bridge":
					d.str(g.Val, gp) // the Ansible role's; kept for it
				case "suffix_net":
					srv.IPv6Docker.SuffixNet, _ = d.str(g.Val, gp)
				case "static_web":
					srv.IPv6Docker.StaticWeb, _ = d.str(g.Val, gp)
				default:
					d.unknownKey(g, fp, ipv6DockKeys)
				}
			}
		case "subnet":
			d.str(f.Val, fp)
		default:
			d.unknownKey(f, path, ipv6Keys)
		}
	}
}

// security decodes Bee2's security section.
func (d *decoder) security(s *Settings, n *yaml.Node) {
	fields, _ := d.mapping(n, "security")
	for _, f := range fields {
		fp := joinPath("security", f.Key)
		switch f.Key {
		case "pgp_id":
			// Ruby's YAML read an all-digit id as a number; the id is text either way.
			if v := deref(f.Val); v.Kind == yaml.ScalarNode && (v.ShortTag() == "!!int" || v.ShortTag() == "!!str") {
				s.Security.PGPID = v.Value
				d.pgpID = v
			} else if !isNull(v) {
				d.errorf(v, fp, "expected a key id, got %s", describe(v))
			}
		case "folder":
			if v, ok := d.str(f.Val, fp); ok {
				if !filepath.IsLocal(v) {
					d.errorf(f.Val, fp, "folder %q must be a relative path", v)
					continue
				}
				s.Security.Folder = v
			}
		case "password_store":
			s.Security.PasswordStore, _ = d.str(f.Val, fp)
		default:
			d.unknownKey(f, "security", securityKeys)
		}
	}
}

// provisioner reads what bee2d uses of Bee2's provisioner section: the state file (the servers' IPv6
// subnets). The rest is kept as written.
func (d *decoder) provisioner(s *Settings, n *yaml.Node) {
	if deref(n).Kind != yaml.MappingNode {
		return
	}
	for _, f := range d.pairs(deref(n), "provisioner") {
		if f.Key == "state_file" {
			if v, ok := d.str(f.Val, "provisioner.state_file"); ok && v != "" {
				s.StateFile, d.stateFileNode = v, f.Val
			}
		}
	}
}

// layout finishes the per-server sections once the whole file is read: servers that only a section names,
// names defined twice on one server, and the state file's subnets.
func (d *decoder) layout(s *Settings) {
	for _, sm := range d.sections {
		if slices.Contains(dockerKeys, sm.server) {
			continue // decoded as docker's own key
		}
		srv := s.Server(sm.server)
		if srv == nil {
			var names []string
			for _, x := range s.Servers {
				names = append(names, x.Name)
			}
			srv = &Server{Name: sm.server, Pos: pos(sm.key), Implicit: true}
			s.Servers = append(s.Servers, srv)
			d.warnf(sm.key, sm.path, "no servers.%s entry: reached like a server without a docker key (DOCKER_HOST, else the local socket)%s",
				sm.server, didYouMean(sm.server, names))
		}
		if srv.Section != nil {
			continue // pairs() reported the duplicate key
		}
		srv.Section = sm.section
	}
	for _, srv := range s.Servers {
		if slices.Contains(dockerKeys, srv.Name) {
			d.errorAt(srv.Pos.Line, srv.Pos.Col, joinPath("servers", srv.Name),
				"a server cannot be named %q: docker.%s is docker's own key, so its docker section could not be told apart", srv.Name, srv.Name)
		}
		bridges := map[string]*Network{}
		for _, nw := range s.Networks(srv.Name) {
			if h, ok := srv.IP[nw.Name]; ok {
				nw.HostIPv4, nw.HostIPv6 = h.IPv4, h.IPv6
			}
			if nw.Bridge == "" {
				continue
			}
			if first := bridges[nw.Bridge]; first != nil {
				// The engine refuses a second network on one bridge (Bee2's multinet spec names br10 twice).
				d.errorAt(nw.Pos.Line, nw.Pos.Col, joinPath(joinPath(joinPath("docker", srv.Name), "networks"), nw.Name),
					"bridge %s is also network %s's (line %d): each network needs a bridge of its own", nw.Bridge, first.Name, first.Pos.Line)
				continue
			}
			bridges[nw.Bridge] = nw
		}
	}
	for _, list := range [][]*Service{s.Applications, s.Jobs} {
		for _, svc := range list {
			if srv := s.Server(svc.Server); srv != nil && srv.Section != nil {
				svc.envKeysAsWritten = srv.Section.EnvKeysAsWritten
			}
		}
	}
	d.checkDuplicates()
	d.readStateFile(s)
}

// checkDuplicates reports an application or job defined twice for one server: once in each layout.
func (d *decoder) checkDuplicates() {
	type key struct {
		kind         Kind
		server, name string
	}
	first := map[key]*svcMeta{}
	for _, m := range d.svcs {
		if m.svc.Server == "" {
			continue
		}
		k := key{m.svc.Kind, m.svc.Server, m.svc.Name}
		if f := first[k]; f != nil {
			d.errorf(m.key, m.path, "%s %q of server %s is also defined at line %d (%s)", kindWord(m.svc.Kind), m.svc.Name, m.svc.Server, f.key.Line, f.path)
			continue
		}
		first[k] = m
	}
}

// readStateFile reads servers.<s>.ipv6.subnet from the provisioner's state file, when anything needs it: the
// default network of a server with ipv6.docker.suffix_net, or an ipv6_web container. Bee2 read the path from
// its working directory; bee2d looks beside the settings file first.
func (d *decoder) readStateFile(s *Settings) {
	need := false
	for _, srv := range s.Servers {
		if srv.Section != nil && srv.IPv6Docker.SuffixNet != "" {
			need = true
		}
	}
	for _, m := range d.svcs {
		if m.c.ipv6Web != nil {
			need = true
		}
	}
	if !need || d.stateFileNode == nil {
		return
	}
	file := s.ResolvePath(s.StateFile)
	if _, err := os.Stat(file); err != nil && !filepath.IsAbs(s.StateFile) {
		if _, werr := os.Stat(s.StateFile); werr == nil {
			file = s.StateFile
		}
	}
	data, err := readSmall(file)
	if err != nil {
		d.errorf(d.stateFileNode, "provisioner.state_file", "%s", fileProblem(s, file, err))
		return
	}
	var state struct {
		Servers map[string]*struct {
			IPv6 *struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"ipv6"`
		} `yaml:"servers"`
	}
	if err := yaml.Unmarshal(data, &state); err != nil {
		d.errorf(d.stateFileNode, "provisioner.state_file", "%s: %v", showPath(s, file), err)
		return
	}
	for _, srv := range s.Servers {
		if st := state.Servers[srv.Name]; st != nil && st.IPv6 != nil {
			srv.StateIPv6Subnet = st.IPv6.Subnet
		}
	}
	s.Inputs = append(s.Inputs, Input{Path: file})
	if sum, err := fingerprint(file); err == nil {
		s.Inputs[len(s.Inputs)-1].Sum = sum
	}
}

// warnf records a problem that does not stop the settings from loading, placed like an error.
func (d *decoder) warnf(n *yaml.Node, path, format string, args ...any) {
	d.warnings = append(d.warnings, Warning{
		File: fmt.Sprintf("%s:%d:%d", d.file, n.Line, n.Column),
		Msg:  path + ": " + fmt.Sprintf(format, args...),
	})
}
