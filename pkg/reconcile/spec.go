package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

// HashScheme is the version of the spec hash. It changes only when the way a spec is hashed changes, and a
// container labelled with an older scheme is compared under that scheme, so upgrading bee2d never silently
// recreates every container.
const HashScheme = 1

// Digest is the part of a container spec that decides whether a container must be recreated, in a form
// that can sit in a label: env values appear only as hashes, so a plan can name the key that changed
// without ever holding its value.
type Digest struct {
	Image   string            `json:"image"`
	Cmd     []string          `json:"cmd,omitempty"`
	Env     map[string]string `json:"env,omitempty"` // key -> hash of value
	Binds   []string          `json:"binds,omitempty"`
	Ports   []int             `json:"ports,omitempty"`
	Restart string            `json:"restart"`
	Network string            `json:"network"`
	Aliases []string          `json:"aliases,omitempty"`
}

// digestOf computes the digest of a container spec.
func digestOf(c *dockerx.ContainerSpec) Digest {
	d := Digest{
		Image:   c.Image,
		Cmd:     c.Cmd,
		Binds:   c.Binds,
		Ports:   slices.Sorted(slices.Values(c.Ports)),
		Restart: c.RestartPolicy,
		Network: c.Network,
		Aliases: c.Aliases,
	}
	if len(c.Env) > 0 {
		d.Env = make(map[string]string, len(c.Env))
		for _, kv := range c.Env {
			k, v, _ := strings.Cut(kv, "=")
			d.Env[k] = valueHash(k, v)
		}
	}
	return d
}

// valueHash hides an env value; the key is mixed in so equal values under two keys do not look alike.
func valueHash(key, value string) string {
	sum := sha256.Sum256([]byte(key + "\x00" + value))
	return hex.EncodeToString(sum[:8])
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

// label is the digest's form in LabelSpecDigest.
func (d Digest) label() string {
	b, _ := json.Marshal(d)
	return string(b)
}

// parseDigestLabel reads LabelSpecDigest; ok is false when it is missing or unreadable.
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
		switch {
		case !inLive:
			out = append(out, "env "+k+" added")
		case !inWant:
			out = append(out, "env "+k+" removed")
		case lv != wv:
			out = append(out, "env "+k+" changed")
		}
	}
	out = append(out, listDiff("bind", live.Binds, want.Binds)...)
	out = append(out, listDiff("port", intStrings(live.Ports), intStrings(want.Ports))...)
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
