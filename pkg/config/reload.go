package config

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ReloadRule is one entry of an application's reload list: when the files under Path of the named volume
// change, the daemon sends Signal to the application's container, and with VerifyTLSPort set it checks that
// the container now serves the certificates found among those files.
//
//	reload:
//	  - watch: letsencrypt:/live    # <volume>:<directory inside the volume>
//	    signal: HUP                 # default HUP
//	    verify: tls                 # or tls:<port>; tls is port 443
type ReloadRule struct {
	// Volume is a named volume the application mounts; Path is a clean absolute path inside it.
	Volume, Path string
	// Target is where the application mounts Volume, so that the files are at Target+Path in its container.
	Target string
	// Signal is a signal name such as SIGHUP.
	Signal string
	// VerifyTLSPort, when not 0, is the port inside the container where the certificates must be served.
	VerifyTLSPort int
	// Interval is how often the daemon looks at the watched directory besides its passes (files written
	// into a volume raise no Docker event); DefaultReloadInterval when 0.
	Interval time.Duration
	Pos      Pos
}

// DefaultReloadInterval is how often the daemon looks at a reload rule's directory when the rule does not
// say: a certificate written by CertBot is served within that long of being issued. A look is one archive
// read of a small directory.
const DefaultReloadInterval = 15 * time.Second

// Every is how often the daemon looks at the rule's directory.
func (r ReloadRule) Every() time.Duration {
	if r.Interval > 0 {
		return r.Interval
	}
	return DefaultReloadInterval
}

// Dir is the watched directory as the application's container sees it.
func (r ReloadRule) Dir() string {
	return path.Join(r.Target, r.Path)
}

// Watch is the rule's watch as written: <volume>:<path>.
func (r ReloadRule) Watch() string {
	return r.Volume + ":" + r.Path
}

// Signals are the signals a reload rule can send, as written in the settings without the SIG prefix.
var Signals = []string{"HUP", "USR1", "USR2", "INT", "QUIT", "TERM", "WINCH", "ALRM"}

var (
	reloadKeys = []string{"watch", "signal", "verify", "interval"}
	// buildArgRE is a build argument name, as Dockerfile ARG takes it.
	buildArgRE = envKeyRE
)

// reloadMeta keeps the nodes of one reload rule that the cross-checks point at.
type reloadMeta struct {
	rule  *ReloadRule
	watch *yaml.Node
	path  string
}

// reloads decodes an application's reload list. The volume is checked against the application's mounts in
// checkReloads, once all its keys are read.
func (d *decoder) reloads(n *yaml.Node, listPath string, m *svcMeta) []ReloadRule {
	items, _ := d.list(n, listPath, "reload rules")
	var out []ReloadRule
	for i, item := range items {
		ip := indexPath(listPath, i)
		fields, ok := d.mapping(item, ip)
		if !ok {
			continue
		}
		if isNull(item) {
			d.errorf(item, ip, "a reload rule needs watch")
			continue
		}
		r := ReloadRule{Signal: "SIGHUP", Pos: pos(item)}
		meta := reloadMeta{path: ip}
		for _, p := range fields {
			fp := joinPath(ip, p.Key)
			switch p.Key {
			case "watch":
				v, ok := d.str(p.Val, fp)
				if !ok {
					continue
				}
				vol, dir, msg := parseWatch(v)
				if msg != "" {
					d.errorf(p.Val, fp, "%s", msg)
					continue
				}
				r.Volume, r.Path, meta.watch = vol, dir, p.Val
			case "signal":
				v, ok := d.str(p.Val, fp)
				if !ok {
					continue
				}
				name := strings.TrimPrefix(strings.ToUpper(v), "SIG")
				if !slices.Contains(Signals, name) {
					d.errorf(p.Val, fp, "unknown signal %q: one of %s%s", v, strings.Join(Signals, ", "), didYouMean(name, Signals))
					continue
				}
				r.Signal = "SIG" + name
			case "verify":
				v, ok := d.str(p.Val, fp)
				if !ok {
					continue
				}
				port, msg := parseVerify(v)
				if msg != "" {
					d.errorf(p.Val, fp, "%s", msg)
					continue
				}
				r.VerifyTLSPort = port
			case "interval":
				v, ok := d.str(p.Val, fp)
				if !ok {
					continue
				}
				if every, ok := d.period(p.Val, fp, "interval", v, "15s"); ok {
					r.Interval = every
				}
			default:
				d.unknownKey(p, ip, reloadKeys)
			}
		}
		if meta.watch == nil {
			if !slices.ContainsFunc(fields, func(p pair) bool { return p.Key == "watch" }) {
				d.errorf(item, ip, "a reload rule needs watch")
			}
			continue
		}
		out = append(out, r)
		meta.rule = &out[len(out)-1]
		m.reloads = append(m.reloads, meta)
	}
	// The metas point into out; appending may have moved it.
	for i := range m.reloads {
		m.reloads[i].rule = &out[i]
	}
	return out
}

