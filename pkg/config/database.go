package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/bee2d/bee2d/pkg/config/passstore"
	"go.yaml.in/yaml/v3"
)

// Databases, as Bee2's later layout has them: a container lists the databases it needs (db: [postgres] or
// [postgres:shared]); its env reads a password with _postgres^password, or _postgres:shared^password, the
// admin password with _postgres^adminpass, and a DBSetup job gets every database of the server with _dbmap.
// Passwords are made once and kept: in Bee2's pass store when security.pgp_id is set, else in the secrets
// directory. They are secrets: never in plans, logs, metrics or labels.

// dbUse is one database env value, waiting for its password.
type dbUse struct {
	svc  *Service
	v    DBVar
	src  *SecretSource
	node *yaml.Node
	path string
}

// dbForm is what is left of a database value once Bee2's leading "_" and ":" are stripped: type[:name]^var,
// or dbmap[^anything].
var dbForm = regexp.MustCompile(`^([a-z][a-z0-9]*)(?::([a-zA-Z0-9][a-zA-Z0-9_.-]*))?\^(.*)$`)

// dbValue reads a string env value that starts with "_" as Bee2 did. It reports whether the value is a
// database value; any other "_..." string is passed as written (Bee2 stopped with "Unknown variable").
func (d *decoder) dbValue(n *yaml.Node, path string, v *EnvValue, m *svcMeta) bool {
	rest := strings.TrimLeft(v.Text, "_:")
	var dv DBVar
	switch {
	case rest == "dbmap" || strings.HasPrefix(rest, "dbmap^"):
		dv = DBVar{Var: "dbmap"}
	case strings.Contains(rest, "^"):
		g := dbForm.FindStringSubmatch(rest)
		if g == nil {
			d.errorf(n, path, "invalid database value %q: want _type^password, _type:name^password, _type^adminpass or _dbmap", v.Text)
			return true
		}
		dv = DBVar{Type: g[1], Name: g[2], Var: g[3]}
		if dv.Var != "password" && dv.Var != "adminpass" {
			d.errorf(n, path, "unknown database variable %q in %q: password or adminpass", dv.Var, v.Text)
			return true
		}
		if dv.Var == "adminpass" && dv.Name != "" {
			d.errorf(n, path, "%q: adminpass takes no name (the admin password is one per database type)", v.Text)
			return true
		}
	default:
		return false
	}
	if dv.Var == "password" && dv.Name == "" {
		dv.Name = m.svc.Name
	}
	v.DB = &dv
	v.Secret = &SecretSource{Name: dbSecretName(dv)}
	m.dbVars = append(m.dbVars, dbUse{svc: m.svc, v: dv, src: v.Secret, node: n, path: path})
	return true
}

func dbSecretName(v DBVar) string {
	switch v.Var {
	case "dbmap":
		return "database map"
	case "adminpass":
		return "database/" + v.Type + "/admin"
	}
	return "database/" + v.Type + "/" + v.Name
}

// dbEntry is one entry of a server's database mapping (Bee2's db_mapping).
type dbEntry struct {
	container, db string
}

// dbMapping is Bee2's db_mapping of a server: the db entries of its applications, then of its jobs, in file
// order, duplicates kept.
func dbMapping(s *Settings, server string) []dbEntry {
	var out []dbEntry
	for _, list := range [][]*Service{s.Applications, s.Jobs} {
		for _, svc := range list {
			if svc.Server != server {
				continue
			}
			for _, r := range svc.DB {
				out = append(out, dbEntry{container: r.Name, db: r.Type})
			}
		}
	}
	return out
}

// passwordStore is where a settings file's database passwords are kept, with the file of each for messages.
type passwordStore struct {
	passstore.Store
	dir, ext string
}

func (p passwordStore) where(folder, name string) string {
	return filepath.Join(p.dir, filepath.FromSlash(folder), name+p.ext)
}

// passwordStoreFor is newPasswordStore; the fuzz tests keep passwords in memory instead of writing files.
var passwordStoreFor = newPasswordStore

// newPasswordStore is Bee2's pass store when security.pgp_id is set (so a migrating user's databases keep
// their passwords), else the secrets directory (Options.KeyDir when set).
func newPasswordStore(s *Settings) (passwordStore, error) {
	if s.Security.PGPID == "" {
		dir := s.madeDir()
		return passwordStore{Store: passstore.FileStore{Dir: dir}, dir: dir}, nil
	}
	home, err := os.UserHomeDir()
	if err != nil && (s.Security.PasswordStore == "" || strings.HasPrefix(s.Security.PasswordStore, "~")) {
		return passwordStore{}, fmt.Errorf("the pass store is in the home directory, which is unknown: %v", err)
	}
	ps := s.Security.PasswordStore
	if ps != "" && !strings.HasPrefix(ps, "~") {
		ps = s.ResolvePath(ps)
	}
	dir := passstore.StoreDir(ps, s.Security.Folder, home)
	return passwordStore{Store: cachedStore{passstore.GPGStore{Dir: dir, Recipient: s.Security.PGPID}, dir, ".gpg"}, dir: dir, ext: ".gpg"}, nil
}

// cachedStore keeps what gpg decrypted while the file stays the same: the daemon loads the settings on
// every change and resync, and a key whose passphrase the agent no longer holds must not fail a reload.
type cachedStore struct {
	passstore.Store
	dir, ext string
}

