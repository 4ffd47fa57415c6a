package dockerx

import (
	"slices"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

func TestContainerConfigs(t *testing.T) {
	cfg, host, netCfg := containerConfigs(ContainerSpec{
		Name:          "bee2-app-web",
		Image:         "bee2/web:0123456789ab",
		Env:           []string{"A=1"},
		Binds:         []string{"data:/data:rw"},
		Ports:         []int{80, 443},
		RestartPolicy: "unless-stopped",
		Network:       "bee2",
		Aliases:       []string{"web"},
		Labels:        map[string]string{"bee2d.name": "web"},
	})
	if cfg.Cmd != nil {
		t.Errorf("Cmd = %q, want the image's default", cfg.Cmd)
	}
	for _, p := range []nat.Port{"80/tcp", "443/tcp"} {
		if _, ok := cfg.ExposedPorts[p]; !ok {
			t.Errorf("%s not exposed", p)
		}
		b := host.PortBindings[p]
		if len(b) != 1 || b[0].HostIP != "" || b[0].HostPort != p.Port() {
			t.Errorf("%s bindings = %+v, want one on every address at the same port", p, b)
		}
	}
	if host.RestartPolicy.Name != container.RestartPolicyUnlessStopped {
		t.Errorf("restart policy = %q", host.RestartPolicy.Name)
	}
	if host.NetworkMode != "bee2" {
		t.Errorf("network mode = %q, want the spec's network", host.NetworkMode)
	}
	ep := netCfg.EndpointsConfig["bee2"]
	if ep == nil || !slices.Equal(ep.Aliases, []string{"web"}) {
		t.Errorf("endpoint = %+v, want aliases [web]", ep)
	}
}

func TestContainerConfigsWithoutNetworkOrPorts(t *testing.T) {
	cfg, host, netCfg := containerConfigs(ContainerSpec{Name: "x", Image: "y", Cmd: []string{"run"}})
	if netCfg != nil || host.NetworkMode != "" {
		t.Errorf("network = %+v / %q, want the engine's default", netCfg, host.NetworkMode)
	}
	if cfg.ExposedPorts != nil || host.PortBindings != nil {
		t.Errorf("ports = %v / %v, want none", cfg.ExposedPorts, host.PortBindings)
	}
	if !slices.Equal(cfg.Cmd, []string{"run"}) {
		t.Errorf("Cmd = %q", cfg.Cmd)
	}
}

func TestContainerFromSummary(t *testing.T) {
	got := containerFromSummary(container.Summary{
		ID:    "abc",
		Names: []string{"/haproxy/nginx", "/nginx"},
		State: container.StateRunning,
		Ports: []container.Port{
			{IP: "::", PrivatePort: 80, PublicPort: 80, Type: "tcp"},
			{PrivatePort: 9000, Type: "tcp"},
			{IP: "0.0.0.0", PrivatePort: 80, PublicPort: 80, Type: "tcp"},
		},
		NetworkSettings: &container.NetworkSettingsSummary{Networks: map[string]*network.EndpointSettings{
			"zeta": {}, "alpha": {},
		}},
		Mounts: []container.MountPoint{
			{Type: "volume", Name: "logs", Source: "/var/lib/docker/volumes/logs/_data", Destination: "/var/log", RW: true},
			{Type: "bind", Source: "/etc/x", Destination: "/etc/x"},
		},
	})
	if got.Name != "nginx" {
		t.Errorf("Name = %q, want the container's own name", got.Name)
	}
	if !got.Running() {
		t.Error("not running")
	}
	wantPorts := []Port{
		{HostIP: "0.0.0.0", HostPort: 80, ContainerPort: 80, Proto: "tcp"},
		{HostIP: "::", HostPort: 80, ContainerPort: 80, Proto: "tcp"},
	}
	if !slices.Equal(got.Ports, wantPorts) {
		t.Errorf("Ports = %+v, want %+v (unpublished left out)", got.Ports, wantPorts)
	}
	if !slices.Equal(got.Networks, []string{"alpha", "zeta"}) {
		t.Errorf("Networks = %q", got.Networks)
	}
	if len(got.Mounts) != 2 || got.Mounts[0].Destination != "/etc/x" || got.Mounts[1].Name != "logs" || !got.Mounts[1].RW {
		t.Errorf("Mounts = %+v", got.Mounts)
	}
}
