package config

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// golden compares got with the file at path, or rewrites the file with -update.
func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -update rewrites it)\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// parse reads inline settings as if they were a file in testdata, beside testdata/dockerfiles.
func parse(t *testing.T, text string) (*Settings, error) {
	t.Helper()
	return Parse(filepath.Join("testdata", "inline.yml"), []byte(text))
}

func mustParse(t *testing.T, text string) *Settings {
	t.Helper()
	s, err := parse(t, text)
	if err != nil {
		t.Fatalf("parse:\n%v", err)
	}
	return s
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: "settings.yml", Line: 14, Col: 7, Path: "applications.haproxy.link[1]",
		Msg: `no application "certbt" (did you mean "certbot"?)`}
	want := `settings.yml:14:7: applications.haproxy.link[1]: no application "certbt" (did you mean "certbot"?)`
	if got := e.Error(); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	list := ErrorList{e, {File: "settings.yml", Line: 1, Col: 1, Msg: "empty settings file"}}
	if got, want := list.Error(), e.Error()+"\nsettings.yml:1:1: empty settings file"; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var one *Error
	if !errors.As(error(list), &one) || one != e {
		t.Errorf("errors.As does not find the first *Error")
	}
}

// TestBadFiles loads every testdata/*.bad.yml and compares all its errors with the .err file beside it.
func TestBadFiles(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.bad.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no bad files: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".bad.yml"), func(t *testing.T) {
			s, err := Load(file)
			if err == nil {
				t.Fatalf("loaded without error")
			}
			if s != nil {
				t.Errorf("settings returned along with errors")
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is %T, not ErrorList: %v", err, err)
			}
			checkPlaces(t, list, file)
			golden(t, file+".err", err.Error()+"\n")
		})
	}
}

func TestManyErrorsAllReported(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "many.bad.yml"))
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("got %v", err)
	}
	if len(list) < 8 {
		t.Errorf("only %d errors reported:\n%v", len(list), err)
	}
	if !slices.IsSortedFunc(list, func(a, b *Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	}) {
		t.Errorf("errors not sorted by place:\n%v", err)
	}
}

// checkPlaces makes sure every error names its file and a real place.
func checkPlaces(t *testing.T, list ErrorList, file string) {
	t.Helper()
	if len(list) == 0 {
		t.Errorf("empty ErrorList")
	}
	for _, e := range list {
		if e.File != file || e.Line < 1 || e.Col < 1 || e.Msg == "" {
			t.Errorf("error without a place: %#v", e)
		}
	}
}

// renderAll writes the env of every service, the golden form of a good file.
func renderAll(s *Settings) string {
	var b strings.Builder
	for _, list := range [][]*Service{s.Applications, s.Jobs} {
		for _, svc := range list {
			fmt.Fprintf(&b, "%s on %s\n", ContainerName(s.Docker.Prefix, svc.Kind, svc.Name), svc.Server)
			for _, kv := range RenderEnv(s, svc) {
				fmt.Fprintf(&b, "\t%s\n", kv)
			}
		}
	}
	return b.String()
}

// TestGoodFiles loads the good files and compares the env of every service with testdata/<name>.env.
func TestGoodFiles(t *testing.T) {
	for _, name := range []string{"blogpost", "bee2", "multi"} {
		t.Run(name, func(t *testing.T) {
			s, err := Load(filepath.Join("testdata", name+".yml"))
			if err != nil {
				t.Fatalf("load:\n%v", err)
			}
			golden(t, filepath.Join("testdata", name+".env"), renderAll(s))
		})
	}
}

