package config

import (
	"fmt"
	"math"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/docker/go-units"
	"go.yaml.in/yaml/v3"
)

// The container keys beyond Bee2's 2017 ones: those Bee2 grew for Mastodon, TT-RSS and friends (cmd, labels,
// traefik, networks, static_ip, ipv6_web, ipv4, internal_dns, capadd, hostname, db), and the runtime options
// real stacks ask for. Both layouts take all of them.
var containerKeys = []string{"cmd", "entrypoint", "user", "working_dir", "hostname", "labels", "traefik", "networks",
	"static_ip", "ipv6_web", "ipv4", "internal_dns", "capadd", "db", "memory", "cpus", "pids_limit", "restart",
	"stop_signal", "stop_grace_period", "read_only", "tmpfs", "sysctls", "ulimits", "devices", "log", "healthcheck", "deploy"}

// containerMeta keeps the nodes of a service's container keys that the cross-checks point at.
type containerMeta struct {
	networks    []strItem
	staticIP    *yaml.Node
	staticOrder []string // ipv4, ipv6 in the order written (internal_dns adds them so)
	ipv6Web     *yaml.Node
	ipv4        string
	internalDNS []pair
	db          []strItem
}

var (
	capName     = regexp.MustCompile(`^(CAP_)?[A-Z][A-Z0-9_]*$`)
	hostnameRE  = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9_-]{0,61}[a-zA-Z0-9])?)*$`)
	sysctlRE    = regexp.MustCompile(`^[a-z0-9_]+([./][a-zA-Z0-9_-]+)+$`)
	labelKeyRE  = regexp.MustCompile(`^[^\s=]+$`)
	dbTypeRE    = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	restartRE   = regexp.MustCompile(`^(no|always|unless-stopped|on-failure(:[0-9]+)?)$`)
	ulimitNames = []string{"core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss", "rtprio", "rttime", "sigpending", "stack"}
	signalNames = []string{"HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM",
		"STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS"}
)

// minMemory is the smallest memory limit the engine accepts.
const minMemory = 6 << 20

// containerField decodes one of containerKeys; it reports whether f was one.
func (d *decoder) containerField(m *svcMeta, f pair) bool {
	svc, fp := m.svc, joinPath(m.path, f.Key)
	str := func() (string, bool) { return d.nonEmpty(f, fp) }
	switch f.Key {
	case "cmd", "entrypoint":
		args := d.command(f.Val, fp)
		if f.Key == "cmd" {
			svc.Cmd = args
		} else {
			svc.Entrypoint = args
		}
	case "user":
		svc.User, _ = str()
	case "working_dir":
		if v, ok := str(); ok {
			if !path.IsAbs(v) {
				d.errorf(f.Val, fp, "working_dir %q must be an absolute path", v)
				return true
			}
			svc.WorkingDir = v
		}
	case "hostname":
		if v, ok := str(); ok {
			if !hostnameRE.MatchString(v) || len(v) > 253 {
				d.errorf(f.Val, fp, "invalid hostname %q", v)
				return true
			}
			svc.Hostname = v
		}
	case "labels":
		d.labels(svc, f.Val, fp)
	case "traefik":
		d.traefik(m, f.Val, fp)
	case "networks":
		m.c.networks = d.strList(f.Val, fp)
		seen := map[string]bool{}
		for _, n := range m.c.networks {
			if seen[n.val] {
				d.errorf(n.node, n.path, "network %q is listed twice", n.val)
				continue
			}
			seen[n.val] = true
			svc.Networks = append(svc.Networks, n.val)
		}
	case "static_ip":
		m.c.staticIP = f.KNode
		fields, _ := d.mapping(f.Val, fp)
		for _, g := range fields {
			gp := joinPath(fp, g.Key)
			if g.Key != "ipv4" && g.Key != "ipv6" {
				d.unknownKey(g, fp, []string{"ipv4", "ipv6"})
				continue
			}
			v, ok := d.str(g.Val, gp)
			if !ok {
				continue
			}
			a, err := netip.ParseAddr(v)
			if err != nil || a.Is4() != (g.Key == "ipv4") || a.Zone() != "" {
				d.errorf(g.Val, gp, "invalid %s address %q", g.Key, v)
				continue
			}
			m.c.staticOrder = append(m.c.staticOrder, g.Key)
			if g.Key == "ipv4" {
				svc.StaticIPv4 = v
			} else {
				svc.StaticIPv6 = v
			}
		}
	case "ipv6_web":
		if b, ok := d.boolean11(f.Val, fp); ok && b {
			m.c.ipv6Web = f.KNode
		}
	case "ipv4":
		if v, ok := str(); ok {
			if a, err := netip.ParseAddr(v); err != nil || !a.Is4() {
				d.errorf(f.Val, fp, "invalid ipv4 address %q", v)
				return true
			}
			m.c.ipv4 = v
		}
	case "internal_dns":
		entries, _ := d.mapping(f.Val, fp)
		for _, e := range entries {
			if !hostnameRE.MatchString(e.Key) {
				d.errorf(e.KNode, joinPath(fp, e.Key), "invalid host name %q", e.Key)
				continue
			}
			if _, ok := d.str(e.Val, joinPath(fp, e.Key)); ok {
				m.c.internalDNS = append(m.c.internalDNS, e)
			}
		}
	case "capadd":
		for _, c := range d.strList(f.Val, fp) {
			if c.val != "ALL" && !capName.MatchString(c.val) {
				d.errorf(c.node, c.path, "invalid capability %q: write it as NET_ADMIN", c.val)
				continue
			}
			svc.CapAdd = append(svc.CapAdd, c.val)
		}
	case "db":
		m.c.db = d.strList(f.Val, fp)
		for _, item := range m.c.db {
			typ, name, hasName := strings.Cut(item.val, ":")
			switch {
			case !dbTypeRE.MatchString(typ):
				d.errorf(item.node, item.path, "invalid database type %q: want a word such as postgres or mysql", typ)
			case hasName && !ValidName(name):
				d.errorf(item.node, item.path, "invalid database name %q: %s", name, nameRule)
			default:
				if !hasName {
					name = svc.Name
				}
				svc.DB = append(svc.DB, DBRef{Type: typ, Name: name})
			}
		}
	case "memory":
		n := deref(f.Val)
		var v int64
		switch {
		case isNull(n):
			return true
		case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int":
			v, _ = d.integer(n, fp)
		case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
			b, err := units.RAMInBytes(n.Value)
			if err != nil {
				d.errorf(n, fp, "invalid memory size %q: want bytes, or a number with k, m or g such as 512m", n.Value)
				return true
			}
			v = b
		default:
			d.errorf(n, fp, "expected a memory size such as 512m, got %s", describe(n))
			return true
		}
		if v < minMemory {
			d.errorf(n, fp, "memory %s is below the engine's minimum of 6m", n.Value)
			return true
		}
		svc.Memory = v
	case "cpus":
		n := deref(f.Val)
		var v float64
		if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!int" && n.ShortTag() != "!!float") || n.Decode(&v) != nil {
			d.errorf(n, fp, "expected a number of CPUs such as 1.5, got %s", describe(n))
			return true
		}
		if !(v > 0) || v > 1024 || math.IsInf(v, 0) {
			d.errorf(n, fp, "cpus %s must be more than 0 and at most 1024", n.Value)
			return true
		}
		svc.NanoCPUs = int64(math.Round(v * 1e9))
	case "pids_limit":
		if v, ok := d.integer(f.Val, fp); ok {
			if v == 0 || v < -1 {
				d.errorf(f.Val, fp, "pids_limit must be a positive number of processes, or -1 for none, got %d", v)
				return true
			}
			svc.PidsLimit = v
		}
	case "restart":
		if v, ok := str(); ok {
			if !restartRE.MatchString(v) {
				d.errorf(f.Val, fp, "invalid restart policy %q: no, always, unless-stopped, on-failure or on-failure:N", v)
				return true
			}
			svc.Restart = v
		}
	case "stop_signal":
		n := deref(f.Val)
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
			v, _ := d.integer(n, fp)
			if v < 1 || v > 64 {
				d.errorf(n, fp, "signal %d is out of range 1-64", v)
				return true
			}
			svc.StopSignal = n.Value
			return true
		}
		if v, ok := str(); ok {
			sig, msg := checkSignal(v)
			if msg != "" {
				d.errorf(f.Val, fp, "%s", msg)
				return true
			}
			svc.StopSignal = sig
		}
	case "stop_grace_period":
		n := deref(f.Val)
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!int" {
			v, _ := d.integer(n, fp)
			if v < 1 || v > 3600 {
				d.errorf(n, fp, "stop_grace_period %d must be 1 to 3600 seconds", v)
				return true
			}
			svc.StopGrace = time.Duration(v) * time.Second
			return true
		}
		if v, ok := str(); ok {
			dur, err := time.ParseDuration(v)
			if err != nil || dur < time.Second || dur > time.Hour || dur%time.Second != 0 {
				d.errorf(f.Val, fp, "invalid stop_grace_period %q: want whole seconds from 1s to 1h, such as 30s or 2m", v)
				return true
			}
			svc.StopGrace = dur
		}
	case "read_only":
		svc.ReadOnly, _ = d.boolean11(f.Val, fp)
	case "tmpfs":
		svc.Tmpfs = d.tmpfs(f.Val, fp)
	case "sysctls":
		svc.Sysctls = d.sysctls(f.Val, fp)
	case "ulimits":
		svc.Ulimits = d.ulimits(f.Val, fp)
	case "devices":
		svc.Devices = d.checkedList(f.Val, fp, checkDevice)
	case "log":
		svc.Log = d.logConfig(f.Val, fp)
	case "healthcheck", "deploy":
		if svc.Kind != KindApp {
			d.errorf(f.KNode, fp, "%s is only for applications: a job runs to its end", f.Key)
			return true
		}
		if f.Key == "deploy" {
			svc.Deploy = d.deploy(f, fp)
		} else {
			svc.Health = d.healthcheck(f.Val, fp)
		}
	default:
		return false
	}
	return true
}

// command reads cmd or entrypoint: a string is split on whitespace as Bee2 did (no quoting); a list is taken
// as the exact arguments.
func (d *decoder) command(n *yaml.Node, path string) []string {
	n = deref(n)
	switch {
	case isNull(n):
		return nil
	case n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str":
		args := strings.Fields(n.Value)
		if len(args) == 0 {
			d.errorf(n, path, "empty command")
			return nil
		}
		return args
	case n.Kind == yaml.SequenceNode:
		var out []string
		for i, item := range n.Content {
			item = deref(item)
			if item.Kind != yaml.ScalarNode || item.ShortTag() == "!!null" {
				d.errorf(item, indexPath(path, i), "expected a string, got %s", describe(item))
				continue
			}
			if strings.ContainsRune(item.Value, 0) {
				d.errorf(item, indexPath(path, i), "argument holds a NUL character")
				continue
			}
			out = append(out, item.Value)
		}
		if len(out) == 0 {
			d.errorf(n, path, "empty command")
			return nil
		}
		return out
	}
	d.errorf(n, path, "expected a string or a list of arguments, got %s", describe(n))
	return nil
}

// labels reads labels: keys and scalar values, verbatim (numbers and booleans as written).
func (d *decoder) labels(svc *Service, n *yaml.Node, path string) {
	entries, _ := d.mapping(n, path)
	for _, e := range entries {
		kp := joinPath(path, e.Key)
		v := deref(e.Val)
		switch {
		case !labelKeyRE.MatchString(e.Key):
			d.errorf(e.KNode, kp, "invalid label %q", e.Key)
			continue
		case strings.HasPrefix(e.Key, "io.bee2d."):
			d.errorf(e.KNode, kp, "labels under io.bee2d. are bee2d's own: they say which containers it manages and cannot be set")
			continue
		case v.Kind != yaml.ScalarNode:
			d.errorf(v, kp, "expected a label value, got %s", describe(v))
			continue
		}
		if svc.Labels == nil {
			svc.Labels = map[string]string{}
		}
		if v.ShortTag() != "!!null" {
			svc.Labels[e.Key] = v.Value
		} else {
			svc.Labels[e.Key] = ""
		}
	}
}

// traefik reads traefik.http {hosts, port, tls} into Traefik v2 router and service labels named after the
// container. Bee2 lost them when labels was not also set; here they are always added.
func (d *decoder) traefik(m *svcMeta, n *yaml.Node, path string) {
	fields, _ := d.mapping(n, path)
	for _, f := range fields {
		fp := joinPath(path, f.Key)
		if f.Key != "http" {
			d.unknownKey(f, path, []string{"http"})
			continue
		}
		m.traefik = f.KNode
		hfields, _ := d.mapping(f.Val, fp)
		for _, h := range hfields {
			hp := joinPath(fp, h.Key)
			switch h.Key {
			case "hosts":
				for _, item := range d.strList(h.Val, hp) {
					if !hostnameRE.MatchString(item.val) {
						d.errorf(item.node, item.path, "invalid host %q", item.val)
						continue
					}
					m.traefikHosts = append(m.traefikHosts, item.val)
				}
			case "port":
				if v, ok := d.integer(h.Val, hp); ok {
					if v < 1 || v > 65535 {
						d.errorf(h.Val, hp, "port %d is out of range 1-65535", v)
						continue
					}
					m.traefikPort = int(v)
				}
			case "tls":
				hv := deref(h.Val)
				switch {
				case hv.Kind == yaml.ScalarNode && hv.ShortTag() == "!!str" && hv.Value == "enabled":
					m.traefikTLS = true
				case hv.Kind == yaml.ScalarNode && hv.ShortTag() == "!!bool":
					m.traefikTLS = d.boolean(hv, hp)
				default:
					d.errorf(hv, hp, `tls must be "enabled" (or true, false), got %s`, describe(hv))
				}
			default:
				d.unknownKey(h, fp, []string{"hosts", "port", "tls"})
			}
		}
	}
}

// traefikLabels adds the Traefik v2 labels of traefik.http under the container's name.
func traefikLabels(svc *Service, container string, hosts []string, port int, tls bool) {
	if svc.Labels == nil {
		svc.Labels = map[string]string{}
	}
	if port > 0 {
		svc.Labels["traefik.http.services."+container+".loadbalancer.server.port"] = strconv.Itoa(port)
	}
	if len(hosts) > 0 {
		quoted := make([]string, len(hosts))
		for i, h := range hosts {
			quoted[i] = "`" + h + "`"
		}
		svc.Labels["traefik.http.routers."+container+".rule"] = "Host(" + strings.Join(quoted, ",") + ")"
	}
	if tls {
		svc.Labels["traefik.http.routers."+container+".entrypoints"] = "websecure"
		svc.Labels["traefik.http.routers."+container+".tls.certresolver"] = "lec"
	}
}

// checkSignal returns a stop signal in the SIGNAME form, or what is wrong with it.
func checkSignal(v string) (string, string) {
	name := strings.TrimPrefix(strings.ToUpper(v), "SIG")
	if slices.Contains(signalNames, name) {
		return "SIG" + name, ""
	}
	if rest, ok := strings.CutPrefix(name, "RTMIN+"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 1 && n <= 30 {
			return "SIG" + name, ""
		}
	}
	return "", fmt.Sprintf("unknown signal %q: a name such as SIGTERM, SIGQUIT or SIGUSR1", v)
}

// tmpfs reads a list of "path[:options]" or a mapping path: options.
func (d *decoder) tmpfs(n *yaml.Node, p string) map[string]string {
	out := map[string]string{}
	add := func(dst, opts string, node *yaml.Node, ip string) {
		if !path.IsAbs(dst) {
			d.errorf(node, ip, "tmpfs %q must be an absolute path in the container", dst)
			return
		}
		if _, dup := out[dst]; dup {
			d.errorf(node, ip, "tmpfs %q is listed twice", dst)
			return
		}
		out[dst] = opts
	}
	if deref(n).Kind == yaml.MappingNode {
		for _, e := range d.pairs(deref(n), p) {
			opts := ""
			if v, ok := d.str(e.Val, joinPath(p, e.Key)); ok {
				opts = v
			}
			add(e.Key, opts, e.KNode, joinPath(p, e.Key))
		}
		return out
	}
	for _, item := range d.strList(n, p) {
		dst, opts, _ := strings.Cut(item.val, ":")
		add(dst, opts, item.node, item.path)
	}
	return out
}

// sysctls reads a mapping name: value or a list of "name=value".
func (d *decoder) sysctls(n *yaml.Node, p string) map[string]string {
	out := map[string]string{}
	add := func(k, v string, node *yaml.Node, ip string) {
		if !sysctlRE.MatchString(k) {
			d.errorf(node, ip, "invalid sysctl %q: a dotted kernel parameter such as net.core.somaxconn", k)
			return
		}
		out[k] = v
	}
	if deref(n).Kind == yaml.MappingNode {
		for _, e := range d.pairs(deref(n), p) {
			v := deref(e.Val)
			if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
				d.errorf(v, joinPath(p, e.Key), "expected a value, got %s", describe(v))
				continue
			}
			add(e.Key, v.Value, e.KNode, joinPath(p, e.Key))
		}
		return out
	}
	for _, item := range d.strList(n, p) {
		k, v, ok := strings.Cut(item.val, "=")
		if !ok {
			d.errorf(item.node, item.path, "expected name=value, got %q", item.val)
			continue
		}
		add(k, v, item.node, item.path)
	}
	return out
}

// ulimits reads name: N or name: {soft: N, hard: N}.
func (d *decoder) ulimits(n *yaml.Node, p string) []Ulimit {
	var out []Ulimit
	entries, _ := d.mapping(n, p)
	for _, e := range entries {
		ep := joinPath(p, e.Key)
		if !slices.Contains(ulimitNames, e.Key) {
			d.errorf(e.KNode, ep, "unknown ulimit %q%s", e.Key, didYouMean(e.Key, ulimitNames))
			continue
		}
		u := Ulimit{Name: e.Key}
		if deref(e.Val).Kind == yaml.MappingNode {
			var soft, hard *yaml.Node
			for _, f := range d.pairs(deref(e.Val), ep) {
				switch f.Key {
				case "soft":
					u.Soft, _ = d.integer(f.Val, joinPath(ep, "soft"))
					soft = f.Val
				case "hard":
					u.Hard, _ = d.integer(f.Val, joinPath(ep, "hard"))
					hard = f.Val
				default:
					d.unknownKey(f, ep, []string{"soft", "hard"})
				}
			}
			if soft == nil || hard == nil {
				d.errorf(e.KNode, ep, "ulimit %s needs soft and hard", e.Key)
				continue
			}
		} else {
			v, ok := d.integer(e.Val, ep)
			if !ok {
				continue
			}
			u.Soft, u.Hard = v, v
		}
		if u.Soft < -1 || u.Hard < -1 || (u.Hard != -1 && (u.Soft == -1 || u.Soft > u.Hard)) {
			d.errorf(e.KNode, ep, "ulimit %s: soft %d must not exceed hard %d (-1 is unlimited)", e.Key, u.Soft, u.Hard)
			continue
		}
		out = append(out, u)
	}
	return out
}

// checkDevice says what is wrong with a device string host[:container[:permissions]], or "".
func checkDevice(v string) string {
	parts := strings.Split(v, ":")
	if len(parts) > 3 || !path.IsAbs(parts[0]) {
		return fmt.Sprintf("invalid device %q: want /dev/host[:/dev/container[:rwm]]", v)
	}
	if len(parts) >= 2 && !path.IsAbs(parts[1]) {
		if len(parts) == 2 && strings.Trim(parts[1], "rwm") == "" {
			return ""
		}
		return fmt.Sprintf("invalid device %q: the container path must be absolute", v)
	}
	if len(parts) == 3 && (parts[2] == "" || strings.Trim(parts[2], "rwm") != "") {
		return fmt.Sprintf("invalid device %q: permissions are some of r, w and m", v)
	}
	return ""
}

// logConfig reads log: {driver, options}.
func (d *decoder) logConfig(n *yaml.Node, p string) *LogConfig {
	fields, ok := d.mapping(n, p)
	if !ok || fields == nil {
		return nil
	}
	lc := &LogConfig{}
	for _, f := range fields {
		fp := joinPath(p, f.Key)
		switch f.Key {
		case "driver":
			lc.Driver, _ = d.str(f.Val, fp)
		case "options":
			opts, _ := d.mapping(f.Val, fp)
			for _, o := range opts {
				v := deref(o.Val)
				if v.Kind != yaml.ScalarNode || v.ShortTag() == "!!null" {
					d.errorf(v, joinPath(fp, o.Key), "expected a value, got %s", describe(v))
					continue
				}
				if lc.Options == nil {
					lc.Options = map[string]string{}
				}
				lc.Options[o.Key] = v.Value
			}
		default:
			d.unknownKey(f, p, []string{"driver", "options"})
		}
	}
	if lc.Driver == "" {
		d.errorf(n, p, "log needs a driver, such as json-file, local or none")
		return nil
	}
	return lc
}

// port decodes one ports entry: Bee2's integer (TCP, same port on the host), or "[host-address:][host-port:]port[/udp|/tcp]".
func (d *decoder) port(item *yaml.Node, ip string) (portItem, bool) {
	if item.Kind == yaml.ScalarNode && item.ShortTag() == "!!int" {
		v, ok := d.integer(item, ip)
		if !ok {
			return portItem{}, false
		}
		if v < 1 || v > 65535 {
			d.errorf(item, ip, "port %d is out of range 1-65535", v)
			return portItem{}, false
		}
		return portItem{port: int(v), container: int(v), proto: "tcp", node: item, path: ip}, true
	}
	if item.Kind != yaml.ScalarNode || item.ShortTag() != "!!str" {
		d.errorf(item, ip, "expected a port such as 80, \"1194/udp\" or \"127.0.0.1:5432:5432\", got %s", describe(item))
		return portItem{}, false
	}
	bad := func(why string) (portItem, bool) {
		d.errorf(item, ip, "invalid port %q: %s", item.Value, why)
		return portItem{}, false
	}
	spec, proto, hasProto := strings.Cut(item.Value, "/")
	if !hasProto {
		proto = "tcp"
	}
	if proto != "tcp" && proto != "udp" {
		return bad("the protocol is tcp or udp")
	}
	var host string
	if strings.HasPrefix(spec, "[") {
		end := strings.Index(spec, "]:")
		if end < 0 {
			return bad("an IPv6 host address is written [addr]:host-port:port")
		}
		host, spec = spec[1:end], spec[end+2:]
	} else if parts := strings.Split(spec, ":"); len(parts) == 3 {
		host, spec = parts[0], parts[1]+":"+parts[2]
	}
	if host != "" {
		if a, err := netip.ParseAddr(host); err != nil || a.Zone() != "" {
			return bad(fmt.Sprintf("%q is not an IP address", host))
		}
	}
	hostPort, ctrPort, mapped := strings.Cut(spec, ":")
	if !mapped {
		ctrPort = hostPort
	}
	num := func(s string) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil && n >= 1 && n <= 65535
	}
	hp, ok1 := num(hostPort)
	cp, ok2 := num(ctrPort)
	if !ok1 || !ok2 {
		return bad("ports are numbers from 1 to 65535 (a range or a random host port is not supported)")
	}
	p := portItem{port: hp, container: cp, proto: proto, node: item, path: ip}
	if host != "" {
		p.hostIPs = []string{host}
	}
	return p, true
}
