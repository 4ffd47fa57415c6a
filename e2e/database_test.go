package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// databaseSettings is a server in Bee2's later layout with TT-RSS's database wiring (Bee2's README): a
// PostgreSQL application whose admin password is _postgres^adminpass, the application ttrss with db:
// [postgres] reading its own password, the DBSetup job that makes the database and user from _dbmap, and
// an updater job that shares ttrss's password through db: [postgres:ttrss]. The jobs run in file order, so
// the updater logs in after DBSetup made the user; ttrss starts with the server and tries until it can.
const databaseSettings = `servers:
  local: {}
docker:
  local:
    prefix: %[1]s
    applications:
      postgres:
        build_dir: Postgres
        build_args: {BASE: "%[2]s"}
        user: postgres
        env:
          postgres_password: _postgres^adminpass
          port: 5432
        ports: ["127.0.0.1:%[3]d:5432"]
      ttrss:
        image: %[4]s
        db: [postgres]
        env:
          db_host: $postgres
          db_user: ttrss
          db_name: ttrss
          db_pass: _postgres^password
          row_value: %[5]s
    jobs:
      dbsetup:
        build_dir: DBSetup
        env:
          database_json: _dbmap
          postgres_host: $postgres
          dbsetup_wait: 3m
      ttrss-updater:
        image: %[4]s
        cmd: login
        db: [postgres:ttrss]
        env:
          db_host: $postgres
          db_user: ttrss
          db_name: ttrss
          db_pass: _postgres:ttrss^password
`

