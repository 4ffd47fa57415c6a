package dockerx_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/docker/docker/api/types/container"
)

// optionsProbeSource serves, on :8080, what its process sees of the options it was created with:
//
//	GET /info          {"args": [...], "uid": N, "gid": N, "cwd": "...", "hostname": "..."}
//	GET /file/PATH     the content of /PATH
//	PUT /file/PATH     writes the body to /PATH (500 with the error when it cannot)
//
// and exits 0 on SIGINT (the stop signal the test gives it) or SIGTERM.
const optionsProbeSource = `package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	http.HandleFunc("/info", func(w http.ResponseWriter, r *http.Request) {
		cwd, _ := os.Getwd()
		host, _ := os.Hostname()
		json.NewEncoder(w).Encode(map[string]any{"args": os.Args[1:], "uid": os.Getuid(), "gid": os.Getgid(), "cwd": cwd, "hostname": host})
	})
	http.HandleFunc("/file/", func(w http.ResponseWriter, r *http.Request) {
		path := "/" + strings.TrimPrefix(r.URL.Path, "/file/")
		if r.Method == http.MethodPut {
			b, _ := io.ReadAll(r.Body)
			if err := os.WriteFile(path, b, 0o644); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	go func() {
		if err := http.ListenAndServe(":8080", nil); err != nil {
			os.Exit(2)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
`