// parseWatch splits <volume>:<path>, or says what is wrong with it.
func parseWatch(v string) (volume, dir, msg string) {
	volume, dir, ok := strings.Cut(v, ":")
	switch {
	case !ok || volume == "":
		return "", "", fmt.Sprintf("watch %q must be <volume>:<path>, such as letsencrypt:/live", v)
	case !ValidName(volume):
		return "", "", fmt.Sprintf("watch %q: %q is not a volume name (%s)", v, volume, nameRule)
	case !strings.HasPrefix(dir, "/") || path.Clean(dir) != dir:
		return "", "", fmt.Sprintf("watch %q: the path in the volume must be absolute and clean, such as /live", v)
	}
	return volume, dir, ""
}

// parseVerify reads tls or tls:<port>.
func parseVerify(v string) (int, string) {
	rest, ok := strings.CutPrefix(v, "tls")
	switch {
	case !ok:
	case rest == "":
		return 443, ""
	case strings.HasPrefix(rest, ":"):
		if port, err := strconv.Atoi(rest[1:]); err == nil && port >= 1 && port <= 65535 {
			return port, ""
		}
		return 0, fmt.Sprintf("verify %q: the port must be 1-65535", v)
	}
	return 0, fmt.Sprintf("unknown verify %q: tls (port 443) or tls:<port>", v)
}

// checkReloads checks each reload rule of an application against its mounts: the watched volume must be one
// it mounts, so the files are those it reads. It sets each rule's Target.
func (d *decoder) checkReloads(m *svcMeta) {
	var mounted []string
	targets := map[string]string{}
	for _, b := range m.svc.Volumes {
		parts := strings.Split(b, ":")
		if ValidName(parts[0]) {
			mounted = append(mounted, parts[0])
			if _, seen := targets[parts[0]]; !seen {
				targets[parts[0]] = parts[1]
			}
		}
	}
	seen := map[string]int{}
	for _, r := range m.reloads {
		target, ok := targets[r.rule.Volume]
		if !ok {
			hint := didYouMean(r.rule.Volume, mounted)
			if hint == "" && len(mounted) > 0 {
				hint = " (it mounts " + strings.Join(mounted, ", ") + ")"
			}
			d.errorf(r.watch, joinPath(r.path, "watch"), "volume %q is not mounted by %s %q%s", r.rule.Volume, kindWord(m.svc.Kind), m.svc.Name, hint)
			continue
		}
		r.rule.Target = target
		if line, dup := seen[r.rule.Watch()]; dup {
			d.errorf(r.watch, joinPath(r.path, "watch"), "%s is watched twice (first at line %d)", shown(r.rule.Watch()), line)
			continue
		}
		seen[r.rule.Watch()] = r.watch.Line
	}
}

// buildArgs decodes build_args: a mapping of names to scalar values, kept as YAML shows them.
func (d *decoder) buildArgs(n *yaml.Node, path string) map[string]string {
	fields, _ := d.mapping(n, path)
	out := map[string]string{}
	for _, p := range fields {
		fp := joinPath(path, p.Key)
		if !buildArgRE.MatchString(p.Key) {
			d.errorf(p.KNode, fp, "invalid build argument name %q: use letters, digits and _, not starting with a digit", p.Key)
			continue
		}
		if p.Val.Kind != yaml.ScalarNode || isNull(p.Val) {
			d.errorf(p.Val, fp, "a build argument must be a string, number or boolean, got %s", describe(p.Val))
			continue
		}
		out[p.Key] = p.Val.Value
	}
	return out
}
