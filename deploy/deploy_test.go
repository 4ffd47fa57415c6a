// Package deploy holds what runs bee2d on an admin box: the systemd unit, an example settings file,
// Prometheus alerts and a Grafana dashboard. Its tests check them against the code they describe.
package deploy

import (
	"github.com/bee2d/bee2d/internal/testdocker"

	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// defaultGrace is `bee2d daemon --grace`'s default: how long the actions in flight may take after SIGTERM.
const defaultGrace = 30 * time.Second

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// promtool finds promtool (Debian package prometheus). CI installs it, so there a missing one fails.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		testdocker.Need(t, "promtool not found (apt-get install prometheus)")
	}
	return p
}

func run(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
}

// unit is a systemd unit file: section, then key, then the values in file order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, data []byte) unit {
	t.Helper()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		case strings.HasSuffix(line, `\`):
			t.Fatalf("bee2d.service:%d: continuation lines are not expected", n)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("bee2d.service:%d: not key=value in a section: %q", n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// get returns a key's last value, the one systemd uses for single-valued keys.
func (u unit) get(section, key string) string {
	vs := u[section][key]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

// writable lists the directories the unit lets bee2d write under ProtectSystem=strict.
func (u unit) writable() []string {
	var dirs []string
	for _, d := range u["Service"]["StateDirectory"] {
		for _, f := range strings.Fields(d) {
			dirs = append(dirs, filepath.Join("/var/lib", f))
		}
	}
	for _, d := range u["Service"]["ReadWritePaths"] {
		for _, f := range strings.Fields(d) {
			dirs = append(dirs, strings.TrimLeft(f, "-+"))
		}
	}
	return dirs
}

func TestUnit(t *testing.T) {
	u := parseUnit(t, readFile(t, "bee2d.service"))
	for _, c := range []struct{ key, want string }{
		// bee2d sends READY=1 after the first pass and STOPPING=1 on SIGTERM, from the main process.
		{"Type", "notify"},
		{"NotifyAccess", "main"},
		{"ExecStart", "/usr/local/bin/bee2d daemon -c /etc/bee2d/settings.yml"},
		{"ExecReload", "/bin/kill -HUP $MAINPID"},
		{"Restart", "on-failure"},
		{"ProtectSystem", "strict"},
		{"NoNewPrivileges", "yes"},
		{"CapabilityBoundingSet", ""},
		{"ConfigurationDirectory", "bee2d"},
		{"StateDirectory", "bee2d"},
	} {
		if _, ok := u["Service"][c.key]; !ok {
			t.Errorf("[Service] %s is missing; want %q", c.key, c.want)
		} else if got := u.get("Service", c.key); got != c.want {
			t.Errorf("[Service] %s=%s; want %q", c.key, got, c.want)
		}
	}
	// The settings file lives in the configuration directory, which the unit names for systemd.
	settings := strings.Fields(u.get("Service", "ExecStart"))[3]
	if dir := filepath.Join("/etc", u.get("Service", "ConfigurationDirectory")); filepath.Dir(settings) != dir {
		t.Errorf("ExecStart reads %s, outside ConfigurationDirectory %s", settings, dir)
	}
	stop, err := time.ParseDuration(u.get("Service", "TimeoutStopSec"))
	if err != nil {
		t.Fatalf("TimeoutStopSec: %v", err)
	}
	if stop <= defaultGrace {
		t.Errorf("TimeoutStopSec=%v: systemd would kill bee2d before its %v grace for actions in flight ends", stop, defaultGrace)
	}
	// The Docker socket needs AF_UNIX; remote engines and the metrics listener need AF_INET and AF_INET6.
	families := strings.Fields(u.get("Service", "RestrictAddressFamilies"))
	for _, f := range []string{"AF_UNIX", "AF_INET", "AF_INET6"} {
		if !slices.Contains(families, f) {
			t.Errorf("RestrictAddressFamilies lacks %s", f)
		}
	}
	if u.get("Install", "WantedBy") != "multi-user.target" {
		t.Errorf("[Install] WantedBy=%s; want multi-user.target", u.get("Install", "WantedBy"))
	}
}

// TestUnitVerifies runs systemd-analyze verify where systemd is installed, with ExecStart pointing at an
// executable that exists here: verify rejects a unit whose binary is missing.
func TestUnitVerifies(t *testing.T) {
	verifyUnit(t, nil)
}

// TestGitOpsDropIn checks the git drop-in: it replaces ExecStart with `bee2d daemon --git`, keeps the state
// in the unit's StateDirectory, and systemd-analyze verifies the unit with it.
func TestGitOpsDropIn(t *testing.T) {
	d := parseUnit(t, readFile(t, "gitops.conf"))
	starts := d["Service"]["ExecStart"]
	if len(starts) != 2 || starts[0] != "" {
		t.Fatalf("ExecStart %q: want an empty one that resets the unit's, then bee2d daemon --git", starts)
	}
	args := strings.Fields(starts[1])
	if len(args) < 4 || args[1] != "daemon" || args[2] != "--git" || slices.Contains(args, "-c") {
		t.Errorf("ExecStart %q: want bee2d daemon --git URL, without -c", starts[1])
	}
	state := parseUnit(t, readFile(t, "bee2d.service")).get("Service", "StateDirectory")
	if i := slices.Index(args, "--state-dir"); i < 0 || args[i+1] != "/var/lib/"+state {
		t.Errorf("ExecStart %q: --state-dir is not /var/lib/%s, the unit's StateDirectory", starts[1], state)
	}
	verifyUnit(t, map[string][]byte{"gitops.conf": readFile(t, "gitops.conf")})
}

// verifyUnit runs systemd-analyze verify on bee2d.service with the drop-ins given (file name to content),
// bee2d's path in them replaced by this test's executable, which exists. It fails the test on any complaint
// about the unit or a drop-in.
func verifyUnit(t *testing.T, dropIns map[string][]byte) {
	t.Helper()
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		testdocker.Need(t, "systemd-analyze not found (apt-get install systemd)")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := map[string][]byte{"bee2d.service": readFile(t, "bee2d.service")}
	for name, data := range dropIns {
		files[filepath.Join("bee2d.service.d", name)] = data
	}
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, bytes.ReplaceAll(data, []byte("/usr/local/bin/bee2d "), []byte(exe+" ")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", filepath.Join(dir, "bee2d.service"))
	cmd.Env = append(os.Environ(), "SYSTEMD_UNIT_PATH="+dir+":") // the trailing colon keeps the system's paths
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Warnings about other units of this machine are not ours; those about bee2d.service and its drop-ins are.
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "bee2d.service") {
			t.Errorf("systemd-analyze verify: %s", line)
		}
	}
}

// loadExample loads settings.example.yml as if it were /etc/bee2d/settings.yml, with an empty folder for
// each build_dir in dockerfiles/ beside it, where the real Dockerfiles go.
func loadExample(t *testing.T) *config.Settings {
	t.Helper()
	data := readFile(t, "settings.example.yml")
	var sections struct {
		Applications, Jobs map[string]struct {
			BuildDir string `yaml:"build_dir"`
		}
	}
	if err := yaml.Unmarshal(data, &sections); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, svcs := range []map[string]struct {
		BuildDir string `yaml:"build_dir"`
	}{sections.Applications, sections.Jobs} {
		for _, svc := range svcs {
			if svc.BuildDir == "" {
				continue
			}
			if err := os.MkdirAll(filepath.Join(dir, "dockerfiles", svc.BuildDir), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	path := filepath.Join(dir, "settings.yml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := config.Load(path)
	if err != nil {
		t.Fatalf("settings.example.yml does not validate:\n%v", err)
	}
	return s
}

func TestSettingsExample(t *testing.T) {
	s := loadExample(t)
	if len(s.Applications) != 3 || s.Docker.Prefix != "bee2" {
		t.Errorf("got %d applications with prefix %q; want certbot, nginx-static and haproxy with bee2", len(s.Applications), s.Docker.Prefix)
	}

	// web1 is reached as Bee2 did: TLS to its first private name on 2376, files in conf/docker/web1/.
	ep, err := reconcile.EndpointFor(s, "web1")
	if err != nil {
		t.Fatal(err)
	}
	if want := "tcp://web1.vpn.example.net:2376"; ep.Host != want {
		t.Errorf("web1 host %s; want %s", ep.Host, want)
	}
	certs := filepath.Join(s.Dir, "conf", "docker", "web1")
	if ep.TLS == nil || ep.TLS.CA != filepath.Join(certs, "ca.pem") || ep.TLS.Cert != filepath.Join(certs, "docker-client.crt") ||
		ep.TLS.Key != filepath.Join(certs, "docker-client.pem") {
		t.Errorf("web1 TLS files %+v; want ca.pem, docker-client.crt and docker-client.pem in %s", ep.TLS, certs)
	}

	// The values the comments promise.
	env := func(app string) []string { return config.RenderEnv(s, s.Application(app)) }
	for _, c := range []struct{ app, want string }{
		{"haproxy", "DOMAINS=bee2-app-nginx-static:dyject.com"},
		{"certbot", "DOMAINS=bee2-app-nginx-static:dyject.com"},
		{"certbot", "HAPROXY_CONTAINER=bee2-app-haproxy"},
		{"nginx-static", "DOMAINS=dyject.com"},
	} {
		if got := env(c.app); !slices.Contains(got, c.want) {
			t.Errorf("%s env %q lacks %s", c.app, got, c.want)
		}
	}

	// Unlike Bee2's example, no container gets the Docker socket.
	for _, svc := range append(slices.Clone(s.Applications), s.Jobs...) {
		for _, v := range svc.Volumes {
			if strings.HasSuffix(strings.SplitN(v, ":", 2)[0], "docker.sock") {
				t.Errorf("%s mounts the Docker socket: %s", svc.Name, v)
			}
		}
	}
}

// TestBackupDirsWritable checks that the unit lets bee2d write where the example stores backups.
func TestBackupDirsWritable(t *testing.T) {
	s := loadExample(t)
	writable := parseUnit(t, readFile(t, "bee2d.service")).writable()
	if len(s.Docker.Backup) == 0 {
		t.Fatal("the example configures no backup")
	}
	for server, b := range s.Docker.Backup {
		dir := s.ResolvePath(b.StorageDir)
		ok := slices.ContainsFunc(writable, func(w string) bool {
			rel, err := filepath.Rel(w, dir)
			return err == nil && filepath.IsLocal(rel)
		})
		if !ok {
			t.Errorf("backup of %s goes to %s, which the unit keeps read-only (writable: %v)", server, dir, writable)
		}
	}
}

// family is what the tests need of a metric family bee2d registers.
type family struct {
	labels []string
}

// registered returns the metric families of metrics.New(), by every series name they expose (histograms
// as name_bucket, name_sum and name_count too), with every series of one server created.
func registered(t *testing.T) map[string]family {
	t.Helper()
	m := metrics.New()
	ops := make([]string, len(reconcile.Ops))
	for i, o := range reconcile.Ops {
		ops[i] = o.Metric()
	}
	now := time.Now()
	m.InitServer("web1", ops)
	m.SetResources("web1", []metrics.Resource{{Kind: metrics.KindContainer, Name: "bee2-app-haproxy", InSync: true, Health: "healthy"}})
	m.InitHealthRestarts("web1", "bee2-app-haproxy")
	m.ConfigReload(true, now)
	m.ServerUp("web1", true)
	m.Pass("web1", time.Second, nil, now)
	m.Action("web1", ops[0], true)
	m.InitReload("web1", "haproxy")
	m.SetCertificates("web1", map[string]time.Time{"dyject.com": now})
	m.InitJob("web1", "dyject")
	m.JobRun("web1", "dyject", 0, time.Second, now)
	m.JobSchedule("web1", "dyject", time.Hour)
	m.InitBackup("web1", now, 1)
	m.BackupRun("web1", 1, time.Second, nil, now)
	m.InitTask("web1", "converge")
	m.FollowGit([]string{"accepted", "unauthorized"})
	m.GitFetch(true, now)
	m.GitFetch(false, now)
	m.GitHead("3f2a9c1", true, true)
	m.GitHeld(false)
	m.SettingsCommit("3f2a9c1")
	m.Webhook("accepted")
	m.ServerConverged("web1", "3f2a9c1", now)
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]family{}
	for _, mf := range mfs {
		var f family
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if !slices.Contains(f.labels, l.GetName()) {
					f.labels = append(f.labels, l.GetName())
				}
			}
		}
		name := mf.GetName()
		out[name] = f
		switch mf.GetType().String() {
		case "HISTOGRAM":
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = f, f, f
		case "SUMMARY":
			out[name+"_sum"], out[name+"_count"] = f, f
		}
	}
	return out
}

var identifier = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// metricNames returns the names in a PromQL expression that belong to bee2d's registry: its own and the Go
// and process collectors'.
func metricNames(expr string) []string {
	var names []string
	for _, id := range identifier.FindAllString(expr, -1) {
		if strings.HasPrefix(id, "bee2_") || strings.HasPrefix(id, "process_") || strings.HasPrefix(id, "go_") {
			names = append(names, id)
		}
	}
	return names
}

type rulesFile struct {
	Groups []struct {
		Name  string
		Rules []struct {
			Alert       string
			Expr        string
			For         string
			Labels      map[string]string
			Annotations map[string]string
		}
	}
}

func loadAlerts(t *testing.T) rulesFile {
	t.Helper()
	var rf rulesFile
	if err := yaml.Unmarshal(readFile(t, "prometheus/alerts.yml"), &rf); err != nil {
		t.Fatal(err)
	}
	return rf
}

func TestAlertRules(t *testing.T) {
	rf := loadAlerts(t)
	alerts := map[string]bool{}
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			alerts[r.Alert] = true
			if r.Labels["severity"] == "" {
				t.Errorf("%s: no severity label", r.Alert)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", r.Alert)
			}
		}
	}
	for _, name := range []string{"Bee2ResourceOutOfSync", "Bee2ServerDown", "Bee2ConfigReloadFailed",
		"Bee2ReconcileErrors", "Bee2ReconcileStale", "Bee2CertificateExpiringSoon", "Bee2ReloadFailed",
		"Bee2DeployRolledBack", "Bee2ContainerUnhealthy", "Bee2GitCommitRejected", "Bee2GitHeadHeld",
		"Bee2GitFetchFailing", "Bee2ServerBehindCommit"} {
		if !alerts[name] {
			t.Errorf("alerts.yml has no alert %s", name)
		}
	}

	// Every alert has a unit test in which it fires.
	var tests struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(readFile(t, "prometheus/alerts_test.yml"), &tests); err != nil {
		t.Fatal(err)
	}
	fired := map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fired[a.Alertname] = true
			}
		}
	}
	for name := range alerts {
		if !fired[name] {
			t.Errorf("alerts_test.yml never shows %s firing", name)
		}
	}

	pt := promtool(t)
	run(t, "prometheus", pt, "check", "rules", "alerts.yml")
	run(t, "prometheus", pt, "test", "rules", "alerts_test.yml")
}

// dashboard is the part of a Grafana dashboard the tests read.
type dashboard struct {
	SchemaVersion int    `json:"schemaVersion"`
	UID           string `json:"uid"`
	Title         string `json:"title"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Definition string          `json:"definition"`
			Datasource *datasource     `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	Targets    []struct {
		RefID      string      `json:"refId"`
		Expr       string      `json:"expr"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // in a collapsed row
}

