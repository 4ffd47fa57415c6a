package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// setupPostgres connects as postgres to the database postgres and sets up each account: the role with LOGIN
// and its password, then the database it owns. An existing role gets the password; an existing database is
// kept with its owner, and the role is granted all privileges on it.
func setupPostgres(ctx context.Context, s server, accounts []account, logf func(string, ...any)) error {
	conn, err := connectWithin(ctx, s.wait, logf, "postgres", func(ctx context.Context) (*pgx.Conn, error) {
		return connectPostgres(ctx, s)
	}, postgresPermanent)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	// The password is sent inside CREATE ROLE and ALTER ROLE, which take no parameters: statement logging,
	// and the statement quoted in the log when one fails, would write it to the server's log.
	for _, set := range []string{"SET log_statement = 'none'", "SET log_min_error_statement = 'panic'"} {
		if _, err := pgExec(ctx, conn, set); err != nil {
			logf("postgres: %s: %v (the server may log the statements that set passwords)", set, err)
		}
	}
	var errs []error
	for _, a := range accounts {
		if err := postgresAccount(ctx, conn, a, logf); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func connectPostgres(ctx context.Context, s server) (*pgx.Conn, error) {
	host, port, err := net.SplitHostPort(s.addr)
	if err != nil {
		return nil, err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("port %q: %w", port, err)
	}
	// The password is set after parsing, so that it appears in no string that an error could quote.
	u := url.URL{Scheme: "postgres", User: url.User("postgres"), Host: net.JoinHostPort(host, port), Path: "/postgres",
		RawQuery: "application_name=dbsetup"}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, err
	}
	cfg.Password = s.password
	cfg.ConnectTimeout = connectTimeout
	return pgx.ConnectConfig(ctx, cfg)
}

// postgresPermanent tells a refusal (wrong password, no pg_hba.conf entry, no such database) from a server
// that is not up yet ("the database system is starting up", connection refused, no such host yet).
func postgresPermanent(err error) bool {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return strings.HasPrefix(pg.Code, "28") || pg.Code == "3D000"
	}
	return false
}

func postgresAccount(ctx context.Context, conn *pgx.Conn, a account, logf func(string, ...any)) error {
	ident := pgx.Identifier{a.Name}.Sanitize()
	password, err := conn.PgConn().EscapeString(a.Password)
	if err != nil {
		return fmt.Errorf("user %s: quote the password: %w", a.Name, err)
	}
	var roleExists bool
	if err := pgScan(ctx, conn, &roleExists, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = $1)", a.Name); err != nil {
		return fmt.Errorf("user %s: %w", a.Name, err)
	}
	if roleExists {
		if _, err := pgExec(ctx, conn, "ALTER ROLE "+ident+" WITH LOGIN PASSWORD '"+password+"'"); err != nil {
			return fmt.Errorf("set the password of user %s: %w", a.Name, err)
		}
		logf("postgres: user %s exists, password set", a.Name)
	} else {
		if _, err := pgExec(ctx, conn, "CREATE ROLE "+ident+" WITH LOGIN PASSWORD '"+password+"'"); err != nil {
			return fmt.Errorf("create user %s: %w", a.Name, err)
		}
		logf("postgres: user %s created", a.Name)
	}

	var owner string
	err = pgScan(ctx, conn, &owner, "SELECT pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database WHERE datname = $1", a.Name)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		if _, err := pgExec(ctx, conn, "CREATE DATABASE "+ident+" OWNER "+ident); err != nil {
			return fmt.Errorf("create database %s: %w", a.Name, err)
		}
		logf("postgres: database %s created, owned by %s", a.Name, a.Name)
	case err != nil:
		return fmt.Errorf("database %s: %w", a.Name, err)
	default:
		// Its owner is left as it is: a database made by hand or by Bee2 (owned by postgres) keeps the
		// objects and owners it has.
		logf("postgres: database %s exists (owner %s), kept", a.Name, owner)
	}
	if _, err := pgExec(ctx, conn, "GRANT ALL PRIVILEGES ON DATABASE "+ident+" TO "+ident); err != nil {
		return fmt.Errorf("grant database %s to %s: %w", a.Name, a.Name, err)
	}
	return nil
}

// pgExec runs a statement within statementTimeout.
func pgExec(ctx context.Context, conn *pgx.Conn, sql string, args ...any) (pgconn.CommandTag, error) {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	return conn.Exec(ctx, sql, args...)
}

// pgScan runs a query of one row and one column within statementTimeout.
func pgScan(ctx context.Context, conn *pgx.Conn, dest any, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	return conn.QueryRow(ctx, sql, args...).Scan(dest)
}
