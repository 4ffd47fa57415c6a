package config

import (
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Bee2's sync section (bee2 -s SERVER): what `bee2d sync` pushes to each server with rsync over SSH, and the
// key it logs in with, provisioner.ssh_key.private.
//
//	sync:
//	  web1:
//	    push: ["/media/photos:/media", "static/:/srv/static"]

// syncKeys are the keys of sync.<server>.
var syncKeys = []string{"push"}

// syncMeta keeps the key of one sync.<server> for the check against the servers, which runs once every
// server is known (a server may also be defined by a section elsewhere in the file).
type syncMeta struct {
	server string
	key    *yaml.Node
	path   string
}

// syncSection decodes the top-level sync section.
func (d *decoder) syncSection(s *Settings, n *yaml.Node) {
	entries, _ := d.mapping(n, "sync")
	for _, e := range entries {
		path := joinPath("sync", e.Key)
		d.syncMeta = append(d.syncMeta, syncMeta{server: e.Key, key: e.KNode, path: path})
		if s.Sync == nil {
			s.Sync = map[string][]SyncPush{}
		}
		var pushes []SyncPush
		fields, _ := d.mapping(e.Val, path)
		for _, f := range fields {
			fp := joinPath(path, f.Key)
			switch f.Key {
			case "push":
				for _, item := range d.strList(f.Val, fp) {
					local, remote, problem := splitSyncPush(item.val)
					if problem != "" {
						d.errorf(item.node, item.path, "%s", problem)
						continue
					}
					pushes = append(pushes, SyncPush{Local: local, Remote: remote, Pos: pos(item.node)})
				}
			default:
				d.unknownKey(f, path, syncKeys)
			}
		}
		s.Sync[e.Key] = pushes
	}
}

// splitSyncPush splits a push entry "local:remote" at its first ":"; problem says what is wrong with it, if
// anything. Bee2 split at every ":" and kept the first two parts, which cut a remote path holding a ":".
// Here the remote path may hold ":" and the local one cannot; rsync would take a local "a:b" for a remote
// path anyway.
func splitSyncPush(entry string) (local, remote, problem string) {
	local, remote, ok := strings.Cut(entry, ":")
	switch {
	case !ok:
		return "", "", fmt.Sprintf(`push entry %q has no ":" (want "local:remote")`, entry)
	case local == "":
		return "", "", fmt.Sprintf(`push entry %q has an empty local path (want "local:remote")`, entry)
	case remote == "":
		return "", "", fmt.Sprintf(`push entry %q has an empty remote path (want "local:remote")`, entry)
	}
	return local, remote, ""
}

// checkSync reads provisioner.ssh_key.private, the key sync logs in with, and reports servers under sync
// that the file does not define.
func (d *decoder) checkSync(s *Settings) {
	d.sshKey(s)
	if len(d.syncMeta) == 0 {
		return
	}
	var names []string
	for _, srv := range s.Servers {
		names = append(names, srv.Name)
	}
	for _, m := range d.syncMeta {
		if s.Server(m.server) == nil {
			d.errorf(m.key, m.path, "no server %q%s", m.server, didYouMean(m.server, names))
		}
	}
}

// sshKey sets Settings.SSHKey from provisioner.ssh_key.private. The rest of provisioner is Bee2's
// provisioning and stays as written in Extra.
func (d *decoder) sshKey(s *Settings) {
	prov := s.Extra["provisioner"]
	if prov == nil || prov.Kind != yaml.MappingNode {
		return
	}
	for _, p := range d.pairs(prov, "provisioner") {
		if p.Key != "ssh_key" {
			continue
		}
		path := joinPath("provisioner", p.Key)
		fields, _ := d.mapping(p.Val, path)
		for _, f := range fields {
			if f.Key != "private" {
				continue // public: Bee2's provisioner installs it on the servers
			}
			fp := joinPath(path, f.Key)
			v, ok := d.str(f.Val, fp)
			switch {
			case !ok:
			case v == "":
				d.errorf(f.Val, fp, "the private key's path must not be empty")
			default:
				s.SSHKey = v
				d.checkPrivate(s, s.ResolvePath(v))
			}
		}
	}
}
