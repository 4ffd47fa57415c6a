package config

import (
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// loadLater copies testdata/later to a fresh directory (its secrets directory is written to) and loads it.
func loadLater(t *testing.T) *Settings {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"settings.yml", "state.yml"} {
		data, err := os.ReadFile(filepath.Join("testdata", "later", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Load(filepath.Join(dir, "settings.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func envMap(env []string) map[string]string {
	out := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

func TestLaterLayoutServerSection(t *testing.T) {
	s := loadLater(t)
	srv := s.Server("web1")
	if srv == nil || srv.Section == nil || srv.Implicit {
		t.Fatalf("web1: %+v", srv)
	}
	if got := s.Prefix("web1"); got != "w1" {
		t.Errorf("prefix %q, want w1", got)
	}
	if srv.StateIPv6Subnet != "a:b:c:d::" || srv.IPv6Docker.SuffixNet != "2:0:0/96" || srv.IPv6Docker.StaticWeb != "2:0:a" {
		t.Errorf("ipv6: state %q, docker %+v", srv.StateIPv6Subnet, srv.IPv6Docker)
	}
	if srv.IP["public"] != (HostIP{IPv4: "100.100.100.1", IPv6: "a:b:c:d::102"}) || srv.IP["private"].IPv4 != "10.10.6.10" {
		t.Errorf("ip: %+v", srv.IP)
	}
	nets := s.Networks("web1")
	if len(nets) != 2 || nets[0].Name != "public" || nets[1].Name != "private" {
		t.Fatalf("networks: %+v", nets)
	}
	pub := nets[0]
	if pub.IPv4 != "172.20.0.0/24" || pub.IPv6 != "fd00:20::/64" || !pub.EnableIPv6 || pub.Masquerade == nil || *pub.Masquerade ||
		pub.Bridge != "br-public" || pub.HostIPv4 != "100.100.100.1" || pub.HostIPv6 != "a:b:c:d::102" {
		t.Errorf("public network: %+v", pub)
	}
	if nets[1].EnableIPv6 || nets[1].Masquerade != nil || nets[1].HostIPv4 != "10.10.6.10" {
		t.Errorf("private network: %+v", nets[1])
	}
	// Apps and jobs in file order, each on web1; the anchor holder is no application.
	var apps, jobs []string
	for _, a := range s.Applications {
		apps = append(apps, a.Server+"/"+a.Name)
	}
	for _, j := range s.Jobs {
		jobs = append(jobs, j.Server+"/"+j.Name)
	}
	if !slices.Equal(apps, []string{"web1/postgres", "web1/ttrss", "web1/web", "web1/sidekiq"}) || !slices.Equal(jobs, []string{"web1/dbsetup", "web1/updater"}) {
		t.Errorf("apps %v, jobs %v", apps, jobs)
	}
}

func TestLaterLayoutContainerKeys(t *testing.T) {
	s := loadLater(t)
	ttrss := s.App("web1", "ttrss")
	if !slices.Equal(ttrss.Networks, []string{"public", "private"}) || !slices.Equal(ttrss.ExtraHosts, []string{"db.internal:172.21.0.5"}) {
		t.Errorf("ttrss networks %v, extra hosts %v", ttrss.Networks, ttrss.ExtraHosts)
	}
	// 80: Bee2's form, bound to the first network's host IPv6 address as well; the others as written.
	wantPorts := []Port{
		{ContainerPort: 80, HostPort: 80, Proto: "tcp", HostIPs: []string{"", "a:b:c:d::102"}},
		{ContainerPort: 443, HostPort: 8443, Proto: "tcp", HostIPs: []string{"127.0.0.1"}},
		{ContainerPort: 1194, HostPort: 1194, Proto: "udp", HostIPs: []string{"", "a:b:c:d::102"}},
	}
	if !slices.EqualFunc(ttrss.Ports, wantPorts, func(a, b Port) bool {
		return a.ContainerPort == b.ContainerPort && a.HostPort == b.HostPort && a.Proto == b.Proto && slices.Equal(a.HostIPs, b.HostIPs)
	}) {
		t.Errorf("ports %+v", ttrss.Ports)
	}
	wantLabels := map[string]string{
		"lb.net":                                 "public",
		"traefik.http.routers.w1-app-ttrss.rule": "Host(`rss.example.com`)",
		"traefik.http.services.w1-app-ttrss.loadbalancer.server.port": "8080",
		"traefik.http.routers.w1-app-ttrss.entrypoints":               "websecure",
		"traefik.http.routers.w1-app-ttrss.tls.certresolver":          "lec",
	}
	if !maps.Equal(ttrss.Labels, wantLabels) {
		t.Errorf("labels %v", ttrss.Labels)
	}
	if pg := s.App("web1", "postgres"); pg.StaticIPv4 != "172.21.0.5" {
		t.Errorf("postgres static ip %q", pg.StaticIPv4)
	}

	web := s.App("web1", "web")
	if web.Image != "mastodon:v4" || !slices.Equal(web.DB, []DBRef{{Type: "postgres", Name: "mastodon"}}) {
		t.Errorf("merged anchor: image %q, db %v", web.Image, web.DB)
	}
	if !slices.Equal(web.Cmd, []string{"bundle", "exec", "puma -C config/puma.rb"}) || !slices.Equal(web.Entrypoint, []string{"/docker-entrypoint.sh"}) {
		t.Errorf("cmd %q, entrypoint %q", web.Cmd, web.Entrypoint)
	}
	if web.User != "991:991" || web.WorkingDir != "/opt/mastodon" || web.Hostname != "mastodon.example.com" {
		t.Errorf("user %q, working_dir %q, hostname %q", web.User, web.WorkingDir, web.Hostname)
	}
	if web.Memory != 512<<20 || web.NanoCPUs != 1_500_000_000 || web.PidsLimit != 200 || web.Restart != "on-failure:3" ||
		web.StopSignal != "SIGQUIT" || web.StopGrace != 30*time.Second || !web.ReadOnly {
		t.Errorf("limits: memory %d, cpus %d, pids %d, restart %q, signal %q, grace %v, read-only %v",
			web.Memory, web.NanoCPUs, web.PidsLimit, web.Restart, web.StopSignal, web.StopGrace, web.ReadOnly)
	}
	if web.Tmpfs["/tmp"] != "size=64m" || web.Sysctls["net.core.somaxconn"] != "1024" ||
		!slices.Equal(web.Ulimits, []Ulimit{{"nofile", 1024, 4096}, {"nproc", 512, 512}}) ||
		!slices.Equal(web.Devices, []string{"/dev/fuse"}) || web.Log == nil || web.Log.Driver != "json-file" ||
		web.Log.Options["max-size"] != "10m" || !slices.Equal(web.CapAdd, []string{"NET_ADMIN"}) {
		t.Errorf("runtime options: %+v", web)
	}
	// ipv6_web: the state file's subnet plus static_web.
	if web.StaticIPv6 != "a:b:c:d::2:0:a" {
		t.Errorf("ipv6_web address %q", web.StaticIPv6)
	}
	if cmd := s.JobOn("web1", "updater").Cmd; !slices.Equal(cmd, []string{"php", "./update.php", "--daemon"}) {
		t.Errorf("updater cmd %q", cmd)
	}
}

func TestLaterLayoutDatabaseValues(t *testing.T) {
	s := loadLater(t)
	ttrss := envMap(RenderEnv(s, s.App("web1", "ttrss")))
	updater := envMap(RenderEnv(s, s.JobOn("web1", "updater")))
	web := envMap(RenderEnv(s, s.App("web1", "web")))
	sidekiq := envMap(RenderEnv(s, s.App("web1", "sidekiq")))
	pg := envMap(RenderEnv(s, s.App("web1", "postgres")))
	dbsetup := envMap(RenderEnv(s, s.JobOn("web1", "dbsetup")))

	for name, pw := range map[string]string{"ttrss": ttrss["DB_PASS"], "web": web["DB_PASS"], "admin": pg["POSTGRES_PASSWORD"]} {
		if len(pw) != 32 || strings.Trim(pw, "0123456789abcdef") != "" {
			t.Errorf("%s password %q: want 32 hex characters", name, pw)
		}
	}
	// A TT-RSS-style shared password: the application and its updater agree, and so do the two Mastodon
	// containers sharing postgres:mastodon; different databases differ.
	if ttrss["DB_PASS"] != updater["DB_PASS"] || web["DB_PASS"] != sidekiq["DB_PASS"] || ttrss["DB_PASS"] == web["DB_PASS"] {
		t.Errorf("passwords: ttrss %s updater %s web %s sidekiq %s", ttrss["DB_PASS"], updater["DB_PASS"], web["DB_PASS"], sidekiq["DB_PASS"])
	}
	if ttrss["RUN_UPDATER"] != "w1-job-updater" || dbsetup["POSTGRES_HOST"] != "w1-app-postgres" {
		t.Errorf("references: +updater %q, $postgres %q", ttrss["RUN_UPDATER"], dbsetup["POSTGRES_HOST"])
	}
	if ttrss["TEST"] != "off" {
		t.Errorf("test: off passed as %q, want it as written", ttrss["TEST"])
	}
	// _dbmap: Bee2's JSON, in its key order, with every entry of the mapping (applications, then jobs).
	raw := dbsetup["DATABASE_JSON"]
	if !strings.HasPrefix(raw, `{"admin":{"postgres":"`) {
		t.Errorf("dbmap starts %.40q", raw)
	}
	var m struct {
		Admin      map[string]string
		Containers []struct{ Container, DB, Password string }
	}
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	if m.Admin["postgres"] != pg["POSTGRES_PASSWORD"] || len(m.Containers) != 3 {
		t.Fatalf("dbmap %+v", m)
	}
	for i, want := range []struct{ name, pw string }{{"ttrss", ttrss["DB_PASS"]}, {"mastodon", web["DB_PASS"]}, {"mastodon", web["DB_PASS"]}} {
		c := m.Containers[i]
		if c.Container != want.name || c.DB != "postgres" || c.Password != want.pw {
			t.Errorf("dbmap containers[%d] = %+v, want %s", i, c, want.name)
		}
	}
	// Passwords are kept: a second load reads the same ones, and they are secrets.
	if again := envMap(RenderEnv(s, s.App("web1", "ttrss"))); again["DB_PASS"] != ttrss["DB_PASS"] {
		t.Errorf("password changed between renders")
	}
	if sk := SecretKeys(s.App("web1", "ttrss")); !sk["DB_PASS"] || sk["RUN_UPDATER"] {
		t.Errorf("secret keys %v", sk)
	}
	fi, err := os.Stat(filepath.Join(s.Docker.SecretsDir, "database", "postgres", "ttrss"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("password file: %v %v", fi, err)
	}
	// The YAML 1.1 boolean is warned about, where it is.
	var warned bool
	for _, w := range s.Warnings {
		warned = warned || strings.Contains(w.Msg, `Bee2 (YAML 1.1) sent false`)
	}
	if !warned {
		t.Errorf("no warning for test: off in %v", s.Warnings)
	}
}

func TestImplicitServerIsWarned(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "settings.yml")
	data := "servers:\n  kara: {}\ndocker:\n  karra:\n    applications:\n      web: {image: web:1}\n"
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	srv := s.Server("karra")
	if srv == nil || !srv.Implicit || srv.Docker != nil || s.App("karra", "web") == nil {
		t.Fatalf("karra: %+v", srv)
	}
	if len(s.Warnings) != 1 {
		t.Fatalf("warnings %v, want one", s.Warnings)
	}
	w := s.Warnings[0].String()
	want := file + `:4:3: docker.karra: no servers.karra entry: reached like a server without a docker key (DOCKER_HOST, else the local socket) (did you mean "kara"?)`
	if w != want {
		t.Errorf("warning\n %s\nwant\n %s", w, want)
	}
}
