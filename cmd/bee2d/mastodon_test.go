package main

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

// mastodonProgram stands in for every image and build_dir of Bee2's Mastodon example, since no registry is
// reachable: the test builds it into its engine under each image name the example pulls, and into each
// build_dir folder. An application runs until it is stopped. A job must run to its end and succeed, and
// the program tells one from the other by its arguments alone: it exits 0 at once when one of them is
// "db:migrate" (mastodon-dbmigrate, the one job that runs the Mastodon image, whose web, streaming and
// sidekiq applications run it too) or "once" (the CMD of the Dockerfiles the test writes for the example's
// build_dir jobs: DBSetup, LogRotate, HAProxySetup).
const mastodonProgram = `package main

import (
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
)

func main() {
	args := strings.Join(os.Args[1:], " ")
	if slices.Contains(os.Args[1:], "db:migrate") || slices.Contains(os.Args[1:], "once") {
		fmt.Println("job done:", args)
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	fmt.Println("running:", args)
	<-sig
}
`

// The example's images (pulled by bee2d when missing) and build_dir folders, the latter by whether a job
// or an application uses them.
var (
	mastodonImages = []string{"tootsuite/mastodon:v2.5.0", "postgres:10.2", "redis:4.0.9-alpine", "haproxy:1.8.4",
		"docker.elastic.co/elasticsearch/elasticsearch:6.4.0"}
	mastodonBuildDirs = map[string]bool{ // true: a job's
		"DBSetup": true, "LogRotate": true, "HAProxySetup": true,
		"AWStatsCGI": false, "JobScheduler": false, "NginxMastodon": false, "CertBot": false,
	}
)

const (
	mastodonApps = 11
	mastodonJobs = 4
	// The state file's prefix for kara plus the server's suffixes (testdata/mastodon).
	mastodonSubnet   = "fd00:b2e::2:0:0/96"
	mastodonStaticV6 = "fd00:b2e::2:ffff:a"
	// What testdata/mastodon/settings.yml names as kara's engine; the test puts its own engine there.
	mastodonEngineStandIn = "unix:///nonexistent/replaced-by-the-test.sock"
)

