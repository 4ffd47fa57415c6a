package config

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

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

// PasswordStore keeps database passwords: Get returns the one of name in folder ("database/postgres"),
// making and storing it first when there is none.
type PasswordStore interface {
	Get(folder, name string) (value string, created bool, err error)
	// Where names the file a password is kept in, for messages.
	Where(folder, name string) string
}

// NewPasswordStore makes the store a settings file's database passwords are kept in; the default keeps them
// in the secrets directory. Packages that know Bee2's pass store set it.
var NewPasswordStore = func(s *Settings) (PasswordStore, error) {
	if s.Security.PGPID != "" {
		return nil, fmt.Errorf("security.pgp_id is set, and this build of bee2d cannot read Bee2's pass store")
	}
	return FileStore{Dir: s.Docker.SecretsDir}, nil
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
	store, err := NewPasswordStore(s)
	if err != nil {
		d.errorf(uses[0].node, uses[0].path, "database passwords: %v", err)
		return
	}
	d.firstSecret = uses[0].node
	get := func(u *dbUse, typ, name string) (string, bool) {
		v, made, err := store.Get("database/"+typ, name)
		if err != nil {
			d.errorf(u.node, u.path, "database password %s/%s: %v", typ, name, err)
			return "", false
		}
		if made {
			s.PasswordsMade = append(s.PasswordsMade, store.Where("database/"+typ, name))
		}
		return v, true
	}
	for _, u := range uses {
		switch u.v.Var {
		case "password":
			if v, ok := get(u, u.v.Type, u.v.Name); ok {
				u.src.File, u.src.Value = store.Where("database/"+u.v.Type, u.v.Name), Secret{v}
			}
		case "adminpass":
			if v, ok := get(u, u.v.Type, "admin"); ok {
				u.src.File, u.src.Value = store.Where("database/"+u.v.Type, "admin"), Secret{v}
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

// FileStore keeps database passwords in the secrets directory, <dir>/<folder>/<name>, for files without
// security.pgp_id.
type FileStore struct {
	Dir string
}

var fileStoreMu sync.Mutex

// Get reads the password, or makes one of 32 hex characters and writes it (0600, directories 0700).
func (f FileStore) Get(folder, name string) (string, bool, error) {
	file := f.Where(folder, name)
	if data, err := readSmall(file); err == nil {
		return strings.TrimRight(string(data), "\r\n"), false, nil
	} else if !os.IsNotExist(cause(err)) {
		return "", false, err
	}
	fileStoreMu.Lock()
	defer fileStoreMu.Unlock()
	pw, err := newPassword()
	if err != nil {
		return "", false, err
	}
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return "", false, err
	}
	if err := writePrivate(file, []byte(pw+"\n")); err != nil {
		return "", false, err
	}
	return pw, true, nil
}

// Where is the file of one password.
func (f FileStore) Where(folder, name string) string {
	return filepath.Join(f.Dir, filepath.FromSlash(folder), name)
}

// newPassword is 32 lowercase hex characters, as Ruby's SecureRandom.hex made for Bee2.
func newPassword() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// writePrivate writes a file readable by its owner only, under a temporary name first, so that a crash
// leaves no half-written password.
func writePrivate(file string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
