package reconcile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/engine"
)

func TestEndpointFor(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "dockerfiles"), 0o755); err != nil {
		t.Fatal(err)
	}
	// web4's CA is where Bee2's Ansible role left it.
	if err := os.MkdirAll(filepath.Join(dir, "conf", "docker", "web4"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "conf", "docker", "web4", "ca.crt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	yml := `servers:
  web1:
    docker:
      host: tcp://web1.example.net:2376
      tls: {ca: conf/ca.pem, cert: /etc/bee2d/cert.pem, key: conf/key.pem}
  web2:
    docker:
      host: ssh://deploy@web2.example.net:2222
      ssh: {known_hosts: conf/known_hosts, identity: /root/.ssh/bee2d}
  web3:
    dns: {private: [web3.vpn.example.net]}
  web4:
    dns: {private: ["fd00::4"]}
  lab:
    docker: {host: "tcp://10.0.0.9:2375", insecure: true}
  local: {}
docker: {read_timeout: 60}
`
	path := filepath.Join(dir, "settings.yml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	in := func(p ...string) string { return filepath.Join(append([]string{dir}, p...)...) }
	rt := s.Docker.ReadTimeout
	for _, c := range []struct {
		server string
		want   engine.Endpoint
	}{
		{"web1", engine.Endpoint{Host: "tcp://web1.example.net:2376", ReadTimeout: rt,
			TLS: &engine.TLSFiles{CA: in("conf", "ca.pem"), Cert: "/etc/bee2d/cert.pem", Key: in("conf", "key.pem")}}},
		{"web2", engine.Endpoint{Host: "ssh://deploy@web2.example.net:2222", ReadTimeout: rt,
			SSH: &engine.SSHFiles{KnownHosts: in("conf", "known_hosts"), Identity: "/root/.ssh/bee2d"}}},
		{"web3", engine.Endpoint{Host: "tcp://web3.vpn.example.net:2376", ReadTimeout: rt,
			TLS: &engine.TLSFiles{CA: in("conf", "docker", "web3", "ca.pem"),
				Cert: in("conf", "docker", "web3", "docker-client.crt"), Key: in("conf", "docker", "web3", "docker-client.pem")}}},
		{"web4", engine.Endpoint{Host: "tcp://[fd00::4]:2376", ReadTimeout: rt,
			TLS: &engine.TLSFiles{CA: in("conf", "docker", "web4", "ca.crt"),
				Cert: in("conf", "docker", "web4", "docker-client.crt"), Key: in("conf", "docker", "web4", "docker-client.pem")}}},
		{"lab", engine.Endpoint{Host: "tcp://10.0.0.9:2375", Insecure: true, ReadTimeout: rt}},
		{"local", engine.Endpoint{ReadTimeout: rt}},
	} {
		t.Run(c.server, func(t *testing.T) {
			got, err := EndpointFor(s, c.server)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(c.want) {
				t.Errorf("got  %+v tls %+v ssh %+v\nwant %+v tls %+v ssh %+v", got, got.TLS, got.SSH, c.want, c.want.TLS, c.want.SSH)
			}
		})
	}
}
