package dockerx_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

func TestMain(m *testing.M) { testdocker.Main(m) }

func TestConnectUnreachableNamesHost(t *testing.T) {
	host := "unix://" + filepath.Join(t.TempDir(), "no-docker.sock")
	_, err := dockerx.Connect(t.Context(), dockerx.Endpoint{Host: host})
	if err == nil || !strings.Contains(err.Error(), host) {
		t.Fatalf("err = %v, want one naming %s", err, host)
	}
}

func TestConnectHost(t *testing.T) {
	cli := testdocker.Require(t)
	if cli.Host() == "" {
		t.Error("empty Host")
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBuildImageHonoursDockerignore(t *testing.T) {
	t.Parallel()
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile":         "FROM scratch\nCOPY kept.txt /kept.txt\n",
		"Dockerfile.ignored": "FROM scratch\nCOPY ignored.txt /ignored.txt\n",
		".dockerignore":      "ignored.txt\n",
		"kept.txt":           "kept",
		"ignored.txt":        "ignored",
	})
	tag := prefix + "/ctx:" + "latest"
	var out bytes.Buffer
	id, err := cli.BuildImage(t.Context(), dockerx.BuildRequest{
		ContextDir: dir,
		Tags:       []string{tag},
		Labels:     map[string]string{"bee2d.test": "true"},
		Output:     &out,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.HasPrefix(id, "sha256:") {
		t.Errorf("id = %q, want sha256:...", id)
	}
	if !strings.Contains(out.String(), ": COPY kept.txt /kept.txt") {
		t.Errorf("output lacks the steps:\n%s", out.String())
	}
	if ok, err := cli.ImageExists(t.Context(), tag); err != nil || !ok {
		t.Errorf("ImageExists(%s) = %v, %v", tag, ok, err)
	}
	images, err := cli.ListImages(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(images, func(img dockerx.Image) bool {
		return img.ID == id && slices.Contains(img.Tags, tag) && img.Labels["bee2d.test"] == "true"
	}) {
		t.Errorf("ListImages has no %s with id %s and its label", tag, id)
	}

	// The ignored file never reached the engine, so the classic builder cannot copy it.
	_, err = cli.BuildImage(t.Context(), dockerx.BuildRequest{
		ContextDir: dir,
		Dockerfile: "Dockerfile.ignored",
		Tags:       []string{prefix + "/ignored:latest"},
	})
	var be *dockerx.BuildError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a BuildError", err)
	}
	if !strings.Contains(be.Step, "COPY ignored.txt") || !strings.Contains(be.Message, "ignored.txt") {
		t.Errorf("BuildError = %+v, want the COPY step and the missing file", be)
	}
}

func TestBuildErrorCarriesStep(t *testing.T) {
	t.Parallel()
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	sleeper := testdocker.Sleeper(t, cli)

	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"Dockerfile": fmt.Sprintf("FROM %s\nRUN [\"/app\", \"exit\", \"3\"]\n", sleeper),
	})
	var out bytes.Buffer
	_, err := cli.BuildImage(t.Context(), dockerx.BuildRequest{
		ContextDir: dir,
		Tags:       []string{prefix + "/fails:latest"},
		Output:     &out,
	})
	var be *dockerx.BuildError
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a BuildError", err)
	}
	if be.Step != `Step 2/2 : RUN ["/app", "exit", "3"]` {
		t.Errorf("Step = %q", be.Step)
	}
	if !strings.Contains(be.Message, "non-zero code: 3") {
		t.Errorf("Message = %q", be.Message)
	}
	if !strings.Contains(err.Error(), prefix+"/fails:latest") {
		t.Errorf("err = %q, want the image named", err)
	}
	if !strings.Contains(out.String(), "exiting with 3") {
		t.Errorf("output lacks the step's own output:\n%s", out.String())
	}
}

