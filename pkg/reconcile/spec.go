package reconcile

import (
	"cmp"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
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

	// The options Bee2's 2017 format did not have. Each is left out when unset, so that a spec without them
	// hashes exactly as before they existed and no container is recreated by an upgrade.
	Entrypoint   *[]string `json:"entrypoint,omitempty"` // nil: the image's; empty: none
	User         string    `json:"user,omitempty"`
	WorkingDir   string    `json:"workdir,omitempty"`
	Hostname     string    `json:"hostname,omitempty"`
	IPv4         string    `json:"ipv4,omitempty"`
	IPv6         string    `json:"ipv6,omitempty"`
	MoreNetworks []string  `json:"more_networks,omitempty"`
	ExtraHosts   []string  `json:"extra_hosts,omitempty"`
	CapAdd       []string  `json:"cap_add,omitempty"` // sorted: the engine does not care for the order
	Memory       int64     `json:"memory,omitempty"`
	NanoCPUs     int64     `json:"nano_cpus,omitempty"`
	PidsLimit    int64     `json:"pids_limit,omitempty"`
	StopSignal   string    `json:"stop_signal,omitempty"`
	// StopTimeout is in whole seconds, left out when it is config.StopTimeout, the one every container had
	// before it could be set.
	StopTimeout int               `json:"stop_timeout,omitempty"`
	ReadOnly    bool              `json:"read_only,omitempty"`
	Tmpfs       map[string]string `json:"tmpfs,omitempty"`
	Sysctls     map[string]string `json:"sysctls,omitempty"`
	Ulimits     []string          `json:"ulimits,omitempty"` // name=soft:hard
	Devices     []string          `json:"devices,omitempty"`
	LogDriver   string            `json:"log_driver,omitempty"`
	LogOptions  map[string]string `json:"log_options,omitempty"`
	// Labels are the user's labels (bee2d's own are not part of the spec); their values are no secrets.
	Labels map[string]string `json:"labels,omitempty"`
	// Health is the settings' health check, left out when they give none.
	Health *HealthDigest `json:"health,omitempty"`
}

// HealthDigest is a health check in a spec digest: the engine's test form, durations in milliseconds.
type HealthDigest struct {
	Test        []string `json:"test,omitempty"`
	Interval    int64    `json:"interval_ms,omitempty"`
	Timeout     int64    `json:"timeout_ms,omitempty"`
	StartPeriod int64    `json:"start_period_ms,omitempty"`
	Retries     int      `json:"retries,omitempty"`
}

