// Command dbsetup creates a database and a user for each entry of Bee2's _dbmap, on PostgreSQL and on MySQL or
// MariaDB: the DBSetup image's program, run as a job on the server's network beside the database servers.
//
// It reads DATABASE_JSON, the _dbmap JSON that bee2d renders from the applications' db: lists,
//
//	{"admin": {"postgres": "<pw>", "mysql": "<pw>"},
//	 "containers": [{"container": "<name>", "db": "postgres", "password": "<pw>"}, ...]}
//
// and POSTGRES_HOST and MYSQL_HOST (host or host:port). Each name, with - changed to _ as Bee2 does, becomes
// a database and a user of that name with the entry's password, owner of (PostgreSQL) or with all
// privileges on (MySQL) the database. It is idempotent: a user that exists gets the given password, a
// database that exists is kept. The admin users are postgres and root. DBSETUP_WAIT (a duration such as 90s,
// or seconds; default 60s) is how long it waits for a server that is still starting. It logs what it
// creates, never a password, and exits 1 when anything failed, 2 when its input is wrong.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// defaultWait is how long a server that does not answer yet is waited for: the job may start together with
// the database containers, whose first start (initdb) takes a while.
const defaultWait = 60 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := run(ctx, os.Getenv, os.Stdout)
	var bad *inputError
	switch {
	case err == nil:
	case errors.As(err, &bad):
		fmt.Fprintf(os.Stderr, "dbsetup: %v\n", err)
		os.Exit(2)
	default:
		fmt.Fprintf(os.Stderr, "dbsetup: %v\n", err)
		os.Exit(1)
	}
}

// inputError is wrong input (environment, JSON): running again will not help.
type inputError struct{ err error }

func (e *inputError) Error() string { return e.err.Error() }
func (e *inputError) Unwrap() error { return e.err }

func badInput(format string, args ...any) error { return &inputError{fmt.Errorf(format, args...)} }

// run sets up every server the input names and returns all that failed.
func run(ctx context.Context, getenv func(string) string, out io.Writer) error {
	raw := getenv("DATABASE_JSON")
	if strings.TrimSpace(raw) == "" {
		return badInput("DATABASE_JSON is not set")
	}
	p, err := parse(raw)
	if err != nil {
		return err
	}
	wait, err := parseWait(getenv("DBSETUP_WAIT"))
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	for _, n := range p.Notes {
		logf("%s", n)
	}

	var errs []error
	for _, srv := range []struct {
		kind, hostVar, defaultPort string
		accounts                   []account
		admin                      string
		setup                      func(context.Context, server, []account, func(string, ...any)) error
	}{
		{"postgres", "POSTGRES_HOST", "5432", p.Postgres, p.AdminPostgres, setupPostgres},
		{"mysql", "MYSQL_HOST", "3306", p.MySQL, p.AdminMySQL, setupMySQL},
	} {
		if len(srv.accounts) == 0 {
			logf("%s: no databases", srv.kind)
			continue
		}
		host := strings.TrimSpace(getenv(srv.hostVar))
		if host == "" {
			errs = append(errs, badInput("%s: %d database(s) to set up but %s is not set", srv.kind, len(srv.accounts), srv.hostVar))
			continue
		}
		s := server{addr: hostPort(host, srv.defaultPort), password: srv.admin, wait: wait}
		if err := srv.setup(ctx, s, srv.accounts, logf); err != nil {
			errs = append(errs, fmt.Errorf("%s at %s: %w", srv.kind, s.addr, err))
		}
	}
	if len(errs) == 1 {
		return errs[0]
	}
	if len(errs) > 1 {
		// Bad input anywhere decides the exit code only when nothing else failed.
		all := errors.Join(errs...)
		for _, e := range errs {
			var bad *inputError
			if !errors.As(e, &bad) {
				return all
			}
		}
		return &inputError{all}
	}
	logf("done")
	return nil
}

// server is where one kind of database runs and the admin password that reaches it.
type server struct {
	addr     string // host:port
	password string
	wait     time.Duration
}

func parseWait(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return defaultWait, nil
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, badInput("DBSETUP_WAIT %q: want a duration such as 90s, or seconds", s)
	}
	return d, nil
}
