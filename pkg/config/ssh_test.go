package config

import "testing"

func TestSSHConnection(t *testing.T) {
	s := mustParse(t, `
servers:
  files:
    docker:
      host: ssh://deploy@web1.example.net:2222/run/docker.sock
      ssh: {known_hosts: conf/ssh/known_hosts, identity: /home/me/.ssh/bee2d}
  defaults:
    docker: {host: "ssh://root@web2.example.net"}
`)
	c := s.Server("files").Docker
	if c.SSH == nil || *c.SSH != (SSHFiles{KnownHosts: "conf/ssh/known_hosts", Identity: "/home/me/.ssh/bee2d"}) {
		t.Errorf("files: %+v", c.SSH)
	}
	if c := s.Server("defaults").Docker; c.SSH != nil || c.Host != "ssh://root@web2.example.net" {
		t.Errorf("defaults: %+v", c)
	}
}
