// Command dbclient stands in for TT-RSS in the end-to-end database test: it logs in to PostgreSQL with the
// values bee2d put in its environment, DB_HOST, DB_PORT (default 5432), DB_USER, DB_NAME and DB_PASS.
//
// Without arguments it is the application: it tries until its user exists (the DBSetup job makes it while
// the application starts), makes the table rows if missing, inserts ROW_VALUE, reads the newest row back
// and prints "ok <value>", then stays up until it is stopped. With the argument "login" it is the updater
// job: it prints "logged in as <user>" and exits 0 once it could log in, or exits 1 after LOGIN_WAIT (a
// duration, default 1m). It never prints the password.
package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if len(os.Args) > 1 && os.Args[1] == "login" {
		wait, err := time.ParseDuration(or(os.Getenv("LOGIN_WAIT"), "1m"))
		if err != nil {
			fmt.Println("LOGIN_WAIT:", err)
			os.Exit(2)
		}
		wctx, cancel := context.WithTimeout(ctx, wait)
		defer cancel()
		conn, err := connect(wctx)
		if err != nil {
			fmt.Println("no login:", err)
			os.Exit(1)
		}
		defer conn.Close(context.Background())
		var user string
		if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil {
			fmt.Println("query:", err)
			os.Exit(1)
		}
		fmt.Println("logged in as", user)
		return
	}
	conn, err := connect(ctx)
	if err != nil {
		fmt.Println("no login:", err)
		os.Exit(1)
	}
	value, err := roundTrip(ctx, conn, os.Getenv("ROW_VALUE"))
	conn.Close(context.Background())
	if err != nil {
		fmt.Println("row:", err)
		os.Exit(1)
	}
	fmt.Println("ok", value)
	<-ctx.Done()
}

// connect logs in, trying again every second until ctx ends; it prints the first error and every tenth.
func connect(ctx context.Context) (*pgx.Conn, error) {
	u := url.URL{Scheme: "postgres", User: url.User(os.Getenv("DB_USER")), Path: "/" + os.Getenv("DB_NAME"),
		Host: net.JoinHostPort(os.Getenv("DB_HOST"), or(os.Getenv("DB_PORT"), "5432")), RawQuery: "sslmode=disable"}
	cfg, err := pgx.ParseConfig(u.String())
	if err != nil {
		return nil, err
	}
	// Set after parsing, so that no error quotes it.
	cfg.Password = os.Getenv("DB_PASS")
	cfg.ConnectTimeout = 5 * time.Second
	for attempt := 0; ; attempt++ {
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			return conn, nil
		}
		if attempt%10 == 0 {
			fmt.Printf("waiting for the database (attempt %d): %v\n", attempt+1, err)
		}
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(time.Second):
		}
	}
}

func roundTrip(ctx context.Context, conn *pgx.Conn, value string) (string, error) {
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS rows (id serial PRIMARY KEY, value text NOT NULL)"); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "INSERT INTO rows (value) VALUES ($1)", value); err != nil {
		return "", err
	}
	var got string
	err := conn.QueryRow(ctx, "SELECT value FROM rows ORDER BY id DESC LIMIT 1").Scan(&got)
	return got, err
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