type cacheKey struct {
	file  string
	size  int64
	mtime int64
}

var (
	passCacheMu sync.Mutex
	passCache   = map[cacheKey]string{}
)

func (c cachedStore) Get(folder, name string) (string, bool, error) {
	file := filepath.Join(c.dir, filepath.FromSlash(folder), name+c.ext)
	fi, err := os.Stat(file)
	if err != nil {
		return c.Store.Get(folder, name)
	}
	k := cacheKey{file, fi.Size(), fi.ModTime().UnixNano()}
	passCacheMu.Lock()
	v, ok := passCache[k]
	passCacheMu.Unlock()
	if ok {
		return v, false, nil
	}
	v, made, err := c.Store.Get(folder, name)
	if err == nil {
		passCacheMu.Lock()
		passCache[k] = v
		passCacheMu.Unlock()
	}
	return v, made, err
}

// loadDatabases checks the database values against each server's mapping and reads their passwords.
func (d *decoder) loadDatabases(s *Settings) {
	var uses []*dbUse
	for _, m := range d.svcs {
		for i := range m.dbVars {
			uses = append(uses, &m.dbVars[i])
		}
	}
	if len(uses) == 0 {
		return
	}
	mappings := map[string][]dbEntry{}
	for _, u := range uses {
		if _, ok := mappings[u.svc.Server]; !ok {
			mappings[u.svc.Server] = dbMapping(s, u.svc.Server)
		}
		mapping := mappings[u.svc.Server]
		switch u.v.Var {
		case "password":
			found := false
			for _, e := range mapping {
				found = found || (e.container == u.v.Name && e.db == u.v.Type)
			}
			if !found {
				d.errorf(u.node, u.path, "no %s database for %q on server %s: add db: [%s] to %s %q, or db: [%s:%s] to the container that owns it",
					u.v.Type, u.v.Name, u.svc.Server, u.v.Type, kindWord(u.svc.Kind), u.v.Name, u.v.Type, u.v.Name)
			}
		case "adminpass":
			found := false
			for _, e := range mapping {
				found = found || e.db == u.v.Type
			}
			if !found {
				d.errorf(u.node, u.path, "no container of server %s lists a %s database (db: [%s]), so there is no %s admin password", u.svc.Server, u.v.Type, u.v.Type, u.v.Type)
			}
		}
	}
	if len(d.errs) > 0 {
		return
	}
	d.resolveSecretsDir(s)
	store, err := passwordStoreFor(s)
	if err != nil {
		d.errorf(uses[0].node, uses[0].path, "database passwords: %v", err)
		return
	}
	d.firstSecret = uses[0].node
	inputs := map[string]bool{}
	get := func(u *dbUse, typ, name string) (string, bool) {
		v, made, err := store.Get("database/"+typ, name)
		if err != nil {
			d.errorf(u.node, u.path, "database password %s/%s: %v", typ, name, err)
			return "", false
		}
		file := store.where("database/"+typ, name)
		if made {
			s.PasswordsMade = append(s.PasswordsMade, showPath(s, file))
		}
		if !inputs[file] {
			// A password changed in its file recreates the containers using it, as a changed secret does.
			inputs[file] = true
			if sum, err := fingerprint(file); err == nil {
				s.Inputs = append(s.Inputs, Input{Path: file, Sum: sum})
			}
		}
		return v, true
	}
	for _, u := range uses {
		switch u.v.Var {
		case "password":
			if v, ok := get(u, u.v.Type, u.v.Name); ok {
				u.src.File, u.src.Value = store.where("database/"+u.v.Type, u.v.Name), Secret{v}
			}
		case "adminpass":
			if v, ok := get(u, u.v.Type, "admin"); ok {
				u.src.File, u.src.Value = store.where("database/"+u.v.Type, "admin"), Secret{v}
			}
		case "dbmap":
			if v, ok := d.dbMapJSON(u, mappings[u.svc.Server], get); ok {
				u.src.Value = Secret{v}
			}
		}
	}
}

// dbMapJSON is the _dbmap value, as Bee2's JSON.dump wrote it: {"admin":{<type>:<pw>,...},"containers":
// [{"container":..,"db":..,"password":..},...]}, admin types in first-seen order, compact.
func (d *decoder) dbMapJSON(u *dbUse, mapping []dbEntry, get func(*dbUse, string, string) (string, bool)) (string, bool) {
	var b bytes.Buffer
	b.WriteString(`{"admin":{`)
	seen := map[string]bool{}
	for _, e := range mapping {
		if seen[e.db] {
			continue
		}
		pw, ok := get(u, e.db, "admin")
		if !ok {
			return "", false
		}
		if len(seen) > 0 {
			b.WriteByte(',')
		}
		seen[e.db] = true
		b.WriteString(jsonString(e.db) + ":" + jsonString(pw))
	}
	b.WriteString(`},"containers":[`)
	for i, e := range mapping {
		pw, ok := get(u, e.db, e.container)
		if !ok {
			return "", false
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"container":` + jsonString(e.container) + `,"db":` + jsonString(e.db) + `,"password":` + jsonString(pw) + `}`)
	}
	b.WriteString(`]}`)
	if !json.Valid(b.Bytes()) {
		d.errorf(u.node, u.path, "database map is not valid JSON")
		return "", false
	}
	return b.String(), true
}
