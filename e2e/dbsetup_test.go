package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// postgresScript makes a cluster on the first start, with the password of POSTGRES_PASSWORD for postgres
// and password logins from anywhere, and serves it on PORT; a container started again keeps its cluster.
// Every statement is logged (log_statement=all), to show that DBSetup keeps the passwords it sets out of the
// server's log.
const postgresScript = `set -e
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
data=/tmp/pgdata
if [ ! -s "$data/PG_VERSION" ]; then
	printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
	"$bin/initdb" -D "$data" -U postgres --pwfile=/tmp/pwfile -E UTF8 --auth-local=trust --auth-host=scram-sha-256 > /tmp/initdb.log
	rm /tmp/pwfile
	echo "host all all all scram-sha-256" >> "$data/pg_hba.conf"
fi
exec "$bin/postgres" -D "$data" -k /tmp -p "$PORT" -c listen_addresses='*' -c log_statement=all >> /tmp/server.log 2>&1
`

// mariadbScript makes a data directory with root@'%' of MYSQL_ROOT_PASSWORD (hex: it is written into SQL
// here) and serves it on PORT, with the general query log on, for the same reason.
const mariadbScript = `set -e
data=/tmp/mysql
mariadb-install-db --datadir="$data" --auth-root-authentication-method=normal --skip-test-db > /tmp/install.log 2>&1
cat > /tmp/init.sql <<EOF
ALTER USER 'root'@'localhost' IDENTIFIED BY '$MYSQL_ROOT_PASSWORD';
CREATE USER 'root'@'%' IDENTIFIED BY '$MYSQL_ROOT_PASSWORD';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
EOF
exec mariadbd --datadir="$data" --socket=/tmp/mysqld.sock --pid-file=/tmp/mysqld.pid --port="$PORT" \
	--bind-address=0.0.0.0 --skip-name-resolve --init-file=/tmp/init.sql \
	--general-log --general-log-file=/tmp/general.log > /tmp/server.log 2>&1
`

// dbEntry is one element of _dbmap's containers.
type dbEntry struct {
	Container string `json:"container"`
	DB        string `json:"db"`
	Password  string `json:"password"`
}

