package reconcile

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
	"github.com/bee2d/bee2d/pkg/labels"
)

// desiredWith is desired for settings edited after loading: the container options of #14 are set on the
// services directly, as the decoder will set them.
func desiredWith(t *testing.T, yml string, edit func(s *config.Settings)) *Desired {
	t.Helper()
	s := settings(t, yml)
	if edit != nil {
		edit(s)
	}
	d, err := DesireFrom(s, "web1", Sources{Digest: fakeDigest(""), Head: fakeHead("")})
	if err != nil {
		t.Fatalf("desire: %v", err)
	}
	return d
}

func container(t *testing.T, d *Desired, name string) *Container {
	t.Helper()
	for _, c := range append(slices.Clone(d.Containers), d.Jobs...) {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return nil
}

// digestAtMain is the Digest as it was before the options of #14 (main at 80fdc41), written out again so
// that a change to the code cannot move both sides.
type digestAtMain struct {
	Image   string            `json:"image"`
	Cmd     []string          `json:"cmd,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Binds   []string          `json:"binds,omitempty"`
	Ports   []int             `json:"ports,omitempty"`
	Restart string            `json:"restart"`
	Network string            `json:"network"`
	Aliases []string          `json:"aliases,omitempty"`
}

// hashAtMain computes a service's digest label and spec hash as main did: from the settings, with the
// ports' container port numbers sorted, the restart policy by kind, the default network and the name as
// the only alias, and no command (the 2017 format had none).
func hashAtMain(t *testing.T, s *config.Settings, svc *config.Service, image string) (label, hash string) {
	t.Helper()
	d := digestAtMain{Image: image, Binds: svc.Volumes, Restart: "unless-stopped", Network: config.NetworkName(s.Prefix(svc.Server)), Aliases: []string{svc.Name}}
	if svc.Kind == config.KindJob {
		d.Restart = "no"
	}
	for _, p := range svc.Ports {
		d.Ports = append(d.Ports, p.ContainerPort)
	}
	slices.Sort(d.Ports)
	for _, kv := range config.RenderEnv(s, svc) {
		k, v, _ := strings.Cut(kv, "=")
		if d.Env == nil {
			d.Env = map[string]string{}
		}
		sum := sha256.Sum256([]byte(k + "\x00" + v))
		d.Env[k] = hex.EncodeToString(sum[:8])
	}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return string(b), hex.EncodeToString(sum[:])
}

// Containers of 2017-format settings, which have none of the new options, keep the spec hash and digest
// label main gave them, so upgrading bee2d recreates nothing. The hashes below were printed by main's code
// at 80fdc41; hashAtMain recomputes them the way that code did.
func TestOldSettingsKeepTheirSpecHash(t *testing.T) {
	atMain := map[string]string{
		"bee2-app-static": "3563b6f11dcdf3f0f1c4e67d932f77298b77e2e44dcc1b532817ec99b3686bb1",
		"bee2-app-front":  "d203f7c356dd1bf7c7f0383343491144a51bdb10bb7ce3f365650a19797d1d65",
		"bee2-app-nginx":  "463a0778bebe2cec68ed9a2874f8bee2a794f8cf90a613a25de81acc394cc5b3",
		"bee2-app-api":    "c0a21b686830565881f6170c3c5c2da7cd0d8551028a47c3bc3cb6fd9e109a06",
		"bee2-job-site":   "d9bdace3c46337ade2f2e08cdcc530846a0b3eeb9e07a8fda48aae0a561a9ca1",
		"bee2-job-report": "11134d51413ea935fba1f60e40269b3d3d6559b5435bae4ae87f120df87a6b09",
	}
	seen := 0
	for _, yml := range []string{base, jobsBase} {
		s := settings(t, yml)
		d, err := DesireFrom(s, "web1", Sources{Digest: fakeDigest(""), Head: fakeHead("")})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range append(slices.Clone(d.Containers), d.Jobs...) {
			svc := s.App("web1", c.Service)
			if c.Kind == config.KindJob {
				svc = s.JobOn("web1", c.Service)
			}
			label, hash := hashAtMain(t, s, svc, c.Image)
			if c.Hash != hash || c.Labels[labels.SpecDigest] != label {
				t.Errorf("%s: hash %s, digest %s;\nmain's code gives %s, %s", c.Name, c.Hash, c.Labels[labels.SpecDigest], hash, label)
			}
			if c.Hash != atMain[c.Name] {
				t.Errorf("%s: hash %s, main printed %s", c.Name, c.Hash, atMain[c.Name])
			}
			seen++
		}
	}
	if seen != len(atMain) {
		t.Errorf("checked %d containers, want %d", seen, len(atMain))
	}
}

// allOptions sets every option of #14 on front, the application of base that publishes 80 and 443.
func allOptions(s *config.Settings) {
	f := s.App("web1", "front")
	f.Cmd = []string{"serve", "--port", "80"}
	f.Entrypoint = []string{"/entry"}
	f.User = "app"
	f.WorkingDir = "/srv"
	f.Hostname = "front.internal"
	f.Labels = map[string]string{"traefik.http.routers.front.rule": "Host(`example.com`)", "lb.net": "public"}
	f.Networks = []string{"public", "network", "db"}
	f.StaticIPv4, f.StaticIPv6 = "10.66.0.5", "fd00:66::5"
	f.Ports = []config.Port{
		{ContainerPort: 80, HostPort: 80, Proto: "tcp"},
		{ContainerPort: 443, HostPort: 8443, Proto: "tcp"},
		{ContainerPort: 53, HostPort: 53, Proto: "udp", HostIPs: []string{"127.0.0.1", "::1"}},
	}
	f.ExtraHosts = []string{"mail.example.com:10.66.0.9"}
	f.CapAdd = []string{"NET_ADMIN"}
	f.Memory, f.NanoCPUs, f.PidsLimit = 512<<20, 1_500_000_000, 100
	f.Restart = "always"
	f.StopSignal, f.StopGrace = "SIGQUIT", 30*time.Second
	f.ReadOnly = true
	f.Tmpfs = map[string]string{"/run": "size=16m"}
	f.Sysctls = map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"}
	f.Ulimits = []config.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}}
	f.Devices = []string{"/dev/null:/dev/xnull"}
	f.Log = &config.LogConfig{Driver: "json-file", Options: map[string]string{"max-size": "10m"}}
}

func TestDesiredMapsEveryOption(t *testing.T) {
	c := container(t, desiredWith(t, base, allOptions), "bee2-app-front")
	if !slices.Equal(c.Cmd, []string{"serve", "--port", "80"}) || !slices.Equal(c.Entrypoint, []string{"/entry"}) {
		t.Errorf("Cmd %q, Entrypoint %q", c.Cmd, c.Entrypoint)
	}
	if c.User != "app" || c.WorkingDir != "/srv" || c.Hostname != "front.internal" {
		t.Errorf("User %q, WorkingDir %q, Hostname %q", c.User, c.WorkingDir, c.Hostname)
	}
	if c.Network != "bee2-public" || !slices.Equal(c.MoreNetworks, []string{"bee2-network", "bee2-db"}) || !slices.Equal(c.Aliases, []string{"front"}) {
		t.Errorf("Network %q, MoreNetworks %q, Aliases %q; want bee2-public, then the default network and bee2-db", c.Network, c.MoreNetworks, c.Aliases)
	}
	if c.IPv4Address != "10.66.0.5" || c.IPv6Address != "fd00:66::5" {
		t.Errorf("addresses %q, %q", c.IPv4Address, c.IPv6Address)
	}
	wantPorts := []engine.PortSpec{
		{HostPort: 80, ContainerPort: 80, Proto: "tcp"},
		{HostPort: 8443, ContainerPort: 443, Proto: "tcp"},
		{HostIP: "127.0.0.1", HostPort: 53, ContainerPort: 53, Proto: "udp"},
		{HostIP: "::1", HostPort: 53, ContainerPort: 53, Proto: "udp"},
	}
	if !slices.Equal(c.Ports, wantPorts) {
		t.Errorf("Ports %+v, want %+v (one per host address)", c.Ports, wantPorts)
	}
	if !slices.Equal(c.ExtraHosts, []string{"mail.example.com:10.66.0.9"}) || !slices.Equal(c.CapAdd, []string{"NET_ADMIN"}) {
		t.Errorf("ExtraHosts %q, CapAdd %q", c.ExtraHosts, c.CapAdd)
	}
	if c.Memory != 512<<20 || c.NanoCPUs != 1_500_000_000 || c.PidsLimit != 100 {
		t.Errorf("Memory %d, NanoCPUs %d, PidsLimit %d", c.Memory, c.NanoCPUs, c.PidsLimit)
	}
	if c.RestartPolicy != "always" || c.StopSignal != "SIGQUIT" || c.StopTimeout != 30*time.Second || !c.ReadOnly {
		t.Errorf("restart %q, stop %q after %v, read-only %v", c.RestartPolicy, c.StopSignal, c.StopTimeout, c.ReadOnly)
	}
	if c.Tmpfs["/run"] != "size=16m" || c.Sysctls["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Errorf("Tmpfs %v, Sysctls %v", c.Tmpfs, c.Sysctls)
	}
	if !slices.Equal(c.Ulimits, []engine.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}}) || !slices.Equal(c.Devices, []string{"/dev/null:/dev/xnull"}) {
		t.Errorf("Ulimits %+v, Devices %q", c.Ulimits, c.Devices)
	}
	if c.LogDriver != "json-file" || c.LogOptions["max-size"] != "10m" {
		t.Errorf("log %q %v", c.LogDriver, c.LogOptions)
	}
	if c.Labels["lb.net"] != "public" || c.Labels["traefik.http.routers.front.rule"] != "Host(`example.com`)" || c.Labels[labels.Owner] != labels.Bee2d {
		t.Errorf("Labels %v, want the user's and bee2d's", c.Labels)
	}
	// The desired network of the server stays its default network.
	if d := desiredWith(t, base, allOptions); d.Network != "bee2-network" {
		t.Errorf("Desired.Network %q", d.Network)
	}
}

// Without the options, a container gets Bee2's defaults: the default network alone, the restart policy of
// its kind, the default stop grace, the image's command and entrypoint.
func TestDesiredDefaultsWithoutOptions(t *testing.T) {
	d := desired(t, jobsBase, "")
	app, job := container(t, d, "bee2-app-nginx"), container(t, d, "bee2-job-report")
	for _, c := range []*Container{app, job} {
		if c.Network != "bee2-network" || c.MoreNetworks != nil || c.IPv4Address != "" {
			t.Errorf("%s: network %q, more %q, address %q", c.Name, c.Network, c.MoreNetworks, c.IPv4Address)
		}
		if c.StopTimeout != config.StopTimeout || c.Cmd != nil || c.Entrypoint != nil || c.Ports != nil {
			t.Errorf("%s: stop timeout %v, cmd %q, entrypoint %q, ports %v", c.Name, c.StopTimeout, c.Cmd, c.Entrypoint, c.Ports)
		}
	}
	if app.RestartPolicy != "unless-stopped" || job.RestartPolicy != "no" {
		t.Errorf("restart policies %q and %q, want unless-stopped for applications and no for jobs", app.RestartPolicy, job.RestartPolicy)
	}
	d = desiredWith(t, jobsBase, func(s *config.Settings) { s.JobOn("web1", "report").Restart = "on-failure:3" })
	if c := container(t, d, "bee2-job-report"); c.RestartPolicy != "on-failure:3" {
		t.Errorf("a job's own restart policy %q, want on-failure:3", c.RestartPolicy)
	}
}

func TestNetworkNamesResolve(t *testing.T) {
	for _, tc := range []struct {
		names   []string
		primary string
		more    []string
	}{
		{nil, "bee2-network", nil},
		{[]string{"network"}, "bee2-network", nil},
		{[]string{"public"}, "bee2-public", nil},
		{[]string{"public", "network", "lb_dual_stack"}, "bee2-public", []string{"bee2-network", "bee2-lb_dual_stack"}},
	} {
		primary, more := networkNames("bee2", tc.names)
		if primary != tc.primary || !slices.Equal(more, tc.more) {
			t.Errorf("%q: %q, %q; want %q, %q", tc.names, primary, more, tc.primary, tc.more)
		}
	}
}

// A user's labels cannot take over bee2d's: ownership, the spec hash and its digest are bee2d's own, and
// labels in bee2d's namespace are dropped rather than hashed.
func TestUserLabelsGoUnderBee2ds(t *testing.T) {
	c := container(t, desiredWith(t, base, func(s *config.Settings) {
		s.App("web1", "front").Labels = map[string]string{
			labels.Owner: "someone", labels.SpecHash: "0000", labels.StoppedFor: "x", "traefik.enable": "true",
		}
	}), "bee2-app-front")
	if c.Labels[labels.Owner] != labels.Bee2d || c.Labels[labels.SpecHash] != c.Hash {
		t.Errorf("owner %q, hash label %q (hash %s): a user label won", c.Labels[labels.Owner], c.Labels[labels.SpecHash], c.Hash)
	}
	if _, ok := c.Labels[labels.StoppedFor]; ok {
		t.Errorf("a user label in bee2d's namespace was kept: %v", c.Labels)
	}
	if c.Labels["traefik.enable"] != "true" || !maps.Equal(c.Digest.Labels, map[string]string{"traefik.enable": "true"}) {
		t.Errorf("labels %v, digest labels %v; want the user's traefik.enable in both", c.Labels, c.Digest.Labels)
	}
}

func TestDigestPortsKeepSimplePortsAsNumbers(t *testing.T) {
	simple, other := digestPorts([]engine.PortSpec{
		{HostPort: 443, ContainerPort: 443, Proto: "tcp"},
		{HostPort: 80, ContainerPort: 80},
		{HostPort: 8443, ContainerPort: 443, Proto: "tcp"},
		{HostPort: 53, ContainerPort: 53, Proto: "udp"},
		{HostIP: "127.0.0.1", HostPort: 5432, ContainerPort: 5432, Proto: "tcp"},
		{HostIP: "::1", HostPort: 5432, ContainerPort: 5432, Proto: "tcp"},
		{HostIP: "127.0.0.1", ContainerPort: 9000, Proto: "tcp"},
	})
	if !slices.Equal(simple, []int{80, 443}) {
		t.Errorf("simple %v, want [80 443]", simple)
	}
	want := []string{"127.0.0.1:5432:5432/tcp", "127.0.0.1::9000/tcp", "53:53/udp", "8443:443/tcp", "[::1]:5432:5432/tcp"}
	if !slices.Equal(other, want) {
		t.Errorf("other %q, want %q", other, want)
	}
}

// A live container made with every option has a digest label that reads back to the same digest: an
// unchanged spec plans nothing.
func TestEveryOptionUnchangedPlansNothing(t *testing.T) {
	d := desiredWith(t, base, allOptions)
	if p := Diff(d, liveFrom(d), Options{}); !p.Empty() {
		t.Errorf("an unchanged spec with every option is acted on:\n%s", p)
	}
	again := container(t, desiredWith(t, base, allOptions), "bee2-app-front")
	if again.Hash != container(t, d, "bee2-app-front").Hash {
		t.Error("the hash of a spec with every option differs between two loads")
	}
}

// Capabilities in another order, or an explicit stop grace equal to the default, make the same container:
// no recreate.
func TestEquivalentOptionsHashAlike(t *testing.T) {
	front := func(edit func(*config.Service)) string {
		return container(t, desiredWith(t, base, func(s *config.Settings) { edit(s.App("web1", "front")) }), "bee2-app-front").Hash
	}
	if a, b := front(func(f *config.Service) { f.CapAdd = []string{"NET_ADMIN", "SYS_NICE"} }),
		front(func(f *config.Service) { f.CapAdd = []string{"SYS_NICE", "NET_ADMIN"} }); a != b {
		t.Error("the order of capabilities changes the hash")
	}
	if a, b := front(func(f *config.Service) {}), front(func(f *config.Service) { f.StopGrace = config.StopTimeout }); a != b {
		t.Error("a stop grace equal to the default changes the hash")
	}
}

func withLabels(l map[string]string) func(*config.Service) {
	return func(f *config.Service) { f.Labels = l }
}

func withLog(driver string, options map[string]string) func(*config.Service) {
	return func(f *config.Service) { f.Log = &config.LogConfig{Driver: driver, Options: options} }
}

// Each option that changes is named in the recreate's cause, readably, without env values.
func TestChangedOptionIsNamedAsCause(t *testing.T) {
	type edit = func(f *config.Service)
	for _, tc := range []struct {
		name       string
		live, want edit
		cause      string
	}{
		{"memory", func(f *config.Service) { f.Memory = 256 << 20 }, func(f *config.Service) { f.Memory = 512 << 20 }, "memory 256MiB → 512MiB"},
		{"memory limit removed", func(f *config.Service) { f.Memory = 1 << 30 }, nil, "memory 1GiB → unlimited"},
		{"cpus", nil, func(f *config.Service) { f.NanoCPUs = 1_500_000_000 }, "cpus unlimited → 1.5"},
		{"pids", func(f *config.Service) { f.PidsLimit = 100 }, func(f *config.Service) { f.PidsLimit = 200 }, "pids limit 100 → 200"},
		{"user", func(f *config.Service) { f.User = "app" }, func(f *config.Service) { f.User = "root" }, "user changed"},
		{"working directory", nil, func(f *config.Service) { f.WorkingDir = "/srv" }, "working directory changed"},
		{"hostname", nil, func(f *config.Service) { f.Hostname = "front" }, "hostname changed"},
		{"command", nil, func(f *config.Service) { f.Cmd = []string{"serve"} }, "command changed"},
		{"entrypoint", nil, func(f *config.Service) { f.Entrypoint = []string{"/entry"} }, "entrypoint changed"},
		{"entrypoint cleared", nil, func(f *config.Service) { f.Entrypoint = []string{} }, "entrypoint changed"},
		{"port on a host address", nil, func(f *config.Service) {
			f.Ports = append(f.Ports, config.Port{ContainerPort: 5432, HostPort: 5432, Proto: "tcp", HostIPs: []string{"127.0.0.1"}})
		}, "port 127.0.0.1:5432:5432/tcp added"},
		{"port made udp", nil, func(f *config.Service) { f.Ports[1].Proto = "udp" }, "port 443 removed; port 443:443/udp added"},
		{"labels", withLabels(map[string]string{"traefik.http.routers.front.rule": "Host(`a.com`)", "lb.net": "x"}),
			withLabels(map[string]string{"traefik.http.routers.front.rule": "Host(`b.com`)", "lb.net": "x"}),
			"labels changed (traefik.http.routers.front.rule)"},
		{"many labels", nil, withLabels(map[string]string{"a": "1", "b": "2", "c": "3", "d": "4", "e": "5"}),
			"labels changed (a, b, c and 2 more)"},
		{"primary network", nil, func(f *config.Service) { f.Networks = []string{"public"} }, "network bee2-network → bee2-public"},
		{"more networks", nil, func(f *config.Service) { f.Networks = []string{"network", "db"} }, "networks changed (none → bee2-db)"},
		{"static address", nil, func(f *config.Service) { f.StaticIPv4 = "10.66.0.5" }, "static IPv4 none → 10.66.0.5"},
		{"static IPv6", func(f *config.Service) { f.StaticIPv6 = "fd00::5" }, func(f *config.Service) { f.StaticIPv6 = "fd00::6" }, "static IPv6 fd00::5 → fd00::6"},
		{"extra host", nil, func(f *config.Service) { f.ExtraHosts = []string{"db:10.0.0.2"} }, "extra host db:10.0.0.2 added"},
		{"capability", func(f *config.Service) { f.CapAdd = []string{"NET_ADMIN"} }, nil, "capability NET_ADMIN removed"},
		{"restart policy", nil, func(f *config.Service) { f.Restart = "always" }, "restart policy unless-stopped → always"},
		{"stop signal", func(f *config.Service) { f.StopSignal = "SIGTERM" }, func(f *config.Service) { f.StopSignal = "SIGQUIT" }, "stop signal SIGTERM → SIGQUIT"},
		{"stop signal set", nil, func(f *config.Service) { f.StopSignal = "SIGINT" }, "stop signal default → SIGINT"},
		{"stop grace", nil, func(f *config.Service) { f.StopGrace = 30 * time.Second }, "stop timeout 10s → 30s"},
		{"read-only", nil, func(f *config.Service) { f.ReadOnly = true }, "root filesystem made read-only"},
		{"writable", func(f *config.Service) { f.ReadOnly = true }, nil, "root filesystem made writable"},
		{"tmpfs", nil, func(f *config.Service) { f.Tmpfs = map[string]string{"/run": ""} }, "tmpfs changed (/run)"},
		{"sysctl", func(f *config.Service) { f.Sysctls = map[string]string{"net.core.somaxconn": "128"} },
			func(f *config.Service) { f.Sysctls = map[string]string{"net.core.somaxconn": "1024"} }, "sysctls changed (net.core.somaxconn)"},
		{"ulimit", nil, func(f *config.Service) { f.Ulimits = []config.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}} }, "ulimit nofile=1024:2048 added"},
		{"device", nil, func(f *config.Service) { f.Devices = []string{"/dev/null:/dev/xnull"} }, "device /dev/null:/dev/xnull added"},
		{"log driver", nil, func(f *config.Service) { f.Log = &config.LogConfig{Driver: "none"} }, "log driver default → none"},
		{"log options", withLog("json-file", map[string]string{"max-size": "1m"}), withLog("json-file", map[string]string{"max-size": "10m"}),
			"log options changed (max-size)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			on := func(e edit) func(*config.Settings) {
				return func(s *config.Settings) {
					if e != nil {
						e(s.App("web1", "front"))
					}
				}
			}
			live := liveFrom(desiredWith(t, base, on(tc.live)))
			p := Diff(desiredWith(t, base, on(tc.want)), live, Options{})
			if len(p.Actions) != 1 || p.Actions[0].Op != OpRecreateContainer || p.Actions[0].Resource != "bee2-app-front" {
				t.Fatalf("want one recreate of front:\n%s", p)
			}
			if got := p.Actions[0].Cause; got != tc.cause {
				t.Errorf("cause %q, want %q", got, tc.cause)
			}
		})
	}
}

// apiAndReport is an application and a job that links to it, both from images.
const apiAndReport = `
servers:
  web1: {}
applications:
  api:
    server: web1
    image: api:1
jobs:
  report:
    server: web1
    image: reporter:1
    link: [api]
`

// A container's further networks are connected after it is created and before it starts, with its
// aliases, for an application created, one recreated and a job alike.
func TestExecuteConnectsMoreNetworksBeforeStart(t *testing.T) {
	onNetworks := func(s *config.Settings) {
		s.App("web1", "api").Networks = []string{"public", "network", "db"}
		s.JobOn("web1", "report").Networks = []string{"network", "db"}
	}
	want := desiredWith(t, apiAndReport, onNetworks)
	for name, p := range map[string]*Plan{
		"fresh server": Diff(want, &Snapshot{Complete: true}, Options{}),
		"recreate":     Diff(want, liveFrom(desired(t, apiAndReport, "")), Options{}),
	} {
		t.Run(name, func(t *testing.T) {
			eng := &recordingEngine{}
			ex := &Executor{Engine: eng, Parallel: 4, Prefix: "bee2", Server: "web1"}
			if _, err := ex.Execute(t.Context(), p); err != nil {
				t.Fatalf("%v\n%s", err, p)
			}
			for _, tc := range []struct{ container, start string }{
				{"bee2-app-api", "start id-bee2-app-api"},
				{"bee2-job-report", "run id-bee2-job-report"},
			} {
				create, start := eng.index("create "+tc.container), eng.index(tc.start)
				svc := strings.TrimPrefix(strings.TrimPrefix(tc.container, "bee2-app-"), "bee2-job-")
				var connects []int
				for _, n := range container(t, want, tc.container).MoreNetworks {
					connects = append(connects, eng.index("connect "+n+" id-"+tc.container+" "+svc))
				}
				if create < 0 || start < 0 || len(connects) == 0 || slices.Min(connects) < create || slices.Max(connects) > start {
					t.Errorf("%s: want create, then connect to each further network with its alias, then start:\n %s",
						tc.container, strings.Join(eng.calls, "\n "))
				}
			}
			// The primary network is the create's own; only the others are connected.
			if i := eng.index("connect bee2-network id-bee2-job-report report"); i >= 0 {
				t.Errorf("the job was connected again to its primary network: %v", eng.calls)
			}
		})
	}
}

// A container that cannot join a further network is the action's error, is removed (never a half-made
// container under its final name) and never started; in a recreate, the old container comes back.
func TestExecuteConnectFailureDiscardsTheContainer(t *testing.T) {
	onNetworks := func(s *config.Settings) { s.App("web1", "api").Networks = []string{"network", "db"} }
	want := desiredWith(t, apiAndReport, onNetworks)
	for name, live := range map[string]*Snapshot{
		"create":   {Complete: true},
		"recreate": liveFrom(desired(t, apiAndReport, "")),
	} {
		t.Run(name, func(t *testing.T) {
			p := Diff(want, live, Options{Only: "api"})
			eng := &recordingEngine{fail: map[string]error{"connect bee2-db id-bee2-app-api api": errors.New("network bee2-db not found")}}
			ex := &Executor{Engine: eng, Parallel: 4, Prefix: "bee2", Server: "web1"}
			res, err := ex.Execute(t.Context(), p)
			if err == nil || !strings.Contains(err.Error(), "bee2-app-api") || !strings.Contains(err.Error(), "bee2-db not found") {
				t.Fatalf("err = %v, want one naming the container and the network's error", err)
			}
			if res.Failed != 1 {
				t.Errorf("failed = %d, want 1", res.Failed)
			}
			if eng.index("remove id-bee2-app-api") < 0 || eng.index("start id-bee2-app-api") >= 0 {
				t.Errorf("want the new container removed and never started: %v", eng.calls)
			}
			if name == "recreate" {
				old := find(live, "bee2-app-api").ID
				if eng.index("rename "+old+" bee2-app-api") < 0 || eng.index("start "+old) < 0 {
					t.Errorf("the old container did not get its name back and start again: %v", eng.calls)
				}
			}
		})
	}
}

// A recreate waits for the old container as long as its own stop grace says, when that is longer than the
// executor's.
func TestRecreateGivesTheOldItsStopGrace(t *testing.T) {
	live := liveFrom(desired(t, apiAndReport, ""))
	want := desiredWith(t, apiAndReport, func(s *config.Settings) { s.App("web1", "api").StopGrace = time.Minute })
	p := Diff(want, live, Options{Only: "api"})
	eng := &graceRecorder{}
	ex := &Executor{Engine: eng, Prefix: "bee2", Server: "web1", StopTimeout: 5 * time.Second}
	if _, err := ex.Execute(t.Context(), p); err != nil {
		t.Fatal(err)
	}
	if eng.grace != time.Minute {
		t.Errorf("stopped the old container with %v, want its minute", eng.grace)
	}
}

type graceRecorder struct {
	recordingEngine
	grace time.Duration
}

func (e *graceRecorder) StopContainer(_ context.Context, _ string, timeout time.Duration) error {
	e.grace = timeout
	return nil
}

// User labels are kept out of bee2d's namespace by its prefix, so every label bee2d sets must carry it.
func TestBee2dLabelsAreInTheirNamespace(t *testing.T) {
	for _, l := range []string{labels.Owner, labels.Prefix, labels.Server, labels.Kind, labels.Name, labels.SpecHash,
		labels.HashScheme, labels.SpecDigest, labels.Commit, labels.BuiltBy, labels.BuiltFor, labels.StoppedFor, labels.Probe} {
		if !ownLabel(l) {
			t.Errorf("label %s is outside %s", l, ownLabelPrefix)
		}
	}
	if ownLabel("traefik.enable") || ownLabel("io.bee2dx") {
		t.Error("a user's label counts as bee2d's")
	}
}

// laterLayout is Bee2's later layout with the options of #14, decoded by pkg/config as a user writes it.
const laterLayout = `
servers:
  web1:
    ip:
      public: {ipv4: 100.100.100.1, ipv6: "a:b:c:d::102"}
docker:
  web1:
    prefix: w1
    networks:
      public: {ipv4: 172.20.0.0/24}
      private: {ipv4: 172.21.0.0/24}
    applications:
      postgres:
        image: postgres:16
        networks: [private]
        static_ip: {ipv4: 172.21.0.5}
      ttrss:
        image: ttrss:1
        networks: [public, private, network]
        internal_dns: {db.internal: postgres}
        ports: ["127.0.0.1:8443:443", "1194/udp"]
        traefik: {http: {hosts: [rss.example.com], port: 8080, tls: enabled}}
        labels: {lb.net: public}
      web:
        image: mastodon:v4
        entrypoint: /docker-entrypoint.sh
        memory: 512m
        cpus: 1.5
        stop_signal: quit
        stop_grace_period: 30s
        ulimits: {nofile: {soft: 1024, hard: 4096}}
        log: {driver: json-file, options: {max-size: 10m}}
`

// The settings a user writes reach the spec: the seam between the decoder and the mapping.
func TestLaterLayoutDecodesIntoTheSpec(t *testing.T) {
	d := desired(t, laterLayout, "")
	if d.Prefix != "w1" || d.Network != "w1-network" {
		t.Errorf("prefix %q, network %q", d.Prefix, d.Network)
	}
	pg, rss, web := container(t, d, "w1-app-postgres"), container(t, d, "w1-app-ttrss"), container(t, d, "w1-app-web")
	if pg.Network != "w1-private" || pg.IPv4Address != "172.21.0.5" || pg.MoreNetworks != nil {
		t.Errorf("postgres on %q at %q, more %q", pg.Network, pg.IPv4Address, pg.MoreNetworks)
	}
	if rss.Network != "w1-public" || !slices.Equal(rss.MoreNetworks, []string{"w1-private", "w1-network"}) {
		t.Errorf("ttrss on %q, then %q", rss.Network, rss.MoreNetworks)
	}
	if !slices.Contains(rss.Ports, engine.PortSpec{HostIP: "127.0.0.1", HostPort: 8443, ContainerPort: 443, Proto: "tcp"}) ||
		!slices.Contains(rss.Ports, engine.PortSpec{HostPort: 1194, ContainerPort: 1194, Proto: "udp"}) {
		t.Errorf("ttrss ports %+v", rss.Ports)
	}
	if !slices.Equal(rss.ExtraHosts, []string{"db.internal:172.21.0.5"}) {
		t.Errorf("ttrss extra hosts %q", rss.ExtraHosts)
	}
	if rss.Labels["lb.net"] != "public" || rss.Labels["traefik.http.routers.w1-app-ttrss.rule"] != "Host(`rss.example.com`)" ||
		rss.Labels[labels.Name] != "ttrss" {
		t.Errorf("ttrss labels %v", rss.Labels)
	}
	if !slices.Equal(web.Entrypoint, []string{"/docker-entrypoint.sh"}) || web.Memory != 512<<20 || web.NanoCPUs != 1_500_000_000 ||
		web.StopSignal != "SIGQUIT" || web.StopTimeout != 30*time.Second || web.LogDriver != "json-file" ||
		!slices.Equal(web.Ulimits, []engine.Ulimit{{Name: "nofile", Soft: 1024, Hard: 4096}}) {
		t.Errorf("web %+v", web.ContainerSpec)
	}
	if web.Digest.StopTimeout != 30 || web.Digest.Memory != 512<<20 {
		t.Errorf("web digest %+v", web.Digest)
	}
}