// TestMastodonExample shows that Bee2's README Mastodon example (testdata/mastodon/settings.yml: the
// example's docker section as written, less its broken +awstats-generate reference, in a file with a
// server, a provisioner state file and a dockerfiles folder) validates, renders as Bee2 meant it, and
// applies: on an engine of the test's own, every application runs, every job ran and succeeded, the
// network has the state file's IPv6 subnet, and a second plan has nothing to do.
func TestMastodonExample(t *testing.T) {
	start := time.Now()
	dir := t.TempDir()
	copyTree(t, filepath.Join("testdata", "mastodon"), dir) // 0600: no warning about readable settings
	settings := filepath.Join(dir, "settings.yml")
	writeMastodonDockerfiles(t, filepath.Join(dir, "dockerfiles"))
	bee2d := func(args ...string) (int, string, string) {
		t.Helper()
		var out, errOut bytes.Buffer
		code := run(t.Context(), args, &out, &errOut)
		return code, out.String(), errOut.String()
	}
	secret := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, "secrets", "database", "postgres", name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}

	// validate: no warning (kara is a server of the file, the settings are 0600, the example has no
	// yes/no/on/off that Bee2's YAML 1.1 read as booleans); the first load makes the hash key and the two database passwords, the next
	// makes nothing and says nothing.
	code, out, errOut := bee2d("validate", "-c", settings)
	if code != 0 || out != settings+": ok (1 server, 11 applications, 4 jobs)\n" {
		t.Fatalf("validate = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	wantMade := []string{
		"made " + filepath.Join(dir, "secrets", ".hash-key") + ", the key of the hashes of secret values in container labels (mode 0600); keep it with the secrets",
		"made database password " + filepath.Join(dir, "secrets", "database", "postgres", "admin"),
		"made database password " + filepath.Join(dir, "secrets", "database", "postgres", "mastodon"),
	}
	if got := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n"); !slices.Equal(got, wantMade) {
		t.Errorf("validate's first stderr:\n%s\nwant:\n%s", errOut, strings.Join(wantMade, "\n"))
	}
	if code, _, errOut := bee2d("validate", "-c", settings); code != 0 || errOut != "" {
		t.Errorf("second validate = %d, stderr %q; want 0 and nothing", code, errOut)
	}
	dbPass, adminPass := secret("mastodon"), secret("admin")
	if len(dbPass) < 16 || len(adminPass) < 16 || dbPass == adminPass {
		t.Fatalf("database passwords %q (mastodon), %q (admin)", dbPass, adminPass)
	}

	t.Run("render", func(t *testing.T) {
		hidden, shown := renderMastodon(t, bee2d, settings, false), renderMastodon(t, bee2d, settings, true)
		checkMastodonRender(t, hidden, shown, dbPass, adminPass)
	})
	t.Logf("validate and render: %s", time.Since(start).Round(time.Millisecond))

	// apply, on an engine of the test's own: ports 80 and 443 and the IPv6 network stay in its namespace.
	engine := testdocker.StartEngine(t, nil)
	cli := engine.Client(t)
	t.Logf("engine up: %s", time.Since(start).Round(time.Millisecond))
	buildMastodonImages(t, cli)
	yml, err := os.ReadFile(settings)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(yml, []byte(mastodonEngineStandIn)) {
		t.Fatalf("%s does not name %s as kara's engine", settings, mastodonEngineStandIn)
	}
	yml = bytes.Replace(yml, []byte(mastodonEngineStandIn), []byte(engine.Host), 1)
	if err := os.WriteFile(settings, yml, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Logf("images built: %s", time.Since(start).Round(time.Millisecond))

	// The example gives four containers the Docker socket: the test engine shares this machine's file
	// system, and would make a directory where a missing socket should be.
	if fi, err := os.Stat("/var/run/docker.sock"); err != nil || fi.Mode()&os.ModeSocket == 0 {
		testdocker.Need(t, "the example mounts /var/run/docker.sock, and this machine has no socket there")
	}
	if code, out, errOut := bee2d("apply", "-c", settings); code != 0 {
		t.Fatalf("apply = %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("applied: %s", time.Since(start).Round(time.Millisecond))

	list, err := cli.ListContainers(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	apps, jobs := 0, 0
	for _, c := range list {
		switch {
		case strings.HasPrefix(c.Name, "social-app-"):
			apps++
			if !c.Running() {
				t.Errorf("%s: %s (%s), want running", c.Name, c.State, c.Status)
			}
			if c.Name == "social-app-haproxy" {
				var ports []int
				for _, p := range c.Ports {
					if p.HostPort == p.ContainerPort && p.Proto == "tcp" && !slices.Contains(ports, p.HostPort) {
						ports = append(ports, p.HostPort)
					}
				}
				if !slices.Equal(ports, []int{80, 443}) {
					t.Errorf("haproxy publishes %+v, want 80 and 443", c.Ports)
				}
			}
		case strings.HasPrefix(c.Name, "social-job-"):
			jobs++
			if code, ok := c.ExitCode(); !ok || code != 0 {
				t.Errorf("%s: %s (%s), want exited 0", c.Name, c.State, c.Status)
			}
		default:
			t.Errorf("unexpected container %s", c.Name)
		}
	}
	if apps != mastodonApps || jobs != mastodonJobs {
		t.Errorf("%d applications and %d jobs on the engine, want %d and %d", apps, jobs, mastodonApps, mastodonJobs)
	}

	nw, err := cli.InspectNetwork(t.Context(), "social-network")
	if err != nil {
		t.Fatal(err)
	}
	if !nw.EnableIPv6 || !slices.Contains(nw.Subnets, mastodonSubnet) {
		t.Errorf("social-network: IPv6 %v, subnets %v; want IPv6 with %s", nw.EnableIPv6, nw.Subnets, mastodonSubnet)
	}
	if len(nw.Containers) != mastodonApps {
		t.Errorf("on social-network: %v, want the %d applications", nw.Containers, mastodonApps)
	}
	if haproxy := mustInspect(t, engine.Host, "social-app-haproxy"); haproxy.NetworkSettings.Networks["social-network"].GlobalIPv6Address != mastodonStaticV6 {
		t.Errorf("haproxy's address on social-network: %+v, want IPv6 %s", haproxy.NetworkSettings.Networks["social-network"], mastodonStaticV6)
	}
	// The engine got the password bee2d keeps in the secrets directory.
	if web := mustInspect(t, engine.Host, "social-app-mastodon-web"); !slices.Contains(web.Config.Env, "DB_PASS="+dbPass) {
		t.Errorf("mastodon-web's DB_PASS is not the one in secrets/database/postgres/mastodon")
	}

	if code, out, errOut := bee2d("plan", "-c", settings, "--detailed-exitcode"); code != 0 {
		t.Errorf("plan after apply = %d, want 0 (no changes)\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	t.Logf("checked: %s", time.Since(start).Round(time.Millisecond))
}

// writeMastodonDockerfiles makes one folder per build_dir of the example, each a Dockerfile FROM scratch with
// mastodonProgram, compiled once.
func writeMastodonDockerfiles(t *testing.T, root string) {
	t.Helper()
	prog := filepath.Join(t.TempDir(), "prog")
	testdocker.GoBuildDir(t, prog, mastodonProgram)
	bin, err := os.ReadFile(filepath.Join(prog, "app"))
	if err != nil {
		t.Fatal(err)
	}
	for name, job := range mastodonBuildDirs {
		dockerfile := "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n"
		if job {
			dockerfile += "CMD [\"once\"]\n"
		}
		d := filepath.Join(root, name)
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "app"), bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "Dockerfile"), []byte(dockerfile), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// buildMastodonImages builds mastodonProgram into the engine once, tagged with every image name of the
// example, so bee2d finds them and pulls nothing.
func buildMastodonImages(t *testing.T, cli *dockerx.Client) {
	t.Helper()
	ctxDir := filepath.Join(t.TempDir(), "image")
	testdocker.GoBuildDir(t, ctxDir, mastodonProgram)
	var log bytes.Buffer
	if _, err := cli.BuildImage(t.Context(), dockerx.BuildRequest{ContextDir: ctxDir, Tags: mastodonImages,
		Labels: map[string]string{testdocker.LabelTest: "true"}, Output: &log}); err != nil {
		t.Fatalf("build the example's images: %v\n%s", err, log.String())
	}
}

// mastodonRender is what render says of kara, with each container's env as a map.
type mastodonRender struct {
	networks   map[string]any
	containers map[string]any
	env        map[string]map[string]string // by container name
}

func renderMastodon(t *testing.T, bee2d func(...string) (int, string, string), settings string, showSecrets bool) mastodonRender {
	t.Helper()
	args := []string{"render", "-c", settings, "--json"}
	if showSecrets {
		args = append(args, "--show-secrets")
	}
	code, out, errOut := bee2d(args...)
	if code != 0 || errOut != "" {
		t.Fatalf("%v = %d\nstderr:\n%s", args, code, errOut)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("render --json: %v\n%s", err, out)
	}
	if len(doc) != 1 {
		t.Errorf("render has servers %v, want kara alone", slices.Sorted(maps.Keys(doc)))
	}
	r := mastodonRender{env: map[string]map[string]string{}}
	r.networks, _ = at(doc, "kara", "networks").(map[string]any)
	r.containers, _ = at(doc, "kara", "containers").(map[string]any)
	for name, c := range r.containers {
		env := map[string]string{}
		for _, kv := range strs(at(c, "Env")) {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		r.env[name] = env
	}
	return r
}

func checkMastodonRender(t *testing.T, hidden, shown mastodonRender, dbPass, adminPass string) {
	t.Helper()
	names := slices.Sorted(maps.Keys(hidden.containers))
	want := []string{"social-app-awstats", "social-app-certbot", "social-app-elasticsearch", "social-app-haproxy",
		"social-app-mastodon-nginx", "social-app-mastodon-redis", "social-app-mastodon-sidekiq",
		"social-app-mastodon-streaming", "social-app-mastodon-web", "social-app-postgres", "social-app-scheduler",
		"social-job-dbsetup", "social-job-hasetup", "social-job-logrotate", "social-job-mastodon-dbmigrate"}
	if !slices.Equal(names, want) {
		t.Errorf("containers %v\nwant %v", names, want)
	}

	// The default network, with the subnet from the state file's prefix and the server's suffix_net.
	equalJSON(t, "social-network's IPv6", at(hidden.networks, "social-network", "EnableIPv6"), `true`)
	equalJSON(t, "social-network's IPAM", at(hidden.networks, "social-network", "IPAM", "Config"), `[{"Subnet":"`+mastodonSubnet+`"}]`)

	// The three containers of *mastodon_config (and the migration job) share one configuration and one
	// database password, hidden unless asked for.
	mastodon := []string{"social-app-mastodon-web", "social-app-mastodon-streaming", "social-app-mastodon-sidekiq", "social-job-mastodon-dbmigrate"}
	for _, n := range mastodon {
		if got := hidden.env[n]["DB_PASS"]; got != secretShown {
			t.Errorf("%s: DB_PASS %q without --show-secrets, want %q", n, got, secretShown)
		}
		if got := shown.env[n]["DB_PASS"]; got != dbPass {
			t.Errorf("%s: DB_PASS %q with --show-secrets, want the password of secrets/database/postgres/mastodon", n, got)
		}
		for k, v := range map[string]string{"REDIS_HOST": "social-app-mastodon-redis", "DB_HOST": "social-app-postgres",
			"ES_HOST": "social-app-elasticsearch", "DB_USER": "mastodon", "LOCAL_HTTPS": "true", "ES_ENABLED": "true"} {
			if got := hidden.env[n][k]; got != v {
				t.Errorf("%s: %s=%q, want %q", n, k, got, v)
			}
		}
		if len(hidden.env[n]) != 24 {
			t.Errorf("%s: %d env keys, want the 24 of mastodon_config", n, len(hidden.env[n]))
		}
	}
	for n, cmd := range map[string]string{
		"social-app-mastodon-web":       `["bundle","exec","rails","s","-p","3000"]`,
		"social-app-mastodon-streaming": `["yarn","start"]`,
		"social-app-mastodon-sidekiq":   `["bundle","exec","sidekiq","-q","default","-q","mailers","-q","pull","-q","push"]`,
		"social-job-mastodon-dbmigrate": `["bundle","exec","rake","db:migrate"]`,
	} {
		equalJSON(t, n+"'s Cmd", at(hidden.containers, n, "Cmd"), cmd)
	}

	// DBSetup gets the admin password and an entry per container listing postgres:mastodon, as Bee2 sent
	// them (duplicates kept): streaming, web, sidekiq, then the dbmigrate job.
	if got := hidden.env["social-job-dbsetup"]["DATABASE_JSON"]; got != secretShown {
		t.Errorf("dbsetup: DATABASE_JSON %q without --show-secrets", got)
	}
	var dbmap struct {
		Admin      map[string]string `json:"admin"`
		Containers []struct {
			Container, DB, Password string
		} `json:"containers"`
	}
	if err := json.Unmarshal([]byte(shown.env["social-job-dbsetup"]["DATABASE_JSON"]), &dbmap); err != nil {
		t.Errorf("dbsetup: DATABASE_JSON: %v", err)
	}
	if len(dbmap.Admin) != 1 || dbmap.Admin["postgres"] != adminPass {
		t.Errorf("DATABASE_JSON's admin: %v, want postgres with secrets/database/postgres/admin", slices.Sorted(maps.Keys(dbmap.Admin)))
	}
	if len(dbmap.Containers) != 4 {
		t.Errorf("DATABASE_JSON has %d containers, want 4", len(dbmap.Containers))
	}
	for i, c := range dbmap.Containers {
		if c.Container != "mastodon" || c.DB != "postgres" || c.Password != dbPass {
			t.Errorf("DATABASE_JSON's containers[%d]: %s/%s (password the mastodon one: %v)", i, c.Container, c.DB, c.Password == dbPass)
		}
	}
	if got := hidden.env["social-job-dbsetup"]["POSTGRES_HOST"]; got != "social-app-postgres" {
		t.Errorf("dbsetup: POSTGRES_HOST=%q", got)
	}
	if hidden.env["social-app-postgres"]["POSTGRES_PASSWORD"] != secretShown || shown.env["social-app-postgres"]["POSTGRES_PASSWORD"] != adminPass {
		t.Errorf("postgres: POSTGRES_PASSWORD is not the admin password, hidden")
	}

	// References and domains.
	for n, kv := range map[string][2]string{
		"social-app-scheduler":      {"RUN_LOGROTATE", "social-job-logrotate"},
		"social-app-certbot":        {"DOMAINS", "social-app-mastodon-nginx:hitchhiker.social"},
		"social-job-hasetup":        {"DOMAINS", "social-app-mastodon-nginx:hitchhiker.social"},
		"social-app-mastodon-nginx": {"MASTODON_WEB_CONTAINER", "social-app-mastodon-web"},
		"social-job-logrotate":      {"NGINX_CONTAINER", "social-app-mastodon-nginx"},
	} {
		if got := hidden.env[n][kv[0]]; got != kv[1] {
			t.Errorf("%s: %s=%q, want %q", n, kv[0], got, kv[1])
		}
	}

	// haproxy: ipv6_web gives it the state file's prefix plus static_web, and it publishes 80 and 443.
	v6, _ := at(hidden.containers, "social-app-haproxy", "NetworkingConfig", "EndpointsConfig", "social-network", "IPAMConfig", "IPv6Address").(string)
	prefix, err := netip.ParsePrefix(mastodonSubnet)
	if addr, aerr := netip.ParseAddr(v6); err != nil || aerr != nil || addr.String() != mastodonStaticV6 || !prefix.Contains(addr) {
		t.Errorf("haproxy's IPv6 address %q, want %s in %s", v6, mastodonStaticV6, mastodonSubnet)
	}
	equalJSON(t, "haproxy's ports", at(hidden.containers, "social-app-haproxy", "HostConfig", "PortBindings"),
		`{"80/tcp":[{"HostPort":"80"}],"443/tcp":[{"HostPort":"443"}]}`)
}

// mustInspect is the container's inspect on the engine at host, or the end of the test.
func mustInspect(t *testing.T, host, name string) testdocker.Inspected {
	t.Helper()
	c, err := testdocker.Inspect(host, name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
