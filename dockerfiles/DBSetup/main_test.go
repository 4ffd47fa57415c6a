package main

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5/pgconn"
)

func TestParse(t *testing.T) {
	got, err := parse(`{"admin":{"postgres":"pa","mysql":"ma","redis":"ra"},"containers":[
		{"container":"mastodon","db":"postgres","password":"p1"},
		{"container":"mastodon","db":"postgres","password":"p1"},
		{"container":"shared-db","db":"postgres","password":"p2"},
		{"container":"wiki","db":"mysql","password":"p3"},
		{"container":"cache","db":"redis","password":"p4"},
		{"container":"queue","db":"redis","password":"p5"},
		{"container":"mastodon","db":"mysql","password":"p6"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	want := plan{
		Postgres:      []account{{"mastodon", "p1"}, {"shared_db", "p2"}},
		MySQL:         []account{{"wiki", "p3"}, {"mastodon", "p6"}},
		AdminPostgres: "pa", AdminMySQL: "ma",
		Notes: []string{"postgres: shared-db normalized to shared_db", "redis: skipped, dbsetup sets up postgres and mysql only"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parse:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	long := strings.Repeat("a", 64)
	for _, tc := range []struct{ name, json, want string }{
		{"not JSON", `{"admin":`, "DATABASE_JSON: unexpected EOF"},
		{"no admin password", `{"admin":{"mysql":"m"},"containers":[{"container":"a","db":"postgres","password":"p"}]}`,
			"no admin password for postgres (admin.postgres)"},
		{"no name", `{"admin":{"postgres":"a"},"containers":[{"container":"","db":"postgres","password":"p"}]}`,
			"containers[0]: postgres: no container name"},
		{"no db", `{"admin":{"postgres":"a"},"containers":[{"container":"x","password":"p"}]}`, "containers[0] (x): no db"},
		{"empty password", `{"admin":{"postgres":"a"},"containers":[{"container":"x","db":"postgres","password":""}]}`,
			"containers[0] (postgres x): empty password"},
		{"the admin's own name", `{"admin":{"mysql":"a"},"containers":[{"container":"root","db":"mysql","password":"p"}]}`,
			`mysql "root": the admin user's own name`},
		{"postgres would truncate", `{"admin":{"postgres":"a"},"containers":[{"container":"` + long + `","db":"postgres","password":"p"}]}`,
			"longer than 63 bytes"},
		{"NUL in a name", `{"admin":{"postgres":"a"},"containers":[{"container":"a\u0000b","db":"postgres","password":"p"}]}`,
			"NUL"},
		{"one name, two passwords", `{"admin":{"postgres":"a"},"containers":[{"container":"my-app","db":"postgres","password":"secret1"},
			{"container":"my_app","db":"postgres","password":"secret2"}]}`, "containers[1]: postgres user my_app is given two different passwords"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(tc.json)
			var bad *inputError
			if err == nil || !errors.As(err, &bad) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an input error with %q", err, tc.want)
			}
			for _, pw := range []string{"secret1", "secret2"} {
				if strings.Contains(err.Error(), pw) {
					t.Errorf("the error shows a password: %v", err)
				}
			}
		})
	}
}

