package config

import (
	"bytes"
	"encoding/json"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// maxJSONDepth bounds the nesting of a list or mapping env value.
const maxJSONDepth = 100

// isDomains tells whether an env key is the special domains variable; keys are upper-cased for the container, so
// any spelling of it counts.
func isDomains(key string) bool {
	return strings.EqualFold(key, "domains")
}

func (d *decoder) env(n *yaml.Node, path string, m *svcMeta) []EnvVar {
	entries, _ := d.mapping(n, path)
	var out []EnvVar
	upper := map[string]pair{}
	for _, e := range entries {
		kp := joinPath(path, e.Key)
		if !envKeyRE.MatchString(e.Key) {
			d.errorf(e.KNode, kp, "invalid env name %q: use letters, digits and _, not starting with a digit", e.Key)
			continue
		}
		u := strings.ToUpper(e.Key)
		if first, dup := upper[u]; dup {
			d.errorf(e.KNode, kp, "%q and %q both become %s (first at line %d)", first.Key, e.Key, u, first.KNode.Line)
			continue
		}
		upper[u] = e
		out = append(out, EnvVar{Key: e.Key, Value: d.envValue(e.Val, kp, isDomains(e.Key), m), Pos: pos(e.KNode)})
	}
	return out
}

func (d *decoder) envValue(n *yaml.Node, path string, domains bool, m *svcMeta) EnvValue {
	v := EnvValue{Pos: pos(n)}
	switch n.Kind {
	case yaml.ScalarNode:
		v.Scalar, v.Text, v.Tag = true, n.Value, n.ShortTag()
		if domains && (v.Tag != "!!str" || v.Text != "all") {
			got := describe(n)
			if v.Tag != "!!null" {
				got += " " + jsonString(n.Value)
			}
			d.errorf(n, path, `domains must be "all" or a list of strings, got %s`, got)
			return v
		}
		if strings.ContainsRune(v.Text, 0) {
			// The environment reaches the process as C strings: a NUL would cut the value short, or the
			// container would fail to start.
			d.errorf(n, path, "value holds a NUL character, which a process environment cannot carry")
			return v
		}
		if v.Tag != "!!str" {
			return v
		}
		switch {
		case strings.HasPrefix(v.Text, "$") && !strings.HasPrefix(v.Text, "$$"):
			v.Ref = v.Text[1:]
			m.refs = append(m.refs, envRef{name: v.Ref, node: n, path: path})
		case strings.HasPrefix(v.Text, "+") && !strings.HasPrefix(v.Text, "++") && ValidName(v.Text[1:]):
			v.Job = v.Text[1:]
			m.jobRefs = append(m.jobRefs, envRef{name: v.Job, node: n, path: path})
		case strings.HasPrefix(v.Text, "_"):
			d.dbValue(n, path, &v, m)
		}
		if b, is := yaml11Bools[v.Text]; is && n.Style == 0 {
			d.warnf(n, path, "%s is passed as %q; Bee2 (YAML 1.1) sent %t: quote it to keep %q, or write %t", v.Text, v.Text, b, v.Text, b)
		}
	case yaml.SequenceNode:
		v.List = []string{}
		for i, item := range n.Content {
			item = deref(item)
			if item.Kind != yaml.ScalarNode {
				v.List = nil
				break
			}
			if domains {
				ip := indexPath(path, i)
				switch {
				case item.ShortTag() != "!!str":
					d.errorf(item, ip, "expected a string, got %s", describe(item))
				case item.Value == "" || strings.IndexFunc(item.Value, badDomainRune) >= 0:
					// DOMAINS is split on spaces and commas by the images that read it; a control character
					// (a NUL above all) cannot reach them.
					d.errorf(item, ip, "domain %q must be non-empty, without spaces, commas or control characters", item.Value)
				}
			}
			v.List = append(v.List, item.Value)
		}
		if domains && v.List == nil {
			d.errorf(n, path, "domains must be a list of strings")
		}
		v.JSON = d.toJSON(n, path)
	case yaml.MappingNode:
		if domains {
			d.errorf(n, path, `domains must be "all" or a list of strings, got a mapping`)
			return v
		}
		if d.secretRef(n, path, &v, m) {
			return v
		}
		v.JSON = d.toJSON(n, path)
	}
	return v
}

func badDomainRune(r rune) bool {
	return r == ',' || unicode.IsSpace(r) || unicode.IsControl(r)
}

// toJSON writes a list or mapping as compact JSON, mapping keys in file order.
func (d *decoder) toJSON(n *yaml.Node, path string) string {
	var b bytes.Buffer
	if !d.writeJSON(&b, n, path, 0) {
		return ""
	}
	return b.String()
}

func (d *decoder) writeJSON(b *bytes.Buffer, n *yaml.Node, path string, depth int) bool {
	n = deref(n)
	if !d.spend(1, n, path) {
		return false
	}
	if depth > maxJSONDepth {
		d.errorf(n, path, "value is nested too deeply")
		return false
	}
	switch n.Kind {
	case yaml.ScalarNode:
		b.WriteString(scalarJSON(n))
	case yaml.SequenceNode:
		b.WriteByte('[')
		for i, c := range n.Content {
			if i > 0 {
				b.WriteByte(',')
			}
			if !d.writeJSON(b, c, indexPath(path, i), depth+1) {
				return false
			}
		}
		b.WriteByte(']')
	case yaml.MappingNode:
		b.WriteByte('{')
		for i, p := range d.pairs(n, path) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(jsonString(p.Key))
			b.WriteByte(':')
			if !d.writeJSON(b, p.Val, joinPath(path, p.Key), depth+1) {
				return false
			}
		}
		b.WriteByte('}')
	default:
		d.errorf(n, path, "unsupported value")
		return false
	}
	return true
}