// subnetNetwork creates a network on a free 10.x.y.0/24 (another test or host may hold the first one
// tried) and returns a fixed address in it. testdocker.Cleanup removes it with the prefix.
func subnetNetwork(t *testing.T, cli *dockerx.Client, name string) string {
	t.Helper()
	var err error
	for range 10 {
		x, y := 200+rand.IntN(50), rand.IntN(256)
		if err = dockerx.CreateSubnetNetwork(t.Context(), cli, name, fmt.Sprintf("10.%d.%d.0/24", x, y)); err == nil {
			return fmt.Sprintf("10.%d.%d.10", x, y)
		}
	}
	t.Fatalf("create network %s with a subnet: %v", name, err)
	return ""
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Every option of a ContainerSpec reaches the engine: CreateContainer, ConnectNetwork before the start,
// then the engine's inspect shows each, and the running process sees them.
func TestCreateContainerWithEveryOptionArrives(t *testing.T) {
	t.Parallel()
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	image := testdocker.BuildGoImage(t, cli, "options-probe", optionsProbeSource)
	ctx := t.Context()

	primary, second := prefix+"-fixed", prefix+"-second"
	ip := subnetNetwork(t, cli, primary)
	if err := cli.CreateNetwork(ctx, second, nil); err != nil {
		t.Fatal(err)
	}
	tcpPort, udpPort := freePort(t), freeUDPPort(t)
	spec := dockerx.ContainerSpec{
		Name:       prefix + "-every",
		Image:      image,
		Env:        []string{"GREETING=hello"},
		Entrypoint: []string{"/app", "serve"},
		Cmd:        []string{"--flag", "x"},
		User:       "65534:65534",
		WorkingDir: "/work",
		Hostname:   "every-host",
		Ports: []dockerx.PortSpec{
			{HostIP: "127.0.0.1", HostPort: tcpPort, ContainerPort: 8080},
			{HostPort: udpPort, ContainerPort: 5353, Proto: "udp"},
		},
		RestartPolicy: "on-failure:2",
		Network:       primary,
		Aliases:       []string{"every"},
		IPv4Address:   ip,
		MoreNetworks:  []string{second},
		ExtraHosts:    []string{"db.internal:10.1.2.3"},
		CapAdd:        []string{"net_admin"},
		Memory:        64 << 20,
		NanoCPUs:      500_000_000,
		PidsLimit:     64,
		StopSignal:    "SIGINT",
		StopTimeout:   7 * time.Second,
		ReadOnly:      true,
		Tmpfs:         map[string]string{"/scratch": "size=1m"},
		Sysctls:       map[string]string{"net.ipv4.ip_unprivileged_port_start": "0"},
		Ulimits:       []dockerx.Ulimit{{Name: "nofile", Soft: 512, Hard: 1000}},
		Devices:       []string{"/dev/null:/dev/xnull"},
		LogDriver:     "json-file",
		LogOptions:    map[string]string{"max-size": "1m"},
		Labels:        map[string]string{"bee2d.test": "every", "traefik.http.routers.every.rule": "Host(`a.example`) && Path(`/b`)"},
	}
	id, err := cli.CreateContainer(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range spec.MoreNetworks {
		if err := cli.ConnectNetwork(ctx, n, id, spec.Aliases); err != nil {
			t.Fatal(err)
		}
	}
	if err := cli.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	got, err := dockerx.InspectContainer(ctx, cli, id)
	if err != nil {
		t.Fatal(err)
	}

	cfg, host := got.Config, got.HostConfig
	if !slices.Equal(cfg.Entrypoint, spec.Entrypoint) || !slices.Equal(cfg.Cmd, spec.Cmd) {
		t.Errorf("Entrypoint %q, Cmd %q", cfg.Entrypoint, cfg.Cmd)
	}
	if cfg.User != "65534:65534" || cfg.WorkingDir != "/work" || cfg.Hostname != "every-host" {
		t.Errorf("User %q, WorkingDir %q, Hostname %q", cfg.User, cfg.WorkingDir, cfg.Hostname)
	}
	if cfg.StopSignal != "SIGINT" || cfg.StopTimeout == nil || *cfg.StopTimeout != 7 {
		t.Errorf("StopSignal %q, StopTimeout %v; want SIGINT after 7 s", cfg.StopSignal, cfg.StopTimeout)
	}
	if cfg.Labels["bee2d.test"] != "every" || cfg.Labels["traefik.http.routers.every.rule"] != spec.Labels["traefik.http.routers.every.rule"] {
		t.Errorf("Labels %v", cfg.Labels)
	}
	if !slices.Contains(cfg.Env, "GREETING=hello") {
		t.Errorf("Env %q", cfg.Env)
	}
	if host.Memory != 64<<20 || host.NanoCPUs != 500_000_000 || host.PidsLimit == nil || *host.PidsLimit != 64 {
		t.Errorf("Memory %d, NanoCpus %d, PidsLimit %v", host.Memory, host.NanoCPUs, host.PidsLimit)
	}
	if host.RestartPolicy.Name != container.RestartPolicyOnFailure || host.RestartPolicy.MaximumRetryCount != 2 {
		t.Errorf("RestartPolicy %+v", host.RestartPolicy)
	}
	if !host.ReadonlyRootfs || host.Tmpfs["/scratch"] != "size=1m" {
		t.Errorf("ReadonlyRootfs %v, Tmpfs %v", host.ReadonlyRootfs, host.Tmpfs)
	}
	if host.Sysctls["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Errorf("Sysctls %v", host.Sysctls)
	}
	if len(host.Ulimits) != 1 || host.Ulimits[0].Name != "nofile" || host.Ulimits[0].Soft != 512 || host.Ulimits[0].Hard != 1000 {
		t.Errorf("Ulimits %v", host.Ulimits)
	}
	if len(host.Devices) != 1 || host.Devices[0] != (container.DeviceMapping{PathOnHost: "/dev/null", PathInContainer: "/dev/xnull", CgroupPermissions: "rwm"}) {
		t.Errorf("Devices %+v", host.Devices)
	}
	if host.LogConfig.Type != "json-file" || host.LogConfig.Config["max-size"] != "1m" {
		t.Errorf("LogConfig %+v", host.LogConfig)
	}
	if !slices.Contains(host.CapAdd, "CAP_NET_ADMIN") {
		t.Errorf("CapAdd %q", host.CapAdd)
	}
	if !slices.Equal(host.ExtraHosts, []string{"db.internal:10.1.2.3"}) {
		t.Errorf("ExtraHosts %q", host.ExtraHosts)
	}
	if _, ok := cfg.ExposedPorts["5353/udp"]; !ok {
		t.Errorf("ExposedPorts %v, want 5353/udp", cfg.ExposedPorts)
	}
	tcp, udp := host.PortBindings["8080/tcp"], host.PortBindings["5353/udp"]
	if len(tcp) != 1 || tcp[0].HostIP != "127.0.0.1" || tcp[0].HostPort != fmt.Sprint(tcpPort) {
		t.Errorf("8080/tcp bindings %+v, want 127.0.0.1:%d", tcp, tcpPort)
	}
	if len(udp) != 1 || udp[0].HostIP != "" || udp[0].HostPort != fmt.Sprint(udpPort) {
		t.Errorf("5353/udp bindings %+v, want every address at %d", udp, udpPort)
	}
	nets := got.NetworkSettings.Networks
	if ep := nets[primary]; ep == nil || ep.IPAddress != ip || ep.IPAMConfig == nil || ep.IPAMConfig.IPv4Address != ip || !slices.Contains(ep.Aliases, "every") {
		t.Errorf("on %s: %+v, want the fixed address %s and the alias", primary, ep, ip)
	}
	if ep := nets[second]; ep == nil || !slices.Contains(ep.Aliases, "every") || ep.IPAddress == "" {
		t.Errorf("on %s: %+v, want connected before the start, with the alias", second, ep)
	}
	if len(nets) != 2 {
		t.Errorf("networks %v, want only the two", slices.Sorted(func(yield func(string) bool) {
			for n := range nets {
				if !yield(n) {
					return
				}
			}
		}))
	}
	if !got.State.Running {
		t.Fatalf("not running: %+v", got.State)
	}

	// What the process sees, through the host address and port published to its container port.
	base := fmt.Sprintf("http://127.0.0.1:%d", tcpPort)
	var info struct {
		Args          []string
		UID, GID      int
		Cwd, Hostname string
	}
	if err := json.Unmarshal([]byte(httpGet(t, base+"/info")), &info); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(info.Args, []string{"serve", "--flag", "x"}) || info.UID != 65534 || info.GID != 65534 || info.Cwd != "/work" || info.Hostname != "every-host" {
		t.Errorf("the process sees %+v", info)
	}
	for path, want := range map[string]string{
		"/proc/sys/net/ipv4/ip_unprivileged_port_start": "0\n",
		"/dev/xnull": "",
	} {
		if got := httpGet(t, base+"/file"+path); got != want {
			t.Errorf("%s reads %q, want %q", path, got, want)
		}
	}
	if hosts := httpGet(t, base+"/file/etc/hosts"); !strings.Contains(hosts, "10.1.2.3\tdb.internal") {
		t.Errorf("/etc/hosts lacks the extra host:\n%s", hosts)
	}
	// Go raises its soft limit of open files towards the hard one at start, so only the hard one is the
	// engine's as it was given.
	if limits := httpGet(t, base+"/file/proc/self/limits"); !regexp.MustCompile(`Max open files +\d+ +1000 +files`).MatchString(limits) {
		t.Errorf("limits lack a hard nofile of 1000:\n%s", limits)
	}
	if code, body := httpPut(t, base+"/file/etc/written", "x"); code != http.StatusInternalServerError || !strings.Contains(body, "read-only file system") {
		t.Errorf("writing to the root: %d %s; want a read-only file system", code, body)
	}
	if code, body := httpPut(t, base+"/file/scratch/written", "x"); code != http.StatusOK {
		t.Errorf("writing to the tmpfs: %d %s", code, body)
	}

	// The stop signal is the one the process exits 0 on.
	if err := cli.StopContainer(ctx, id, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if got, err := dockerx.InspectContainer(ctx, cli, id); err != nil || got.State.ExitCode != 0 {
		t.Errorf("after stop: %+v, %v; want exit 0 on SIGINT", got.State, err)
	}
}

// A network that does not exist is an error that names the container and the network.
func TestConnectNetworkMissingNamesIt(t *testing.T) {
	t.Parallel()
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	id, err := cli.CreateContainer(t.Context(), dockerx.ContainerSpec{Name: prefix + "-c", Image: testdocker.Sleeper(t, cli)})
	if err != nil {
		t.Fatal(err)
	}
	err = cli.ConnectNetwork(t.Context(), prefix+"-none", id, []string{"c"})
	if !dockerx.IsNotFound(err) || !strings.Contains(err.Error(), prefix+"-none") || !strings.Contains(err.Error(), id) {
		t.Errorf("err = %v, want not found naming the network and the container", err)
	}
}

func httpPut(t *testing.T, u, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPut, u, bytes.NewReader([]byte(body)))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
