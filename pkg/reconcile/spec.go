package reconcile

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/bee2d/bee2d/pkg/engine"
)

// HashScheme is the version of the spec hash. It changes only when the way a spec is hashed changes, and a
// container labelled with an older scheme is compared under that scheme, so upgrading bee2d never silently
// recreates every container.
//
// Scheme 2 hashes secret env values (secret files, env_files) with a key (HMAC-SHA256 under the settings'
// hash key) instead of a plain sha256: the digest label is readable by anyone who lists containers or
// follows the engine's events, and an unkeyed hash of a short password can be guessed offline. Everything
// else hashes as under scheme 1, and a spec without secret values is labelled scheme 1, so an upgrade
// recreates nothing and an older bee2d still manages every container it can understand, leaving those
// with secrets alone ("created by a newer bee2d").
const HashScheme = 2

// schemeOf is the hash scheme a spec is labelled with: the oldest that can express it.
func schemeOf(secret map[string]bool) int {
	if len(secret) > 0 {
		return 2
	}
	return 1
}

// secretHashPrefix marks a keyed hash in a digest, so a plan can say a changed value is a secret.
const secretHashPrefix = "hmac:"

// Digest is the part of a container spec that decides whether a container must be recreated, in a form
// that can sit in a label: env values appear only as hashes, so a plan can name the key that changed
// without ever holding its value.
type Digest struct {
	Image string            `json:"image"`
	Cmd   []string          `json:"cmd,omitempty"`
	Env   map[string]string `json:"env,omitempty"` // key -> hash of value
	Binds []string          `json:"binds,omitempty"`
	Ports []int             `json:"ports,omitempty"`
	// Publish holds the ports that are not simple (see digestPorts).
	Publish []string `json:"publish,omitempty"`
	Restart string   `json:"restart"`
	Network string   `json:"network"`
	Aliases []string `json:"aliases,omitempty"`
}

// digestOf computes the digest of a container spec. The values of the env keys in secret are hashed with
// key, which must then be set.
func digestOf(c *engine.ContainerSpec, secret map[string]bool, key []byte) Digest {
	d := Digest{
		Image:   c.Image,
		Cmd:     c.Cmd,
		Binds:   c.Binds,
		Restart: c.RestartPolicy,
		Network: c.Network,
		Aliases: c.Aliases,
	}
	d.Ports, d.Publish = digestPorts(c.Ports)
	if len(c.Env) > 0 {
		d.Env = make(map[string]string, len(c.Env))
		for _, kv := range c.Env {
			k, v, _ := strings.Cut(kv, "=")
			if secret[k] {
				d.Env[k] = secretHash(key, k, v)
				continue
			}
			d.Env[k] = valueHash(k, v)
		}
	}
	return d
}

// digestPorts splits ports into the simple ones of Bee2's ports key (TCP, host port = container port, every
// address), which scheme 1 hashes as a sorted list of numbers, and the others, as docker run -p writes them
// (sorted too: the order of the settings' list does not change the container).
func digestPorts(ports []engine.PortSpec) (simple []int, other []string) {
	for _, p := range ports {
		if cmp.Or(p.Proto, "tcp") == "tcp" && p.HostIP == "" && p.HostPort == p.ContainerPort {
			simple = append(simple, p.ContainerPort)
			continue
		}
		other = append(other, publishForm(p))
	}
	slices.Sort(simple)
	slices.Sort(other)
	return simple, other
}

// publishForm is a port as docker run -p writes it: [ip:]host:container/proto, an IPv6 address in brackets.
func publishForm(p engine.PortSpec) string {
	s := ""
	if p.HostPort != 0 {
		s = strconv.Itoa(p.HostPort)
	}
	s += ":" + strconv.Itoa(p.ContainerPort) + "/" + cmp.Or(p.Proto, "tcp")
	if p.HostIP != "" {
		ip := p.HostIP
		if strings.Contains(ip, ":") {
			ip = "[" + ip + "]"
		}
		s = ip + ":" + s
	}
	return s
}

// valueHash hides an env value; the key is mixed in so equal values under two keys do not look alike.
func valueHash(key, value string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + value))
	return hex.EncodeToString(sum[:8])
}

// secretHash hides a secret env value behind a keyed hash: without the key, which never leaves the admin box,
// the label says nothing about the value, not even whether two containers share it under another key. It
// still changes when the value changes, which is all a plan needs.
func secretHash(key []byte, name, value string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(name + "\x00" + value))
	return secretHashPrefix + hex.EncodeToString(m.Sum(nil)[:8])
}

// hash is the spec hash under scheme 1: sha256 of the digest's canonical JSON (map keys sorted by
// encoding/json).
func (d Digest) hash() string {
	b, err := json.Marshal(d)
	if err != nil {
		panic(err) // a Digest is plain data; Marshal cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// label is the digest's form in labels.SpecDigest.
func (d Digest) label() string {
	b, _ := json.Marshal(d)
	return string(b)
}

// parseDigestLabel reads labels.SpecDigest; ok is false when it is missing or unreadable.
func parseDigestLabel(s string) (Digest, bool) {
	var d Digest
	if s == "" || json.Unmarshal([]byte(s), &d) != nil {
		return Digest{}, false
	}
	return d, true
}

// diffDigest names what differs between a live container's digest and the desired one, in a stable
// order. It never shows env values.
func diffDigest(live, want Digest) []string {
	var out []string
	if live.Image != want.Image {
		out = append(out, fmt.Sprintf("image %s → %s", live.Image, want.Image))
	}
	if !slices.Equal(live.Cmd, want.Cmd) {
		out = append(out, "command changed")
	}
	keys := make([]string, 0, len(live.Env)+len(want.Env))
	for k := range live.Env {
		keys = append(keys, k)
	}
	for k := range want.Env {
		if _, ok := live.Env[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		lv, inLive := live.Env[k]
		wv, inWant := want.Env[k]
		name := "env " + k
		if strings.HasPrefix(lv, secretHashPrefix) || strings.HasPrefix(wv, secretHashPrefix) {
			name += " (secret)"
		}
		switch {
		case !inLive:
			out = append(out, name+" added")
		case !inWant:
			out = append(out, name+" removed")
		case lv != wv:
			out = append(out, name+" changed")
		}
	}
	out = append(out, listDiff("bind", live.Binds, want.Binds)...)
	out = append(out, listDiff("port", intStrings(live.Ports), intStrings(want.Ports))...)
	out = append(out, listDiff("port", live.Publish, want.Publish)...)
	if live.Restart != want.Restart {
		out = append(out, fmt.Sprintf("restart policy %s → %s", orNone(live.Restart), orNone(want.Restart)))
	}
	if live.Network != want.Network {
		out = append(out, fmt.Sprintf("network %s → %s", orNone(live.Network), orNone(want.Network)))
	}
	if !slices.Equal(live.Aliases, want.Aliases) {
		out = append(out, "network aliases changed")
	}
	return out
}

// listDiff names items added and removed between two lists, in the order they appear.
func listDiff(what string, live, want []string) []string {
	var out []string
	for _, w := range want {
		if !slices.Contains(live, w) {
			out = append(out, what+" "+w+" added")
		}
	}
	for _, l := range live {
		if !slices.Contains(want, l) {
			out = append(out, what+" "+l+" removed")
		}
	}
	return out
}

func intStrings(xs []int) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = strconv.Itoa(x)
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