// scalarJSON is the JSON form of a scalar: numbers as written when that is valid JSON, else their value;
// anything JSON cannot express (.inf, timestamps, binary) as a string.
func scalarJSON(n *yaml.Node) string {
	switch n.ShortTag() {
	case "!!null":
		return "null"
	case "!!bool":
		var v bool
		if n.Decode(&v) == nil {
			if v {
				return "true"
			}
			return "false"
		}
	case "!!int", "!!float":
		if json.Valid([]byte(n.Value)) {
			return n.Value
		}
		var v any
		if n.Decode(&v) == nil {
			if out, err := json.Marshal(v); err == nil {
				return string(out)
			}
		}
	}
	return jsonString(n.Value)
}

// jsonString quotes s for JSON without escaping <, > and &, which mean nothing special in an environment.
func jsonString(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return strings.TrimSuffix(b.String(), "\n")
}

// RenderEnv returns the environment of svc as KEY=value lines, in file order. Keys are upper-cased; values are
// rendered as Bee2 did, with bee2d's fixes:
//
//   - domains: all lists, for every application on svc's server that has a domains list (file order),
//     "<prefix>-app-<name>:<d1>,<d2>", entries separated by one space; empty when there is none.
//   - a domains list becomes its entries separated by one space; a "/port" suffix passes through.
//   - a string "$name" becomes the container name of application name (also inside jobs: "$name" always means
//     an application); "$$..." is the escape for a literal "$...", rendered with one "$" fewer.
//   - booleans and numbers are written as YAML shows them (false, 8080, 0x1F); null is empty.
//   - other lists and mappings are compact JSON, mapping keys in file order.
func RenderEnv(s *Settings, svc *Service) []string {
	out := make([]string, 0, len(svc.Env))
	for _, e := range svc.Env {
		out = append(out, envKey(svc, e)+"="+renderValue(s, svc, e))
	}
	return out
}

// envKey is the name an env entry has in the container: upper-cased, or, on a server with env_keys:
// as-written, as written unless it is domains or its value is a reference or a database value (which Bee2's
// 2021 code upper-cased still).
func envKey(svc *Service, e EnvVar) string {
	v := e.Value
	special := isDomains(e.Key) || v.Ref != "" || v.Job != "" || v.DB != nil
	if svc.envKeysAsWritten && !special {
		return e.Key
	}
	return strings.ToUpper(e.Key)
}

func renderValue(s *Settings, svc *Service, e EnvVar) string {
	v := e.Value
	if v.Secret != nil {
		return v.Secret.Value.Reveal()
	}
	if isDomains(e.Key) {
		switch {
		case v.Scalar && v.Tag == "!!str" && v.Text == "all":
			return DomainsAll(s, svc.Server)
		case v.List != nil:
			return strings.Join(v.List, " ")
		}
	}
	if !v.Scalar {
		return v.JSON
	}
	switch {
	case v.Tag == "!!null":
		return ""
	case v.Tag != "!!str":
		return v.Text
	case v.Ref != "":
		return ContainerName(s.Prefix(svc.Server), KindApp, v.Ref)
	case v.Job != "":
		return ContainerName(s.Prefix(svc.Server), KindJob, v.Job)
	case strings.HasPrefix(v.Text, "$$"), strings.HasPrefix(v.Text, "++"):
		return v.Text[1:]
	}
	return v.Text
}

// DomainsAll is the value domains: all renders to on a server: "<prefix>-app-<name>:<d1>,<d2>" for every
// application of that server with a non-empty domains list, in file order, separated by one space.
func DomainsAll(s *Settings, server string) string {
	var entries []string
	for _, app := range s.Applications {
		if app.Server != server {
			continue
		}
		for _, e := range app.Env {
			if isDomains(e.Key) && !e.Value.Scalar && len(e.Value.List) > 0 {
				entries = append(entries, ContainerName(s.Prefix(server), KindApp, app.Name)+":"+strings.Join(e.Value.List, ","))
			}
		}
	}
	return strings.Join(entries, " ")
}

// SecretKeys returns the names (upper-cased) of svc's environment whose values are secret: read from a
// secret file or an env_file.
func SecretKeys(svc *Service) map[string]bool {
	var out map[string]bool
	for _, e := range svc.Env {
		if e.Value.Secret != nil {
			if out == nil {
				out = map[string]bool{}
			}
			out[envKey(svc, e)] = true
		}
	}
	return out
}

// EnvKeys returns the names of svc's environment as the container sees them (upper-cased), in file order.
func EnvKeys(svc *Service) []string {
	out := make([]string, len(svc.Env))
	for i, e := range svc.Env {
		out[i] = envKey(svc, e)
	}
	return out
}