// TestDBSetup runs the DBSetup image against PostgreSQL and MariaDB from Debian's packages, each in a
// container on one user-defined network: DBSetup starts together with the servers and waits for them, makes
// each database and user (one name with a dash, passwords that need quoting), and a second run changes
// nothing but is fine; a third sets changed passwords. Each user logs in from here through a published port.
func TestDBSetup(t *testing.T) {
	if testing.Short() {
		testdocker.Need(t, "end-to-end test under -short")
	}
	cli := testdocker.Require(t)
	ctx := t.Context()
	base := baseImage(t, cli)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	network := prefix + "-network"
	if err := cli.CreateNetwork(ctx, network, map[string]string{testdocker.LabelTest: "true"}); err != nil {
		t.Fatal(err)
	}

	dbsetup := buildDBSetup(t, cli, prefix)
	pgImage := buildFrom(t, cli, prefix+"/postgres:test", base, "postgres")
	myImage := buildFrom(t, cli, prefix+"/mariadb:test", base, "mysql")

	pgAdmin, myAdmin := randomHex(t), randomHex(t)
	pgPort, myPort := freePort(t, "127.0.0.1"), freePort(t, "127.0.0.1")
	pg := startServer(t, cli, prefix+"-postgres", pgImage, network, pgPort, postgresScript, "POSTGRES_PASSWORD="+pgAdmin)
	my := startServer(t, cli, prefix+"-mariadb", myImage, network, myPort, mariadbScript, "MYSQL_ROOT_PASSWORD="+myAdmin)

	// Bee2 writes one entry per container, so a database that two containers share comes twice.
	tricky := `it's "quoted" \ and $1 ` + randomHex(t)[:8]
	entries := []dbEntry{
		{"web-app", "postgres", tricky},
		{"web-app", "postgres", tricky},
		{"stats", "postgres", randomHex(t)},
		{"wiki-db", "mysql", tricky + "`"},
		{"blog", "mysql", randomHex(t)},
	}
	hosts := []string{
		fmt.Sprintf("POSTGRES_HOST=%s:%d", prefix+"-postgres", pgPort),
		fmt.Sprintf("MYSQL_HOST=%s:%d", prefix+"-mariadb", myPort),
		"DBSETUP_WAIT=3m",
	}
	env := func(admin map[string]string, entries []dbEntry) []string {
		b, err := json.Marshal(map[string]any{"admin": admin, "containers": entries})
		if err != nil {
			t.Fatal(err)
		}
		return append([]string{"DATABASE_JSON=" + string(b)}, hosts...)
	}
	admin := map[string]string{"postgres": pgAdmin, "mysql": myAdmin}
	// secrets are the users' passwords, which neither DBSetup nor the servers may print; DBSetup does not
	// print the admin passwords either.
	var secrets []string
	for _, e := range entries {
		secrets = append(secrets, e.Password)
	}

	run := func(name string, env []string) (int, string) {
		t.Helper()
		id, err := cli.CreateContainer(ctx, dockerx.ContainerSpec{Name: prefix + "-" + name, Image: dbsetup, Env: env, Network: network})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		code, err := cli.RunContainer(rctx, id, &out)
		if err != nil {
			t.Fatalf("run %s: %v\n%s", name, err, out.String())
		}
		t.Logf("%s exited %d:\n%s", name, code, out.String())
		for _, s := range append([]string{pgAdmin, myAdmin}, secrets...) {
			if strings.Contains(out.String(), s) {
				t.Errorf("%s printed a password", name)
			}
		}
		return code, out.String()
	}
	t.Cleanup(func() {
		if t.Failed() {
			serverLog(t, cli, pg, "/tmp/initdb.log", "/tmp/server.log")
			serverLog(t, cli, my, "/tmp/install.log", "/tmp/server.log")
		}
	})

	// Started at once: DBSetup waits while the servers make their data directories.
	start := time.Now()
	code, out := run("dbsetup-1", env(admin, entries))
	if code != 0 {
		t.Fatalf("first run exited %d", code)
	}
	t.Logf("first run done %v after the servers were started", time.Since(start).Round(100*time.Millisecond))
	for _, want := range []string{
		"postgres: web-app normalized to web_app", "postgres: user web_app created", "postgres: database web_app created, owned by web_app",
		"postgres: user stats created", "mysql: wiki-db normalized to wiki_db", "mysql: database wiki_db created", "mysql: user wiki_db created",
		"mysql: user blog created",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("first run: no %q", want)
		}
	}
	if n := strings.Count(out, "user web_app created"); n != 1 {
		t.Errorf("web_app set up %d times, want once", n)
	}
	checkPostgres(t, pgPort, "web_app", tricky)
	checkPostgres(t, pgPort, "stats", entries[2].Password)
	checkMySQL(t, myPort, myAdmin, "wiki_db", entries[3].Password)
	checkMySQL(t, myPort, myAdmin, "blog", entries[4].Password)

	t.Run("a second run changes nothing", func(t *testing.T) {
		code, out := run("dbsetup-2", env(admin, entries))
		if code != 0 {
			t.Fatalf("second run exited %d", code)
		}
		for _, want := range []string{"postgres: user web_app exists, password set", "postgres: database web_app exists (owner web_app), kept",
			"mysql: database wiki_db exists, kept", "mysql: user wiki_db exists, password set"} {
			if !strings.Contains(out, want) {
				t.Errorf("second run: no %q", want)
			}
		}
		if strings.Contains(out, "created") {
			t.Error("the second run created something")
		}
		checkPostgres(t, pgPort, "web_app", tricky)
		checkMySQL(t, myPort, myAdmin, "wiki_db", entries[3].Password)
	})

	t.Run("a changed password is set", func(t *testing.T) {
		newWeb, newWiki := randomHex(t), randomHex(t)
		secrets = append(secrets, newWeb, newWiki)
		changed := []dbEntry{{"web-app", "postgres", newWeb}, entries[2], {"wiki-db", "mysql", newWiki}, entries[4]}
		if code, _ := run("dbsetup-3", env(admin, changed)); code != 0 {
			t.Fatalf("third run exited %d", code)
		}
		checkPostgres(t, pgPort, "web_app", newWeb)
		checkMySQL(t, myPort, myAdmin, "wiki_db", newWiki)
		if err := pgLogin(ctx, pgPort, "web_app", tricky); err == nil {
			t.Error("postgres: the old password still works")
		}
		if err := myLogin(ctx, myPort, "wiki_db", entries[3].Password); err == nil {
			t.Error("mysql: the old password still works")
		}
	})

	t.Run("a wrong admin password fails at once", func(t *testing.T) {
		started := time.Now()
		code, out := run("dbsetup-4", env(map[string]string{"postgres": "wrong"}, entries[:1]))
		if code != 1 || !strings.Contains(out, "password authentication failed for user \"postgres\"") {
			t.Errorf("exited %d, want 1 with the server's refusal", code)
		}
		if d := time.Since(started); d > time.Minute {
			t.Errorf("took %v: a refused login was waited on", d)
		}
	})

	t.Run("no password in the servers' statement logs", func(t *testing.T) {
		for _, c := range []struct{ id, file string }{{pg, "/tmp/server.log"}, {my, "/tmp/general.log"}} {
			res, err := cli.Exec(ctx, c.id, []string{"cat", c.file})
			if err != nil || res.ExitCode != 0 {
				t.Fatalf("read %s: %v %+v", c.file, err, res)
			}
			// The checks' own statements are there: the log is on.
			if !strings.Contains(res.Stdout, "CREATE TABLE IF NOT EXISTS owned") {
				t.Errorf("%s logs no statement: is the log on?", c.file)
			}
			for _, s := range secrets {
				if strings.Contains(res.Stdout, s) {
					t.Errorf("%s shows a password", c.file)
				}
			}
		}
	})
}

