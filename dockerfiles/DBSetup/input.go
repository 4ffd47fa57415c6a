package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strings"
)

// dbmap is the JSON of Bee2's _dbmap env value.
type dbmap struct {
	Admin      map[string]string `json:"admin"`
	Containers []struct {
		Container string `json:"container"`
		DB        string `json:"db"`
		Password  string `json:"password"`
	} `json:"containers"`
}

// account is one database and its user, of the same name.
type account struct {
	Name     string // with - changed to _
	Password string
}

// plan is what to set up on each server, each name once, in the order of the input.
type plan struct {
	Postgres, MySQL           []account
	AdminPostgres, AdminMySQL string
	// Notes are said before anything is done: names changed, entries of other database kinds.
	Notes []string
}

// adminUsers are the users dbsetup connects as; an entry of that name would change the admin's password.
var adminUsers = map[string]string{"postgres": "postgres", "mysql": "root"}

// parse reads the _dbmap JSON. Entries repeat when several containers share a database (Bee2 keeps one entry
// per container): they give the same password, since it comes from one pass store entry, and are set up
// once. Two that give different passwords for one name (my-app and my_app) are an error.
func parse(raw string) (plan, error) {
	var m dbmap
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	if err := dec.Decode(&m); err != nil {
		// The decoder's message names a position and a type, never a value.
		return plan{}, badInput("DATABASE_JSON: %v", err)
	}
	var p plan
	seen := map[string]string{} // kind/name: password
	skipped := map[string]bool{}
	for i, c := range m.Containers {
		where := fmt.Sprintf("DATABASE_JSON containers[%d]", i)
		var list *[]account
		switch c.DB {
		case "postgres":
			list = &p.Postgres
		case "mysql":
			list = &p.MySQL
		case "":
			return plan{}, badInput("%s (%s): no db", where, c.Container)
		default:
			if !skipped[c.DB] {
				skipped[c.DB] = true
				p.Notes = append(p.Notes, fmt.Sprintf("%s: skipped, dbsetup sets up postgres and mysql only", c.DB))
			}
			continue
		}
		name := strings.ReplaceAll(c.Container, "-", "_")
		if err := checkName(c.DB, name); err != nil {
			return plan{}, badInput("%s: %v", where, err)
		}
		if c.Password == "" {
			return plan{}, badInput("%s (%s %s): empty password", where, c.DB, c.Container)
		}
		if strings.ContainsRune(c.Password, 0) {
			return plan{}, badInput("%s (%s %s): the password holds a NUL character", where, c.DB, c.Container)
		}
		key := c.DB + "/" + name
		if pw, ok := seen[key]; ok {
			if pw != c.Password {
				return plan{}, badInput("%s: %s user %s is given two different passwords", where, c.DB, name)
			}
			continue
		}
		seen[key] = c.Password
		if name != c.Container {
			p.Notes = append(p.Notes, fmt.Sprintf("%s: %s normalized to %s", c.DB, c.Container, name))
		}
		*list = append(*list, account{Name: name, Password: c.Password})
	}
	for _, k := range []struct {
		kind string
		n    int
	}{{"postgres", len(p.Postgres)}, {"mysql", len(p.MySQL)}} {
		if k.n > 0 && m.Admin[k.kind] == "" {
			return plan{}, badInput("DATABASE_JSON: no admin password for %s (admin.%s)", k.kind, k.kind)
		}
	}
	p.AdminPostgres, p.AdminMySQL = m.Admin["postgres"], m.Admin["mysql"]
	return p, nil
}

// checkName refuses names the server would truncate or could not hold. Quoting makes any other name safe.
func checkName(kind, name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%s: no container name", kind)
	case strings.ContainsRune(name, 0):
		return fmt.Errorf("%s %q: the name holds a NUL character", kind, name)
	case name == adminUsers[kind]:
		return fmt.Errorf("%s %q: the admin user's own name", kind, name)
	case kind == "postgres" && len(name) > 63:
		// PostgreSQL would cut it to 63 bytes without an error (NAMEDATALEN).
		return fmt.Errorf("%s %q: longer than 63 bytes", kind, name)
	case kind == "mysql" && len([]rune(name)) > 64:
		return fmt.Errorf("%s %q: longer than 64 characters", kind, name)
	}
	return nil
}

// hostPort adds the default port to a host given without one (db, 10.0.0.5, [fd00::5], fd00::5).
func hostPort(host, port string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	return net.JoinHostPort(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), port)
}