// TestDatabases converges a TT-RSS-like server with the bee2d binary (bee2d apply) on the local engine:
// bee2d makes the database passwords into the secrets directory, DBSetup makes ttrss's database and user
// with them, and the application and its updater job both log in with the one password they share. No
// password reaches plan, render or bee2d's log, and a second apply changes nothing.
func TestDatabases(t *testing.T) {
	if testing.Short() {
		testdocker.Need(t, "end-to-end test under -short")
	}
	cli := testdocker.Require(t)
	ctx := t.Context()
	base := baseImage(t, cli)
	prefix := testdocker.UniquePrefix(t)
	testdocker.Cleanup(t, cli, prefix)
	dir := t.TempDir()

	// The build directories: PostgreSQL on the offline base, running the script TestDBSetup uses, and
	// DBSetup from the repository's dockerfiles with its binary, as `make dbsetup` leaves it.
	dockerfiles := filepath.Join(dir, "dockerfiles")
	pgDir := filepath.Join(dockerfiles, "Postgres")
	if err := os.MkdirAll(pgDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The script is the command, not a file, and the user is the settings' (user: postgres): the classic
	// builder commits a container of the base for each step after FROM, which takes seconds each on
	// fuse-overlayfs, and COPY would add a layer.
	cmd, err := json.Marshal([]string{"sh", "-c", postgresScript})
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := "ARG BASE\nFROM ${BASE}\nCMD " + string(cmd) + "\n"
	if err := os.WriteFile(filepath.Join(pgDir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	dbsetupContext(t, filepath.Join(dockerfiles, "DBSetup"))
	ttrssImage := buildDBClient(t, cli, prefix)
	bee2d := bee2dBinary(t, dir)

	pgPort := freePort(t, "127.0.0.1")
	row := "row-" + randomHex(t)[:12]
	settings := filepath.Join(dir, "settings.yml")
	yml := fmt.Sprintf(databaseSettings, prefix, base, pgPort, ttrssImage, row)
	if err := os.WriteFile(settings, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}

	// Everything bee2d prints, to look for passwords in at the end.
	var said strings.Builder
	bee2dRun := func(args ...string) (int, string) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(cctx, bee2d, args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		said.WriteString(out.String())
		if err != nil && (cmd.ProcessState == nil || cmd.ProcessState.ExitCode() < 0) {
			t.Fatalf("bee2d %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return cmd.ProcessState.ExitCode(), out.String()
	}
	name := func(kind, svc string) string { return prefix + "-" + kind + "-" + svc }

	// The passwords are made when the settings are first loaded, here by plan.
	code, plan := bee2dRun("plan", "-c", settings, "--detailed-exitcode")
	t.Logf("first plan (exit %d):\n%s", code, plan)
	if code != 2 || !strings.Contains(plan, "run job "+name("job", "dbsetup")) || !strings.Contains(plan, "create container "+name("app", "ttrss")) {
		t.Fatalf("first plan exited %d, want 2 with dbsetup's run and ttrss's create", code)
	}
	for _, p := range []string{"database/postgres/admin", "database/postgres/ttrss"} {
		if !strings.Contains(plan, "made database password "+filepath.Join(dir, "secrets", p)) {
			t.Errorf("plan did not say it made %s", p)
		}
	}
	start := time.Now()
	code, out := bee2dRun("apply", "-c", settings, "--log-level", "debug")
	if code != 0 {
		t.Fatalf("apply exited %d:\n%s", code, out)
	}
	t.Logf("apply converged in %v:\n%s", time.Since(start).Round(100*time.Millisecond), out)
	t.Cleanup(func() {
		if t.Failed() {
			for _, c := range []string{name("app", "ttrss"), name("job", "dbsetup"), name("job", "ttrss-updater")} {
				t.Logf("--- %s:\n%s", c, testdocker.Logs("", c))
			}
			if pg, err := testdocker.Inspect("", name("app", "postgres")); err == nil {
				serverLog(t, cli, pg.ID, "/tmp/initdb.log", "/tmp/server.log")
			}
		}
	})

	// The password files: made once, 0600, one line each.
	secrets := filepath.Join(dir, "secrets", "database", "postgres")
	readPassword := func(name string) string {
		t.Helper()
		file := filepath.Join(secrets, name)
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", file, fi.Mode().Perm())
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		pw, ok := strings.CutSuffix(string(b), "\n")
		if !ok || len(pw) != 32 || strings.ContainsAny(pw, "\n\r ") {
			t.Fatalf("%s does not hold one password of 32 characters", file)
		}
		return pw
	}
	admin, ttrss := readPassword("admin"), readPassword("ttrss")
	for _, d := range []string{filepath.Dir(secrets), secrets} {
		if fi, err := os.Stat(d); err != nil {
			t.Error(err)
		} else if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, fi.Mode().Perm())
		}
	}
	entries, _ := os.ReadDir(secrets)
	if len(entries) != 2 {
		t.Errorf("%s holds %d entries, want admin and ttrss", secrets, len(entries))
	}

	// The containers' environments hold exactly those passwords, each where the settings ask for it, and
	// dbsetup's DATABASE_JSON is _dbmap as Bee2's JSON.dump wrote it: compact, admin passwords first, then
	// one entry per db: item, applications before jobs, duplicates kept (ttrss and its updater).
	want := map[string]map[string]string{
		name("app", "postgres"):      {"POSTGRES_PASSWORD": admin},
		name("app", "ttrss"):         {"DB_PASS": ttrss, "DB_HOST": name("app", "postgres"), "DB_USER": "ttrss"},
		name("job", "ttrss-updater"): {"DB_PASS": ttrss, "DB_HOST": name("app", "postgres")},
		name("job", "dbsetup"): {"POSTGRES_HOST": name("app", "postgres"), "DATABASE_JSON": fmt.Sprintf(
			`{"admin":{"postgres":%q},"containers":[{"container":"ttrss","db":"postgres","password":%q},{"container":"ttrss","db":"postgres","password":%q}]}`,
			admin, ttrss, ttrss)},
	}
	ids := map[string]string{}
	for c, vars := range want {
		info, err := testdocker.Inspect("", c)
		if err != nil {
			t.Fatalf("inspect %s: %v", c, err)
		}
		ids[c] = info.ID
		env := map[string]string{}
		for _, kv := range info.Config.Env {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		for k, v := range vars {
			if env[k] != v {
				t.Errorf("%s: %s is not what the settings and the password files say", c, k)
			}
		}
		// Only PostgreSQL and DBSetup get the admin password; ttrss and its updater only their own.
		for k, v := range env {
			if strings.Contains(v, admin) && !strings.Contains(vars[k], admin) {
				t.Errorf("%s: %s holds the admin password", c, k)
			}
		}
		switch {
		case strings.Contains(c, "-job-"):
			if info.State.Running || info.State.ExitCode != 0 {
				t.Errorf("job %s: running %v, exit code %d; want exited 0", c, info.State.Running, info.State.ExitCode)
			}
		case !info.State.Running:
			t.Errorf("application %s is not running: %s", c, info.State.Status)
		}
	}
	// DBSetup made the user; the updater logged in with the shared password; ttrss read its row.
	if logs := testdocker.Logs("", name("job", "dbsetup")); !strings.Contains(logs, "postgres: user ttrss created") ||
		!strings.Contains(logs, "postgres: database ttrss created, owned by ttrss") {
		t.Errorf("dbsetup did not make ttrss's user and database:\n%s", logs)
	}
	if logs := testdocker.Logs("", name("job", "ttrss-updater")); !strings.Contains(logs, "logged in as ttrss") {
		t.Errorf("the updater did not log in as ttrss:\n%s", logs)
	}
	err = eventually(ctx, 2*time.Minute, func() error {
		if logs := testdocker.Logs("", name("app", "ttrss")); !strings.Contains(logs, "ok "+row) {
			return fmt.Errorf("ttrss has not read its row back:\n%s", logs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ttrss read its row %v after apply began", time.Since(start).Round(100*time.Millisecond))

	// From this machine too, through the published port: each password file logs in as its user.
	checkPostgres(t, pgPort, "ttrss", ttrss)
	if conn, err := pgConnect(ctx, pgPort, "postgres", admin); err != nil {
		t.Errorf("postgres: the admin password file does not log in: %v", err)
	} else {
		conn.Close(ctx)
	}
	if err := pgLogin(ctx, pgPort, "ttrss", admin); err == nil {
		t.Error("ttrss logs in with the admin password")
	}

	t.Run("the server logs no password", func(t *testing.T) {
		pg := ids[name("app", "postgres")]
		res, err := cli.Exec(ctx, pg, []string{"cat", "/tmp/server.log"})
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("read the server's log: %v %+v", err, res)
		}
		if !strings.Contains(res.Stdout, "INSERT INTO rows") {
			t.Error("the server logs no statement: is log_statement on?")
		}
		for _, pw := range []string{admin, ttrss} {
			if strings.Contains(res.Stdout, pw) {
				t.Error("the server's log shows a password")
			}
		}
	})

	t.Run("a second apply changes nothing", func(t *testing.T) {
		if code, plan := bee2dRun("plan", "-c", settings, "--detailed-exitcode"); code != 0 {
			t.Errorf("plan after apply exited %d:\n%s", code, plan)
		}
		code, out := bee2dRun("apply", "-c", settings)
		if code != 0 || !strings.Contains(out, "server local: no changes") || strings.Contains(out, "made database password") {
			t.Errorf("second apply exited %d:\n%s", code, out)
		}
		for c, id := range ids {
			info, err := testdocker.Inspect("", c)
			if err != nil || info.ID != id {
				t.Errorf("%s was replaced or removed (%v)", c, err)
			}
		}
		if a, tt := readPassword("admin"), readPassword("ttrss"); a != admin || tt != ttrss {
			t.Error("a password file changed")
		}
	})

	t.Run("no password in what bee2d prints", func(t *testing.T) {
		code, render := bee2dRun("render", "-c", settings, "--json")
		if code != 0 || !strings.Contains(render, "DB_PASS=") {
			t.Errorf("render exited %d:\n%s", code, render)
		}
		for _, pw := range []string{admin, ttrss} {
			if strings.Contains(said.String(), pw) {
				t.Error("bee2d printed a password")
			}
		}
	})
}

// buildDBClient builds the TT-RSS stand-in, testdata/dbclient, into an image FROM scratch, as a registry
// would hold it: the settings name it with image:, found on the server, so never pulled.
func buildDBClient(t *testing.T, cli *dockerx.Client, prefix string) string {
	t.Helper()
	dir := t.TempDir()
	goBuild(t, filepath.Join(dir, "dbclient"), "./e2e/testdata/dbclient", "-trimpath", "-buildvcs=false", "-ldflags=-s")
	dockerfile := "FROM scratch\nCOPY dbclient /dbclient\nUSER 65534:65534\nENTRYPOINT [\"/dbclient\"]\n"
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(dockerfile), 0o644); err != nil {
		t.Fatal(err)
	}
	tag := prefix + "/dbclient:test"
	var out bytes.Buffer
	if _, err := cli.BuildImage(t.Context(), dockerx.BuildRequest{ContextDir: dir, Tags: []string{tag}, Output: &out}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	return tag
}