// buildDBSetup builds DBSetup's image from dbsetupContext.
func buildDBSetup(t *testing.T, cli *dockerx.Client, prefix string) string {
	t.Helper()
	dir := t.TempDir()
	dbsetupContext(t, dir)
	tag := prefix + "/dbsetup:test"
	var out bytes.Buffer
	if _, err := cli.BuildImage(t.Context(), dockerx.BuildRequest{ContextDir: dir, Tags: []string{tag}, Output: &out}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return tag
}

// dbsetupContext makes dir DBSetup's build context as `make dbsetup` makes dockerfiles/DBSetup: the static
// binary, compiled as the Makefile does, beside the Dockerfile.
func dbsetupContext(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	goBuild(t, filepath.Join(dir, "dbsetup"), "./dockerfiles/DBSetup", "-trimpath", "-buildvcs=false", "-ldflags=-s")
	dockerfile, err := os.ReadFile(filepath.Join("..", "dockerfiles", "DBSetup", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), dockerfile, 0o644); err != nil {
		t.Fatal(err)
	}
}

// buildFrom builds an image of the base that runs as user.
func buildFrom(t *testing.T, cli *dockerx.Client, tag, base, user string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte("FROM "+base+"\nUSER "+user+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := cli.BuildImage(t.Context(), dockerx.BuildRequest{ContextDir: dir, Tags: []string{tag}, Output: &out}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return tag
}

// startServer starts a database server on the network, publishing port (which it listens on) on this
// machine.
func startServer(t *testing.T, cli *dockerx.Client, name, image, network string, port int, script string, env ...string) string {
	t.Helper()
	id, err := cli.CreateContainer(t.Context(), dockerx.ContainerSpec{
		Name: name, Image: image, Network: network, Ports: []dockerx.PortSpec{{HostPort: port, ContainerPort: port}},
		Cmd: []string{"sh", "-c", script}, Env: append(env, "PORT="+strconv.Itoa(port)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.StartContainer(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	return id
}

func serverLog(t *testing.T, cli *dockerx.Client, id string, files ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, f := range files {
		res, err := cli.Exec(ctx, id, []string{"tail", "-n", "40", f})
		if err != nil {
			t.Logf("%s of %.12s: %v", f, id, err)
			continue
		}
		t.Logf("--- %s of %.12s:\n%s%s", f, id, res.Stdout, res.Stderr)
	}
}

// randomHex is a password as Bee2 makes them: 32 hex characters.
func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func pgLogin(ctx context.Context, port int, user, password string) error {
	conn, err := pgConnect(ctx, port, user, password)
	if err == nil {
		conn.Close(ctx)
	}
	return err
}

func pgConnect(ctx context.Context, port int, user, password string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=10", user, port, user))
	if err != nil {
		return nil, err
	}
	cfg.Password = password
	return pgx.ConnectConfig(ctx, cfg)
}

// checkPostgres logs in as user with password to the database of that name, which user owns: it makes a
// table there.
func checkPostgres(t *testing.T, port int, user, password string) {
	t.Helper()
	ctx := t.Context()
	conn, err := pgConnect(ctx, port, user, password)
	if err != nil {
		t.Errorf("postgres: %s cannot log in: %v", user, err)
		return
	}
	defer conn.Close(ctx)
	var current, owner string
	err = conn.QueryRow(ctx, `SELECT current_user, pg_catalog.pg_get_userbyid(datdba) FROM pg_catalog.pg_database
		WHERE datname = current_database()`).Scan(&current, &owner)
	if err != nil || current != user || owner != user {
		t.Errorf("postgres: %s logged in as %q to a database owned by %q: %v", user, current, owner, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS owned (x int)"); err != nil {
		t.Errorf("postgres: %s cannot make a table in its database: %v", user, err)
	}
}

func myOpen(port int, user, password, database string) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = user, password, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), database
	cfg.Timeout = 10 * time.Second
	connector, _ := mysql.NewConnector(cfg)
	return sql.OpenDB(connector)
}

func myLogin(ctx context.Context, port int, user, password string) error {
	db := myOpen(port, user, password, user)
	defer db.Close()
	return db.PingContext(ctx)
}

// checkMySQL logs in as user to the database of that name and makes a table there; the grant is for that
// database only, not for others that its _ matches as a wildcard.
func checkMySQL(t *testing.T, port int, rootPassword, user, password string) {
	t.Helper()
	ctx := t.Context()
	db := myOpen(port, user, password, user)
	defer db.Close()
	var current string
	if err := db.QueryRowContext(ctx, "SELECT CURRENT_USER()").Scan(&current); err != nil || current != user+"@%" {
		t.Errorf("mysql: %s logged in as %q: %v", user, current, err)
		return
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS owned (x int)"); err != nil {
		t.Errorf("mysql: %s cannot make a table in its database: %v", user, err)
	}
	if !strings.Contains(user, "_") {
		return
	}
	root := myOpen(port, "root", rootPassword, "")
	defer root.Close()
	other := strings.ReplaceAll(user, "_", "X")
	if _, err := root.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS `"+other+"`"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "CREATE TABLE `"+other+"`.t (x int)"); err == nil {
		t.Errorf("mysql: %s may write to %s: the grant's _ was a wildcard", user, other)
	}
}