func TestBuildImageWithoutDockerfile(t *testing.T) {
	cli := testdocker.Require(t)
	_, err := cli.BuildImage(t.Context(), dockerx.BuildRequest{ContextDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "no Dockerfile") {
		t.Errorf("err = %v, want no Dockerfile", err)
	}
}

func TestImageExistsMissing(t *testing.T) {
	cli := testdocker.Require(t)
	ok, err := cli.ImageExists(t.Context(), testdocker.UniquePrefix(t)+"/none:latest")
	if err != nil || ok {
		t.Errorf("ImageExists = %v, %v; want false, nil", ok, err)
	}
}

func TestPullImageErrorNamesRef(t *testing.T) {
	cli := testdocker.Require(t)
	ref := "127.0.0.1:1/" + testdocker.UniquePrefix(t) + ":latest"
	err := cli.PullImage(t.Context(), ref, nil)
	if err == nil || !strings.Contains(err.Error(), ref) {
		t.Errorf("err = %v, want one naming %s", err, ref)
	}
}

func TestNetworkAndVolume(t *testing.T) {
	t.Parallel()
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	net, vol := prefix+"-net", prefix+"-data"
	testdocker.Cleanup(t, cli, prefix, vol)
	labels := map[string]string{"bee2d.owner": "test"}
	ctx := t.Context()

	if err := cli.CreateNetwork(ctx, net, labels); err != nil {
		t.Fatal(err)
	}
	err := cli.CreateNetwork(ctx, net, labels)
	if !dockerx.IsConflict(err) || !strings.Contains(err.Error(), net) {
		t.Errorf("second CreateNetwork: err = %v, want a conflict naming %s", err, net)
	}
	networks, err := cli.ListNetworks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(networks, func(n dockerx.Network) bool { return n.Name == net })
	if i < 0 {
		t.Fatalf("network %s not listed", net)
	}
	if n := networks[i]; n.Driver != "bridge" || n.Labels["bee2d.owner"] != "test" || n.ID == "" {
		t.Errorf("network = %+v", n)
	}

	for range 2 {
		if err := cli.CreateVolume(ctx, vol, labels); err != nil {
			t.Fatal(err)
		}
	}
	volumes, err := cli.ListVolumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(volumes, func(v dockerx.Volume) bool {
		return v.Name == vol && v.Driver == "local" && v.Labels["bee2d.owner"] == "test"
	}) {
		t.Errorf("volume %s not listed with its labels: %+v", vol, volumes)
	}

	if err := cli.RemoveNetwork(ctx, net); err != nil {
		t.Fatal(err)
	}
	if err := cli.RemoveNetwork(ctx, net); !dockerx.IsNotFound(err) {
		t.Errorf("removing a removed network: err = %v, want not found", err)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// httpGet retries until the container's server answers, as it starts after StartContainer returns.
func httpGet(t *testing.T, u string) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(u)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return string(b)
			}
			err = fmt.Errorf("%s: %s", resp.Status, b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", u, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func hostHasIPv6() bool {
	b, err := os.ReadFile("/proc/net/if_inet6")
	return err == nil && len(b) > 0
}

func findContainer(t *testing.T, cli *dockerx.Client, name string) (dockerx.Container, bool) {
	t.Helper()
	list, err := cli.ListContainers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list {
		if c.Name == name {
			return c, true
		}
	}
	return dockerx.Container{}, false
}

func TestContainerLifecycle(t *testing.T) {
	t.Parallel()
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	network, vol, name := prefix+"-net", prefix+"-data", prefix+"-web"
	testdocker.Cleanup(t, cli, prefix, vol)
	image := testdocker.Sleeper(t, cli)
	ctx := t.Context()

	if err := cli.CreateNetwork(ctx, network, nil); err != nil {
		t.Fatal(err)
	}
	if err := cli.CreateVolume(ctx, vol, nil); err != nil {
		t.Fatal(err)
	}
	hostDir := t.TempDir()
	writeFiles(t, hostDir, map[string]string{"note.txt": "from the host"})
	port := freePort(t)
	spec := dockerx.ContainerSpec{
		Name:          name,
		Image:         image,
		Env:           []string{"GREETING=hello"},
		Binds:         []string{vol + ":/data:rw", hostDir + ":/host:ro"},
		Ports:         []dockerx.PortSpec{{HostPort: port, ContainerPort: port}},
		RestartPolicy: "unless-stopped",
		Network:       network,
		Aliases:       []string{"web-alias"},
		Labels:        map[string]string{"bee2d.kind": "app", "bee2d.name": "web"},
	}
	// The sleeper listens on $PORT, so host port = container port works on a free port.
	spec.Env = append(spec.Env, fmt.Sprintf("PORT=%d", port))
	id, err := cli.CreateContainer(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.StartContainer(ctx, id); err != nil {
		t.Fatal(err)
	}

	c, ok := findContainer(t, cli, name)
	if !ok {
		t.Fatalf("container %s not listed", name)
	}
	if c.ID != id || !c.Running() || c.Image != image || c.ImageID == "" || c.Created.IsZero() {
		t.Errorf("container = %+v", c)
	}
	if c.Labels["bee2d.kind"] != "app" || c.Labels["bee2d.name"] != "web" {
		t.Errorf("labels = %v", c.Labels)
	}
	if !slices.Equal(c.Networks, []string{network}) {
		t.Errorf("networks = %q, want only %s", c.Networks, network)
	}
	wantMounts := []dockerx.Mount{
		{Type: "volume", Name: vol, Destination: "/data", RW: true},
		{Type: "bind", Source: hostDir, Destination: "/host", RW: false},
	}
	if len(c.Mounts) != 2 {
		t.Fatalf("mounts = %+v", c.Mounts)
	}
	for i, m := range c.Mounts {
		w := wantMounts[i]
		if m.Type != w.Type || m.Name != w.Name || m.Destination != w.Destination || m.RW != w.RW ||
			(w.Source != "" && m.Source != w.Source) || m.Source == "" {
			t.Errorf("mount %d = %+v, want %+v", i, m, w)
		}
	}
	if len(c.Ports) == 0 {
		t.Fatalf("no published ports")
	}
	var hostIPs []string
	for _, p := range c.Ports {
		if p.HostPort != port || p.ContainerPort != port || p.Proto != "tcp" {
			t.Errorf("port = %+v, want %d/tcp on %d", p, port, port)
		}
		hostIPs = append(hostIPs, p.HostIP)
	}
	// An empty HostIP binds every address: engine 20.10 lists it as 0.0.0.0, and also as :: when the host
	// has IPv6.
	if !slices.Contains(hostIPs, "0.0.0.0") {
		t.Errorf("host addresses = %q, want 0.0.0.0 (all IPv4)", hostIPs)
	}
	if hostHasIPv6() && !slices.Contains(hostIPs, "::") {
		t.Errorf("host addresses = %q, want :: (all IPv6) too", hostIPs)
	}

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if got := httpGet(t, base+"/env/GREETING"); got != "hello" {
		t.Errorf("GREETING = %q", got)
	}
	if got := httpGet(t, base+"/file/host/note.txt"); got != "from the host" {
		t.Errorf("bind mount reads %q", got)
	}
	// The alias resolves on the network, here from the container itself.
	alias := fmt.Sprintf("http://web-alias:%d/env/GREETING", port)
	if got := httpGet(t, base+"/get?url="+url.QueryEscape(alias)); got != "hello" {
		t.Errorf("via alias: %q", got)
	}

	oldName := prefix + "-web-old"
	if err := cli.RenameContainer(ctx, id, oldName); err != nil {
		t.Fatal(err)
	}
	if _, ok := findContainer(t, cli, name); ok {
		t.Errorf("%s still listed after rename", name)
	}
	if c, ok := findContainer(t, cli, oldName); !ok || c.ID != id {
		t.Errorf("%s not listed after rename", oldName)
	}

	start := time.Now()
	if err := cli.StopContainer(ctx, id, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("stop took %v: SIGTERM was not honoured", d)
	}
	if c, _ := findContainer(t, cli, oldName); c.Running() || c.State != "exited" {
		t.Errorf("after stop: state %q (%s)", c.State, c.Status)
	}

	if err := cli.RemoveContainer(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, ok := findContainer(t, cli, oldName); ok {
		t.Errorf("%s still listed after remove", oldName)
	}
	volumes, err := cli.ListVolumes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(volumes, func(v dockerx.Volume) bool { return v.Name == vol }) {
		t.Errorf("volume %s went with its container", vol)
	}
	err = cli.RemoveContainer(ctx, id)
	if !dockerx.IsNotFound(err) || !strings.Contains(err.Error(), id) {
		t.Errorf("removing a removed container: err = %v, want not found naming it", err)
	}
	if err := cli.StartContainer(ctx, id); !dockerx.IsNotFound(err) {
		t.Errorf("starting a removed container: err = %v, want not found", err)
	}
}

func TestCreateContainerConflict(t *testing.T) {
	t.Parallel()
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	spec := dockerx.ContainerSpec{Name: prefix + "-job", Image: testdocker.Sleeper(t, cli), Cmd: []string{"echo", "hi"}}
	if _, err := cli.CreateContainer(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	_, err := cli.CreateContainer(t.Context(), spec)
	if !dockerx.IsConflict(err) || !strings.Contains(err.Error(), spec.Name) {
		t.Errorf("second create: err = %v, want a conflict naming %s", err, spec.Name)
	}
	spec.Name, spec.Image = prefix+"-other", prefix+"/missing:latest"
	if _, err := cli.CreateContainer(t.Context(), spec); !dockerx.IsNotFound(err) {
		t.Errorf("create from a missing image: err = %v, want not found", err)
	}
}