// TestBlogPost checks the values the blog post promises, independently of the golden file.
func TestBlogPost(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "blogpost.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := names(s.Applications); !slices.Equal(got, []string{"certbot", "nginx-static", "haproxy"}) {
		t.Errorf("applications not in file order: %v", got)
	}
	want := map[string][]string{
		"certbot": {
			"EMAIL=blackhole@example.com",
			"TEST=false",
			"DOMAINS=bee2-app-nginx-static:dyject.com",
			"PORT=8080",
			"HAPROXY_CONTAINER=bee2-app-haproxy",
		},
		"nginx-static": {"DOMAINS=dyject.com", "HTTP_PORT=8080"},
		"haproxy":      {"DOMAINS=bee2-app-nginx-static:dyject.com"},
	}
	for name, env := range want {
		if got := RenderEnv(s, s.Application(name)); !slices.Equal(got, env) {
			t.Errorf("%s: got %q, want %q", name, got, env)
		}
	}
	haproxy := s.Application("haproxy")
	if !slices.EqualFunc(haproxy.Ports, []int{80, 443}, func(p Port, n int) bool { return p.ContainerPort == n && p.HostPort == n && p.Proto == "tcp" && p.HostIPs == nil }) || !slices.Equal(haproxy.Link, []string{"nginx-static", "certbot"}) {
		t.Errorf("haproxy: ports %v, link %v", haproxy.Ports, haproxy.Link)
	}
	if got := EnvKeys(s.Application("certbot")); !slices.Equal(got, []string{"EMAIL", "TEST", "DOMAINS", "PORT", "HAPROXY_CONTAINER"}) {
		t.Errorf("EnvKeys: %v", got)
	}
	dyject := s.Job("dyject")
	if dyject == nil || dyject.Kind != KindJob || dyject.Git != "git@github.com:/sumdog/dyject_web.git" {
		t.Errorf("job dyject: %+v", dyject)
	}
	b := s.Docker.Backup["web1"]
	if b == nil || b.StorageDir != "/media/backups" || !slices.Equal(b.Volumes, []string{"letsencrypt", "logs-web"}) {
		t.Errorf("backup: %+v", b)
	}
	if want, _ := filepath.Abs(filepath.Join("testdata", "dockerfiles")); s.Docker.Dockerfiles != want {
		t.Errorf("dockerfiles %q, want %q", s.Docker.Dockerfiles, want)
	}
	if got, want := s.BuildContext(s.Application("certbot")), filepath.Join(s.Docker.Dockerfiles, "CertBot"); got != want {
		t.Errorf("build context %q, want %q", got, want)
	}
}

func names(list []*Service) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.Name)
	}
	return out
}

// TestBee2File loads a whole Bee2 settings file as is and keeps what bee2d does not use.
func TestBee2File(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "bee2.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"provisioner", "inventory", "openvpn", "security"} {
		if s.Extra[k] == nil {
			t.Errorf("section %s not kept", k)
		}
	}
	if got := s.Extra["security"].Content[1].Value; got != "ADB2A19F3F1A5D85" {
		t.Errorf("security.pgp_id = %q", got)
	}
	web1 := s.Server("web1")
	if web1 == nil {
		t.Fatal("no server web1")
	}
	for _, k := range []string{"plan", "os", "private_ip", "playbook"} {
		if web1.Extra[k] == nil {
			t.Errorf("server key %s not kept", k)
		}
	}
	if web1.Extra["private_ip"].Value != "192.168.150.10" || web1.Extra["playbook"].Value != "docker-web.yml" {
		t.Errorf("server extra: %v %v", web1.Extra["private_ip"].Value, web1.Extra["playbook"].Value)
	}
	if !slices.Equal(web1.DNS.Private, []string{"web1.example.net"}) || !slices.Equal(web1.DNS.Public, []string{"web1.example.com"}) {
		t.Errorf("dns: %+v", web1.DNS)
	}
	if web1.DNS.Extra["web"] == nil {
		t.Errorf("dns.web not kept")
	}
	if web1.Docker != nil {
		t.Errorf("connection without a docker key: %+v", web1.Docker)
	}
	if s.Docker.ReadTimeout != 1200*time.Second || s.Docker.Backup["web1"].Schedule != "@daily" {
		t.Errorf("docker: %+v", s.Docker)
	}
	if j := s.Job("dyject"); j.Branch != "master" {
		t.Errorf("branch %q", j.Branch)
	}
}

