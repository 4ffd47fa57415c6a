package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestServerTLSFiles(t *testing.T) {
	dir := t.TempDir()
	s := &Settings{Dir: dir}
	in := func(p ...string) string { return filepath.Join(append([]string{dir, "conf", "docker"}, p...)...) }
	// web2's CA is where Bee2's Ansible role left it; web3 has both, and ca.pem wins.
	for file, data := range map[string]string{"web2/ca.crt": "", "web3/ca.crt": "", "web3/ca.pem": ""} {
		if err := os.MkdirAll(filepath.Dir(in(file)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(in(file), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		server, ca string
	}{
		{"web1", "ca.pem"}, // no files yet: where tls init writes it
		{"web2", "ca.crt"},
		{"web3", "ca.pem"},
	} {
		t.Run(c.server, func(t *testing.T) {
			got := s.ServerTLSFiles(c.server)
			want := ServerTLSFiles{
				CADir: in(), CACert: in("ca.pem"), CAKey: in("ca-key.pem"),
				Dir: in(c.server), CA: in(c.server, c.ca), CACopy: in(c.server, "ca.pem"),
				ClientCert: in(c.server, "docker-client.crt"), ClientKey: in(c.server, "docker-client.pem"),
				ServerCert: in(c.server, "docker-server.crt"), ServerKey: in(c.server, "docker-server.pem"),
			}
			if got != want {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
		})
	}
}