func loadDashboard(t *testing.T) (dashboard, []panel) {
	t.Helper()
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(readFile(t, "grafana/bee2d.json")))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("grafana/bee2d.json: %v", err)
	}
	if dec.More() {
		t.Fatal("grafana/bee2d.json: data after the dashboard")
	}
	var flat []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			flat = append(flat, p)
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return d, flat
}

const serverVariable = "label_values(bee2_server_up, server)"

func TestDashboard(t *testing.T) {
	d, panels := loadDashboard(t)
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		t.Errorf("schemaVersion %d, uid %q, title %q: want a schema of Grafana 9 or later, a uid and a title", d.SchemaVersion, d.UID, d.Title)
	}
	vars := map[string]string{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v.Type
		switch v.Name {
		case "datasource":
			if v.Type != "datasource" || string(v.Query) != `"prometheus"` {
				t.Errorf("variable datasource: type %s, query %s; want a Prometheus data source variable", v.Type, v.Query)
			}
		case "server":
			if v.Type != "query" || v.Definition != serverVariable || !bytes.Contains(v.Query, []byte(serverVariable)) {
				t.Errorf("variable server: type %s, query %s; want %s", v.Type, v.Query, serverVariable)
			}
			if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
				t.Errorf("variable server queries %+v; want ${datasource}", v.Datasource)
			}
		}
	}
	if vars["datasource"] == "" || vars["server"] == "" {
		t.Errorf("variables %v; want datasource and server", vars)
	}

	families := registered(t)
	ids := map[int]string{}
	for _, p := range panels {
		if p.Type == "row" {
			continue
		}
		if other, dup := ids[p.ID]; dup {
			t.Errorf("panels %q and %q share id %d", other, p.Title, p.ID)
		}
		ids[p.ID] = p.Title
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: datasource %+v; want ${datasource}, so that an import asks for none", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q query %s: datasource %+v; want ${datasource}", p.Title, tg.RefID, tg.Datasource)
			}
			if tg.Expr == "" {
				t.Errorf("panel %q query %s is empty", p.Title, tg.RefID)
			}
			// The server variable filters every per-server series.
			for _, name := range metricNames(tg.Expr) {
				if slices.Contains(families[name].labels, "server") && !strings.Contains(tg.Expr, `server=~"$server"`) {
					t.Errorf("panel %q: %s is not filtered by $server: %s", p.Title, name, tg.Expr)
				}
			}
		}
	}
}