func TestDefaults(t *testing.T) {
	s := mustParse(t, "servers: {web1: }\ndocker: {backup: {web1: {volumes: [data]}}}\n")
	if s.Docker.Prefix != DefaultPrefix || s.Docker.ReadTimeout != DefaultReadTimeout {
		t.Errorf("docker: %+v", s.Docker)
	}
	if b := s.Docker.Backup["web1"]; b.StorageDir != DefaultStorageDir || b.Server != "web1" {
		t.Errorf("backup: %+v", b)
	}
	if s.File != filepath.Join("testdata", "inline.yml") {
		t.Errorf("file %q", s.File)
	}
	if want, _ := filepath.Abs("testdata"); s.Dir != want {
		t.Errorf("dir %q, want %q", s.Dir, want)
	}
	if got, want := s.ResolvePath("conf/ca.pem"), filepath.Join(s.Dir, "conf/ca.pem"); got != want {
		t.Errorf("ResolvePath: %q", got)
	}
	if got := s.ResolvePath("/etc/ca.pem"); got != "/etc/ca.pem" {
		t.Errorf("ResolvePath: %q", got)
	}
}

func TestConnection(t *testing.T) {
	s := mustParse(t, `
servers:
  tls:
    docker:
      host: tcp://web1.example.net:2376
      tls: {ca: conf/ca.pem, cert: conf/cert.pem, key: conf/key.pem}
  plain:
    docker: {host: "tcp://127.0.0.1:2375", insecure: true}
  ssh:
    docker: {host: "ssh://root@web3.example.net"}
  default:
    docker: {}
`)
	c := s.Server("tls").Docker
	if c.Host != "tcp://web1.example.net:2376" || *c.TLS != (TLSFiles{CA: "conf/ca.pem", Cert: "conf/cert.pem", Key: "conf/key.pem"}) {
		t.Errorf("tls: %+v %+v", c, c.TLS)
	}
	if c := s.Server("plain").Docker; !c.Insecure || c.TLS != nil {
		t.Errorf("plain: %+v", c)
	}
	if c := s.Server("default").Docker; c == nil || c.Host != "" {
		t.Errorf("default: %+v", c)
	}
	if got := names2(s.Servers); !slices.Equal(got, []string{"tls", "plain", "ssh", "default"}) {
		t.Errorf("servers not in file order: %v", got)
	}
}

func names2(list []*Server) []string {
	var out []string
	for _, s := range list {
		out = append(out, s.Name)
	}
	return out
}

// renderEnvCases are the settings TestRenderEnv renders, after renderEnvServers; FuzzParse and FuzzRenderEnv
// start from them.
const renderEnvServers = "servers: {web1: , web2: }\n"