func healthDigest(h *engine.HealthSpec) *HealthDigest {
	if h == nil {
		return nil
	}
	return &HealthDigest{Test: h.Test, Interval: h.Interval.Milliseconds(), Timeout: h.Timeout.Milliseconds(),
		StartPeriod: h.StartPeriod.Milliseconds(), Retries: h.Retries}
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
	if c.Entrypoint != nil {
		ep := c.Entrypoint
		d.Entrypoint = &ep
	}
	d.User, d.WorkingDir, d.Hostname = c.User, c.WorkingDir, c.Hostname
	d.IPv4, d.IPv6, d.MoreNetworks = c.IPv4Address, c.IPv6Address, c.MoreNetworks
	d.ExtraHosts = c.ExtraHosts
	if len(c.CapAdd) > 0 {
		d.CapAdd = slices.Sorted(slices.Values(c.CapAdd))
	}
	d.Memory, d.NanoCPUs, d.PidsLimit = c.Memory, c.NanoCPUs, c.PidsLimit
	d.StopSignal = c.StopSignal
	if c.StopTimeout > 0 && c.StopTimeout != config.StopTimeout {
		d.StopTimeout = int((c.StopTimeout + time.Second - 1) / time.Second) // rounded up, as the engine gets it
	}
	d.ReadOnly = c.ReadOnly
	d.Tmpfs, d.Sysctls = c.Tmpfs, c.Sysctls
	for _, u := range c.Ulimits {
		d.Ulimits = append(d.Ulimits, fmt.Sprintf("%s=%d:%d", u.Name, u.Soft, u.Hard))
	}
	d.Devices = c.Devices
	d.LogDriver, d.LogOptions = c.LogDriver, c.LogOptions
	d.Health = healthDigest(c.Health)
	for k, v := range c.Labels {
		if ownLabel(k) {
			continue
		}
		if d.Labels == nil {
			d.Labels = map[string]string{}
		}
		d.Labels[k] = v
	}
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
	if (live.Entrypoint == nil) != (want.Entrypoint == nil) ||
		(live.Entrypoint != nil && !slices.Equal(*live.Entrypoint, *want.Entrypoint)) {
		out = append(out, "entrypoint changed")
	}
	for _, f := range []struct{ what, live, want string }{
		{"user", live.User, want.User},
		{"working directory", live.WorkingDir, want.WorkingDir},
		{"hostname", live.Hostname, want.Hostname},
	} {
		if f.live != f.want {
			out = append(out, f.what+" changed")
		}
	}
	if live.IPv4 != want.IPv4 {
		out = append(out, fmt.Sprintf("static IPv4 %s → %s", orNone(live.IPv4), orNone(want.IPv4)))
	}
	if live.IPv6 != want.IPv6 {
		out = append(out, fmt.Sprintf("static IPv6 %s → %s", orNone(live.IPv6), orNone(want.IPv6)))
	}
	if !slices.Equal(live.MoreNetworks, want.MoreNetworks) {
		out = append(out, fmt.Sprintf("networks changed (%s → %s)", listOrNone(live.MoreNetworks), listOrNone(want.MoreNetworks)))
	}
	out = append(out, listDiff("extra host", live.ExtraHosts, want.ExtraHosts)...)
	out = append(out, listDiff("capability", live.CapAdd, want.CapAdd)...)
	if live.Memory != want.Memory {
		out = append(out, fmt.Sprintf("memory %s → %s", bytesForm(live.Memory), bytesForm(want.Memory)))
	}
	if live.NanoCPUs != want.NanoCPUs {
		out = append(out, fmt.Sprintf("cpus %s → %s", cpusForm(live.NanoCPUs), cpusForm(want.NanoCPUs)))
	}
	if live.PidsLimit != want.PidsLimit {
		out = append(out, fmt.Sprintf("pids limit %s → %s", countForm(live.PidsLimit), countForm(want.PidsLimit)))
	}
	if live.StopSignal != want.StopSignal {
		out = append(out, fmt.Sprintf("stop signal %s → %s", orDefault(live.StopSignal), orDefault(want.StopSignal)))
	}
	if live.StopTimeout != want.StopTimeout {
		out = append(out, fmt.Sprintf("stop timeout %s → %s", stopTimeoutForm(live.StopTimeout), stopTimeoutForm(want.StopTimeout)))
	}
	if live.ReadOnly != want.ReadOnly {
		if want.ReadOnly {
			out = append(out, "root filesystem made read-only")
		} else {
			out = append(out, "root filesystem made writable")
		}
	}
	out = append(out, mapDiff("tmpfs", live.Tmpfs, want.Tmpfs)...)
	out = append(out, mapDiff("sysctls", live.Sysctls, want.Sysctls)...)
	out = append(out, listDiff("ulimit", live.Ulimits, want.Ulimits)...)
	out = append(out, listDiff("device", live.Devices, want.Devices)...)
	if live.LogDriver != want.LogDriver {
		out = append(out, fmt.Sprintf("log driver %s → %s", orDefault(live.LogDriver), orDefault(want.LogDriver)))
	}
	out = append(out, mapDiff("log options", live.LogOptions, want.LogOptions)...)
	out = append(out, mapDiff("labels", live.Labels, want.Labels)...)
	switch {
	case live.Health == nil && want.Health != nil:
		out = append(out, "health check added")
	case live.Health != nil && want.Health == nil:
		out = append(out, "health check removed (the image's, if any, is used)")
	case live.Health != nil && !reflect.DeepEqual(live.Health, want.Health):
		out = append(out, "health check changed")
	}
	return out
}

// mapDiffShown is how many changed keys a cause names before it says how many more there are.
const mapDiffShown = 3

// mapDiff says that a map changed and which keys were added, removed or changed, sorted; values are not
// shown, only where they are.
func mapDiff(what string, live, want map[string]string) []string {
	var keys []string
	for k, v := range want {
		if lv, ok := live[k]; !ok || lv != v {
			keys = append(keys, k)
		}
	}
	for k := range live {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.Sort(keys)
	named := strings.Join(keys[:min(len(keys), mapDiffShown)], ", ")
	if n := len(keys) - mapDiffShown; n > 0 {
		named += fmt.Sprintf(" and %d more", n)
	}
	return []string{fmt.Sprintf("%s changed (%s)", what, named)}
}

// bytesForm writes a memory limit in the largest binary unit that divides it: 256MiB, 1GiB.
func bytesForm(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	for _, u := range []struct {
		size int64
		name string
	}{{1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}

// cpusForm writes NanoCPUs as a number of CPUs: 1.5.
func cpusForm(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.FormatFloat(float64(n)/1e9, 'f', -1, 64)
}

func countForm(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

func stopTimeoutForm(secs int) string {
	if secs == 0 {
		return config.StopTimeout.String()
	}
	return (time.Duration(secs) * time.Second).String()
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}

func orDefault(s string) string {
	if s == "" {
		return "default"
	}
	return s
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
