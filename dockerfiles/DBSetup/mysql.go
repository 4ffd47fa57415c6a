package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// setupMySQL connects as root and sets up each account: the database if missing, the user name@'%' with its
// password (an existing one gets the password), and all privileges on the database.
func setupMySQL(ctx context.Context, s server, accounts []account, logf func(string, ...any)) error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = "root", s.password
	cfg.Net, cfg.Addr = "tcp", s.addr
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = connectTimeout, statementTimeout, statementTimeout
	// The driver prints connection errors itself; the retries below report them.
	cfg.Logger = log.New(io.Discard, "", 0)
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return err
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	conn, err := connectWithin(ctx, s.wait, logf, "mysql", func(ctx context.Context) (*sql.Conn, error) {
		c, err := db.Conn(ctx)
		if err == nil {
			if err = c.PingContext(ctx); err != nil {
				c.Close()
			}
		}
		return c, err
	}, mysqlPermanent)
	if err != nil {
		return err
	}
	defer conn.Close()
	// The password is sent inside CREATE USER and ALTER USER: keep this session out of the general log.
	if _, err := myExec(ctx, conn, "SET SESSION sql_log_off = 1"); err != nil {
		logf("mysql: SET SESSION sql_log_off = 1: %v (the general log, if on, may show the statements that set passwords)", err)
	}
	var mode string
	if err := myScan(ctx, conn, &mode, "SELECT @@SESSION.sql_mode"); err != nil {
		return fmt.Errorf("read sql_mode: %w", err)
	}
	noBackslashEscapes := strings.Contains(strings.ToUpper(mode), "NO_BACKSLASH_ESCAPES")
	var errs []error
	for _, a := range accounts {
		if err := mysqlAccount(ctx, conn, a, noBackslashEscapes, logf); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mysqlPermanent tells a refusal (access denied, host not allowed) from a server that is not up yet.
func mysqlPermanent(err error) bool {
	var my *mysql.MySQLError
	if errors.As(err, &my) {
		switch my.Number {
		case 1044, 1045, 1130, 1698: // ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR, ER_HOST_NOT_PRIVILEGED, ER_ACCESS_DENIED_NO_PASSWORD_ERROR
			return true
		}
	}
	return false
}

func mysqlAccount(ctx context.Context, conn *sql.Conn, a account, noBackslashEscapes bool, logf func(string, ...any)) error {
	db, user := mysqlIdent(a.Name), mysqlIdent(a.Name)+"@'%'"
	var n int
	if err := myScan(ctx, conn, &n, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", a.Name); err != nil {
		return fmt.Errorf("database %s: %w", a.Name, err)
	}
	if n == 0 {
		if _, err := myExec(ctx, conn, "CREATE DATABASE IF NOT EXISTS "+db); err != nil {
			return fmt.Errorf("create database %s: %w", a.Name, err)
		}
		logf("mysql: database %s created", a.Name)
	} else {
		logf("mysql: database %s exists, kept", a.Name)
	}

	if err := myScan(ctx, conn, &n, "SELECT COUNT(*) FROM mysql.user WHERE User = ? AND Host = '%'", a.Name); err != nil {
		return fmt.Errorf("user %s: %w", a.Name, err)
	}
	password := mysqlString(a.Password, noBackslashEscapes)
	if n == 0 {
		if _, err := myExec(ctx, conn, "CREATE USER "+user+" IDENTIFIED BY "+password); err != nil {
			return fmt.Errorf("create user %s: %w", a.Name, err)
		}
		logf("mysql: user %s created", a.Name)
	} else {
		if _, err := myExec(ctx, conn, "ALTER USER "+user+" IDENTIFIED BY "+password); err != nil {
			return fmt.Errorf("set the password of user %s: %w", a.Name, err)
		}
		logf("mysql: user %s exists, password set", a.Name)
	}
	// In GRANT, _ and % in a database name are wildcards (my_app would also match myXapp): escaped, the
	// grant is for this database only.
	if _, err := myExec(ctx, conn, "GRANT ALL PRIVILEGES ON "+mysqlIdent(mysqlGrantPattern(a.Name))+".* TO "+user); err != nil {
		return fmt.Errorf("grant database %s to %s: %w", a.Name, a.Name, err)
	}
	return nil
}

// mysqlIdent quotes an identifier (a database or user name) with backticks.
func mysqlIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "``") + "`"
}

// mysqlGrantPattern escapes the wildcards of a database name in GRANT.
func mysqlGrantPattern(name string) string {
	return strings.NewReplacer(`\`, `\\`, `_`, `\_`, `%`, `\%`).Replace(name)
}

// mysqlString quotes a string literal for the session's sql_mode: with NO_BACKSLASH_ESCAPES a backslash is
// an ordinary character and only quotes are doubled.
func mysqlString(s string, noBackslashEscapes bool) string {
	if noBackslashEscapes {
		return "'" + strings.ReplaceAll(s, "'", "''") + "'"
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// myExec runs a statement within statementTimeout.
func myExec(ctx context.Context, conn *sql.Conn, query string, args ...any) (sql.Result, error) {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	return conn.ExecContext(ctx, query, args...)
}

// myScan runs a query of one row and one column within statementTimeout.
func myScan(ctx context.Context, conn *sql.Conn, dest any, query string, args ...any) error {
	ctx, cancel := context.WithTimeout(ctx, statementTimeout)
	defer cancel()
	return conn.QueryRowContext(ctx, query, args...).Scan(dest)
}