var renderEnvCases = []struct {
	name     string
	settings string
	service  string // app:name or job:name
	want     []string
}{
	{
		name: "scalars as written",
		settings: `applications:
  a:
    server: web1
    image: a
    env: {test: false, port: 8080, hex: 0x1F, octal: 0o17, float: 1.50, exp: 1e3, inf: -.inf, str: "007", word: no, nothing: ~, empty: , "null": null}
`,
		service: "app:a",
		want: []string{"TEST=false", "PORT=8080", "HEX=0x1F", "OCTAL=0o17", "FLOAT=1.50", "EXP=1e3", "INF=-.inf",
			"STR=007", "WORD=no", "NOTHING=", "EMPTY=", "NULL="},
	},
	{
		name: "multi-line strings keep their value",
		settings: `applications:
  a:
    server: web1
    image: a
    env:
      folded: >
        one
        two
      literal: |
        line
`,
		service: "app:a",
		want:    []string{"FOLDED=one two\n", "LITERAL=line\n"},
	},
	{
		name: "dollar references and escapes",
		settings: `applications:
  haproxy: {server: web1, image: haproxy}
  a:
    server: web1
    image: a
    env: {target: $haproxy, quoted: "$haproxy", literal: $$HOME, two: $$$$, lone: $$, mid: a$b, tail: x$}
`,
		service: "app:a",
		want: []string{"TARGET=bee2-app-haproxy", "QUOTED=bee2-app-haproxy", "LITERAL=$HOME", "TWO=$$$", "LONE=$",
			"MID=a$b", "TAIL=x$"},
	},
	{
		name: "a reference inside a job names an application",
		settings: `docker: {prefix: w1}
applications:
  build: {server: web1, image: app}
jobs:
  build:
    server: web1
    image: job
    env: {peer: $build}
`,
		service: "job:build",
		want:    []string{"PEER=w1-app-build"},
	},
	{
		name: "lists and mappings as compact JSON in file order",
		settings: `applications:
  a:
    server: web1
    image: a
    env:
      list: [1, two, true, null, 0x10, 2.5, .nan, {b: 1, a: 2}]
      map: {z: [], a: {}, m: {k: "v w"}}
      html: ["<b>&</b>"]
      unicode: ["é\t\"q\""]
      nested: [[1, [2]]]
`,
		service: "app:a",
		want: []string{
			`LIST=[1,"two",true,null,16,2.5,".nan",{"b":1,"a":2}]`,
			`MAP={"z":[],"a":{},"m":{"k":"v w"}}`,
			`HTML=["<b>&</b>"]`,
			`UNICODE=["é\t\"q\""]`,
			`NESTED=[[1,[2]]]`,
		},
	},
	{
		name: "aliases and merges are expanded",
		settings: `applications:
  a:
    server: web1
    image: a
    env:
      base: &base {x: 1, y: 2}
      merged: {<<: *base, y: 3, z: 4}
      again: *base
`,
		service: "app:a",
		want:    []string{`BASE={"x":1,"y":2}`, `MERGED={"x":1,"y":3,"z":4}`, `AGAIN={"x":1,"y":2}`},
	},
	{
		name: "a domains list joined by spaces, ports passed through",
		settings: `applications:
  a:
    server: web1
    image: a
    env: {domains: [example.com, example.org/9000]}
`,
		service: "app:a",
		want:    []string{"DOMAINS=example.com example.org/9000"},
	},
	{
		name: "domains all takes applications of the same server only",
		settings: `applications:
  one: {server: web1, image: x, env: {domains: [a.com, b.com]}}
  other: {server: web2, image: x, env: {domains: [other.com]}}
  none: {server: web1, image: x, env: {domains: []}}
  two: {server: web1, image: x, env: {Domains: [c.com]}}
  proxy: {server: web1, image: x, env: {DOMAINS: all}}
jobs:
  two: {server: web1, image: x, env: {domains: [job.com]}}
`,
		service: "app:proxy",
		want:    []string{"DOMAINS=bee2-app-one:a.com,b.com bee2-app-two:c.com"},
	},
	{
		name: "domains all inside a job",
		settings: `applications:
  one: {server: web1, image: x, env: {domains: [a.com]}}
  other: {server: web2, image: x, env: {domains: [other.com]}}
jobs:
  stats: {server: web2, image: x, env: {domains: all}}
`,
		service: "job:stats",
		want:    []string{"DOMAINS=bee2-app-other:other.com"},
	},
	{
		name: "domains all with no domains on the server",
		settings: `applications:
  one: {server: web1, image: x, env: {domains: [a.com]}}
  proxy: {server: web2, image: x, env: {domains: all}}
`,
		service: "app:proxy",
		want:    []string{"DOMAINS="},
	},
	{
		name:     "no env",
		settings: "applications:\n  a: {server: web1, image: a}\n",
		service:  "app:a",
		want:     []string{},
	},
}