// TestMetricNames checks that every metric the dashboard and the alerts query is one bee2d exports.
func TestMetricNames(t *testing.T) {
	families := registered(t)
	check := func(where, expr string) {
		names := metricNames(expr)
		for _, name := range names {
			if _, ok := families[name]; !ok {
				t.Errorf("%s: bee2d exports no metric %s (expr %s)", where, name, expr)
			}
		}
	}
	_, panels := loadDashboard(t)
	used := 0
	for _, p := range panels {
		for _, tg := range p.Targets {
			check("grafana/bee2d.json panel "+strconv.Quote(p.Title), tg.Expr)
			used += len(metricNames(tg.Expr))
		}
	}
	check("grafana/bee2d.json variable server", serverVariable)
	for _, g := range loadAlerts(t).Groups {
		for _, r := range g.Rules {
			check("prometheus/alerts.yml "+r.Alert, r.Expr)
			used += len(metricNames(r.Expr))
		}
	}
	if used == 0 {
		t.Fatal("found no metric names: the extraction is broken")
	}
}

var grafanaVar = regexp.MustCompile(`\$\{?(\w+)\}?`)

// TestDashboardQueriesParse has promtool parse every dashboard query, as a recording rule, with Grafana's
// variables replaced by what they stand for.
func TestDashboardQueriesParse(t *testing.T) {
	pt := promtool(t)
	_, panels := loadDashboard(t)
	type rule struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var rules []rule
	for _, p := range panels {
		for _, tg := range p.Targets {
			var unknown []string
			expr := grafanaVar.ReplaceAllStringFunc(tg.Expr, func(v string) string {
				switch name := grafanaVar.FindStringSubmatch(v)[1]; name {
				case "__rate_interval", "__interval":
					return "5m"
				case "__range":
					return "6h"
				case "server":
					return ".*"
				default:
					unknown = append(unknown, v)
					return v
				}
			})
			if len(unknown) > 0 {
				t.Errorf("panel %q: unknown variables %v in %s", p.Title, unknown, tg.Expr)
			}
			rules = append(rules, rule{Record: "dashboard:panel" + strconv.Itoa(p.ID) + ":" + tg.RefID, Expr: expr})
		}
	}
	data, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": rules}}})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yml"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, pt, "check", "rules", "dashboard.yml")
}