func TestHostPort(t *testing.T) {
	for in, want := range map[string]string{
		"db":            "db:5432",
		"db:6543":       "db:6543",
		"10.0.0.5":      "10.0.0.5:5432",
		"fd00::5":       "[fd00::5]:5432",
		"[fd00::5]":     "[fd00::5]:5432",
		"[fd00::5]:999": "[fd00::5]:999",
	} {
		if got := hostPort(in, "5432"); got != want {
			t.Errorf("hostPort(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseWait(t *testing.T) {
	for in, want := range map[string]time.Duration{"": defaultWait, "90": 90 * time.Second, "2m": 2 * time.Minute, "0": 0} {
		if got, err := parseWait(in); err != nil || got != want {
			t.Errorf("parseWait(%q) = %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"soon", "-5s", "-1"} {
		if _, err := parseWait(in); err == nil {
			t.Errorf("parseWait(%q): no error", in)
		}
	}
}

func TestMySQLQuoting(t *testing.T) {
	for _, tc := range []struct {
		in             string
		backslash, raw string // with backslash escapes, and with NO_BACKSLASH_ESCAPES
	}{
		{"plain", `'plain'`, `'plain'`},
		{`it's`, `'it\'s'`, `'it''s'`},
		{`back\slash`, `'back\\slash'`, `'back\slash'`},
		{`x\'; DROP USER root; --`, `'x\\\'; DROP USER root; --'`, `'x\''; DROP USER root; --'`},
	} {
		if got := mysqlString(tc.in, false); got != tc.backslash {
			t.Errorf("mysqlString(%q, false) = %s, want %s", tc.in, got, tc.backslash)
		}
		if got := mysqlString(tc.in, true); got != tc.raw {
			t.Errorf("mysqlString(%q, true) = %s, want %s", tc.in, got, tc.raw)
		}
	}
	if got := mysqlIdent("a`b"); got != "`a``b`" {
		t.Errorf("mysqlIdent: %s", got)
	}
	if got := mysqlGrantPattern(`my_app%\x`); got != `my\_app\%\\x` {
		t.Errorf("mysqlGrantPattern: %s", got)
	}
}

func TestPermanent(t *testing.T) {
	if !postgresPermanent(&pgconn.PgError{Code: "28P01"}) || !postgresPermanent(&pgconn.PgError{Code: "28000"}) {
		t.Error("a wrong password or no pg_hba.conf entry should end the wait")
	}
	if postgresPermanent(&pgconn.PgError{Code: "57P03"}) || postgresPermanent(errors.New("connection refused")) {
		t.Error("a server that is starting should be waited for")
	}
	if !mysqlPermanent(&mysql.MySQLError{Number: 1045}) || mysqlPermanent(errors.New("connection refused")) {
		t.Error("mysqlPermanent")
	}
}

func TestConnectWithin(t *testing.T) {
	notYet, refused := errors.New("not yet"), errors.New("refused")
	t.Run("a server that comes up", func(t *testing.T) {
		calls := 0
		got, err := connectWithin(t.Context(), 10*time.Second, func(string, ...any) {}, "x", func(context.Context) (int, error) {
			calls++
			if calls < 3 {
				return 0, notYet
			}
			return 7, nil
		}, func(error) bool { return false })
		if err != nil || got != 7 || calls != 3 {
			t.Errorf("got %d %v after %d calls", got, err, calls)
		}
	})
	t.Run("a refusal ends at once", func(t *testing.T) {
		calls := 0
		_, err := connectWithin(t.Context(), time.Minute, func(string, ...any) {}, "x", func(context.Context) (int, error) {
			calls++
			return 0, refused
		}, func(err error) bool { return err == refused })
		if !errors.Is(err, refused) || calls != 1 {
			t.Errorf("got %v after %d calls", err, calls)
		}
	})
	t.Run("no server within the wait", func(t *testing.T) {
		_, err := connectWithin(t.Context(), 0, func(string, ...any) {}, "x", func(context.Context) (int, error) {
			return 0, notYet
		}, func(error) bool { return false })
		if !errors.Is(err, notYet) || !strings.Contains(err.Error(), "not reachable within") {
			t.Errorf("got %v", err)
		}
	})
}

func TestRunInput(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"no input", nil, "DATABASE_JSON is not set"},
		{"no host", map[string]string{"DATABASE_JSON": `{"admin":{"postgres":"a"},"containers":[{"container":"x","db":"postgres","password":"p"}]}`},
			"postgres: 1 database(s) to set up but POSTGRES_HOST is not set"},
		{"bad wait", map[string]string{"DATABASE_JSON": `{"admin":{},"containers":[]}`, "DBSETUP_WAIT": "later"}, "DBSETUP_WAIT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(t.Context(), func(k string) string { return tc.env[k] }, &out)
			var bad *inputError
			if !errors.As(err, &bad) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an input error with %q", err, tc.want)
			}
		})
	}
	t.Run("nothing to do", func(t *testing.T) {
		var out bytes.Buffer
		err := run(t.Context(), func(k string) string {
			return map[string]string{"DATABASE_JSON": `{"admin":{"redis":"r"},"containers":[{"container":"c","db":"redis","password":"p"}]}`}[k]
		}, &out)
		if err != nil || out.String() != "redis: skipped, dbsetup sets up postgres and mysql only\npostgres: no databases\nmysql: no databases\ndone\n" {
			t.Errorf("got %v\n%s", err, out.String())
		}
	})
}