// TestRenderEnv shows how each kind of env value reaches the container.
func TestRenderEnv(t *testing.T) {
	for _, tt := range renderEnvCases {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, renderEnvServers+tt.settings)
			kind, name, _ := strings.Cut(tt.service, ":")
			svc := s.Application(name)
			if kind == "job" {
				svc = s.Job(name)
			}
			if got := RenderEnv(s, svc); !slices.Equal(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

// inlineErrorCases are error cases that read best next to their input.
var inlineErrorCases = []struct {
	name     string
	settings string
	want     string
}{
	{"null document", "~\n", "1:1: settings must be a mapping, got null"},
	{"scalar document", "hello\n", `1:1: settings must be a mapping, got a string`},
	{"sections may be null", "servers:\napplications:\njobs:\ndocker:\n", ""},
	{"unknown key suggestion only when close", "servers: {}\nxyz: 1\n", `2:1: xyz: unknown key "xyz"`},
	{"servers not a mapping", "servers: [web1]\n", "1:10: servers: expected a mapping, got a list"},
	{"insecure is a boolean", "servers: {w: {docker: {host: 'unix:///s', insecure: yes}}}\n",
		`1:53: servers.w.docker.insecure: expected a boolean (true or false), got a string`},
	{"huge integer", "docker: {read_timeout: 99999999999999999999}\n",
		"1:24: docker.read_timeout: expected an integer, got a number"},
	{"too long", "docker: {read_timeout: 9999999999999}\n", "1:24: docker.read_timeout: read_timeout 9999999999999 is too long"},
	{"null port", "servers: {w: }\napplications: {a: {server: w, image: a, ports: [~]}}\n",
		"2:49: applications.a.ports[0]: expected a port such as 80, \"1194/udp\" or \"127.0.0.1:5432:5432\", got null"},
	{"flow key not a scalar", "? [a]\n: b\n", "1:3: a key must be a scalar, got a list"},
}

// TestInlineErrors checks each of inlineErrorCases.
func TestInlineErrors(t *testing.T) {
	for _, tt := range inlineErrorCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse(t, tt.settings)
			got := ""
			if err != nil {
				got = strings.TrimPrefix(err.Error(), filepath.Join("testdata", "inline.yml")+":")
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

// syntaxErrorCases are YAML syntax errors with the place they must be reported at.
var syntaxErrorCases = []struct {
	yaml string
	want string
}{
	{"a: b\n  c: d\n", "2:4: syntax error: mapping values are not allowed in this context"},
	{"a:\n  b: c\n d: e\n", "3:2: syntax error: did not find expected key"},
	{"a: [1, 2\nb: 3\n", "1:5: syntax error: did not find expected ',' or ']'"},
	{"a: *x\n", "1:5: syntax error: unknown anchor 'x' referenced"},
	{"a: \"abc\n", "1:4: syntax error: found unexpected end of stream"},
	{"a:\n\tb: c\n", "2:1: syntax error: found character that cannot start any token"},
	{"key: @foo\n", "1:6: syntax error: found character that cannot start any token"},
	{"servers:\n  web1: {}\n- x\n", "3:1: syntax error: did not find expected key"},
}

// TestSyntaxErrorPlace checks that YAML syntax errors point at the faulty character, not at the line the YAML
// library names (which is sometimes one off).
func TestSyntaxErrorPlace(t *testing.T) {
	for _, tt := range syntaxErrorCases {
		t.Run(tt.want, func(t *testing.T) {
			_, err := Parse("s.yml", []byte(tt.yaml))
			var list ErrorList
			if !errors.As(err, &list) || len(list) != 1 {
				t.Fatalf("got %v", err)
			}
			if got := strings.TrimPrefix(err.Error(), "s.yml:"); got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestDockerfilesDir(t *testing.T) {
	mkdirs := func(t *testing.T, dirs ...string) string {
		root := t.TempDir()
		for _, d := range dirs {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		return root
	}
	const app = "servers: {w: }\napplications: {a: {server: w, build_dir: App}}\n"
	t.Run("docker.dockerfiles relative to the settings file", func(t *testing.T) {
		root := mkdirs(t, "conf/images/App", "conf/dockerfiles/App")
		s, err := Parse(filepath.Join(root, "conf", "settings.yml"), []byte("docker: {dockerfiles: images}\n"+app))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(root, "conf", "images"); s.Docker.Dockerfiles != want {
			t.Errorf("got %q, want %q", s.Docker.Dockerfiles, want)
		}
	})
	t.Run("absolute docker.dockerfiles", func(t *testing.T) {
		root := mkdirs(t, "images/App", "conf")
		s, err := Parse(filepath.Join(root, "conf", "settings.yml"),
			[]byte("docker: {dockerfiles: "+filepath.Join(root, "images")+"}\n"+app))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(root, "images"); s.Docker.Dockerfiles != want {
			t.Errorf("got %q, want %q", s.Docker.Dockerfiles, want)
		}
	})
	t.Run("dockerfiles beside the settings file", func(t *testing.T) {
		root := mkdirs(t, "conf/dockerfiles/App", "dockerfiles")
		t.Chdir(root)
		s, err := Parse(filepath.Join("conf", "settings.yml"), []byte(app))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(root, "conf", "dockerfiles"); s.Docker.Dockerfiles != want {
			t.Errorf("got %q, want %q", s.Docker.Dockerfiles, want)
		}
	})
	t.Run("dockerfiles in the working directory, as Bee2 ran from its repository", func(t *testing.T) {
		root := mkdirs(t, "dockerfiles/App", "conf")
		t.Chdir(root)
		s, err := Parse(filepath.Join("conf", "settings.yml"), []byte(app))
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join(root, "dockerfiles"); s.Docker.Dockerfiles != want {
			t.Errorf("got %q, want %q", s.Docker.Dockerfiles, want)
		}
	})
	t.Run("no dockerfiles anywhere", func(t *testing.T) {
		root := mkdirs(t, "conf")
		t.Chdir(root)
		_, err := Parse("conf/settings.yml", []byte(app))
		want := "conf/settings.yml:2:42: applications.a.build_dir: no dockerfiles directory beside the settings file " +
			"or in the working directory; set docker.dockerfiles"
		if err == nil || err.Error() != want {
			t.Errorf("got  %v\nwant %s", err, want)
		}
	})
	t.Run("no dockerfiles needed without build_dir", func(t *testing.T) {
		root := mkdirs(t, "conf")
		t.Chdir(root)
		if _, err := Parse("conf/settings.yml", []byte("servers: {w: }\napplications: {a: {server: w, image: a}}\n")); err != nil {
			t.Error(err)
		}
	})
}

// TestBuildDirSymlink: the build context is sent to the engine, so a symbolic link out of dockerfiles is refused.
func TestBuildDirSymlink(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"dockerfiles/Real", "secret"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"dockerfiles/Escape": filepath.Join(root, "secret"),
		"dockerfiles/Up":     "../secret",
		"dockerfiles/Alias":  "Real",
		"dockerfiles/File":   filepath.Join(root, "secret", "x"),
	}
	if err := os.WriteFile(filepath.Join(root, "secret", "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range links {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatalf("symlink %s: %v", link, err)
		}
	}
	file := filepath.Join(root, "settings.yml")
	tests := []struct {
		buildDir string
		want     string // error message after the place, "" for none
	}{
		{"Real", ""},
		{"Alias", ""},
		{"Escape", `build_dir "Escape" leads outside the dockerfiles directory`},
		{"Up", `build_dir "Up" leads outside the dockerfiles directory`},
		{"File", `build_dir "File" leads outside the dockerfiles directory`},
		{"Alias/../Real", ""},
		{"Real/../../secret", `build_dir "Real/../../secret" must be a relative path inside the dockerfiles directory`},
	}
	for _, tt := range tests {
		t.Run(tt.buildDir, func(t *testing.T) {
			_, err := Parse(file, []byte("servers: {w: }\napplications: {a: {server: w, build_dir: '"+tt.buildDir+"'}}\n"))
			got := ""
			if err != nil {
				got = strings.TrimPrefix(err.Error(), file+":2:42: applications.a.build_dir: ")
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	cands := []string{"certbot", "haproxy", "nginx-static", "db"}
	tests := []struct{ name, want string }{
		{"certbt", "certbot"},
		{"HAProxy", "haproxy"},
		{"nginx-statc", "nginx-static"},
		{"x", ""},
		{"zz", ""}, {"dc", "db"},
		{"postgres", ""},
		{"certbot", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.name, cands); got != tt.want {
			t.Errorf("suggest(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestCheckBind(t *testing.T) {
	good := []string{
		"letsencrypt:/etc/letsencrypt:rw",
		"/var/run/docker.sock:/var/run/docker.sock",
		"data:/data",
		"logs-web:/var/log/nginx:ro,z",
		"a.b_c-d:/x:nocopy,rprivate,cached",
	}
	for _, b := range good {
		if msg := checkBind(b); msg != "" {
			t.Errorf("%s: %s", b, msg)
		}
	}
	bad := []string{"data", "/a:/b:c:d", "a b:/x", ":/x", "a:", "a:x", "a:/x:", "a:/x:ro,", "a:/x:rw,ro", "-a:/x"}
	for _, b := range bad {
		if checkBind(b) == "" {
			t.Errorf("%s accepted", b)
		}
	}
}
