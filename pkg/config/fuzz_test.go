package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"go.yaml.in/yaml/v3"
)

// upperKeyRE is what a rendered env key must be: an upper-cased shell name, so nothing (newline, NUL, "=")
// can be smuggled through a key into the container's environment.
var upperKeyRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// FuzzParse loads and validates any bytes as a settings file: Parse never panics; a file that does not load
// gives only placed errors, one line each, sorted and without repeats; a file that loads renders the env of
// every service soundly and the same way each time.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yml")) // the good files and every *.bad.yml
	if err != nil || len(files) == 0 {
		f.Fatalf("no seed files: %v", err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, tt := range renderEnvCases {
		f.Add([]byte(renderEnvServers + tt.settings))
	}
	for _, tt := range inlineErrorCases {
		f.Add([]byte(tt.settings))
	}
	for _, tt := range syntaxErrorCases {
		f.Add([]byte(tt.yaml))
	}
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("a: &a {b: *a}\n"))
	f.Add([]byte("servers: {w: }\napplications: {a: {server: w, image: a, env: {x: &x [*x, *x]}}}\n"))
	// Control characters where a message repeats what the file says: keys, names, git, schedules, watches.
	f.Add([]byte("\"a\\nb\": 1\n"))
	f.Add([]byte("servers: {\"w\\n1\": {dns: {}}}\n"))
	f.Add([]byte("servers: {w: }\napplications: {a: {server: w, git: \"-x\\ny\"}}\n"))
	f.Add([]byte("servers: {w: }\njobs: {j: {server: w, image: x, schedule: \"\\0 * * * *\"}}\n"))
	f.Add([]byte("servers: {w: }\napplications: {\"a\\n\": {server: w, image: x, link: [\"b\\n\"]}, \"b\\n\": {server: w, image: x, link: [\"a\\n\"]}}\n"))
	f.Add([]byte("servers: {w: }\napplications: {a: {server: w, image: x, volumes: [\"v:/v\"], reload: [{watch: \"v:/a\\nb\"}, {watch: \"v:/a\\nb\"}]}}\n"))
	file := filepath.Join("testdata", "fuzz.yml")
	// Database values make passwords when the settings load: in memory here, never in files the input names.
	memoryPasswords(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse(file, data)
		again, err2 := Parse(file, data)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) {
			t.Fatalf("two parses differ:\n%v\n---\n%v", err, err2)
		}
		if err != nil {
			checkErrorList(t, file, data, s, err)
			return
		}
		if got, want := renderAll(again), renderAll(s); got != want {
			t.Fatalf("two parses render differently:\n%s---\n%s", got, want)
		}
		for _, list := range [][]*Service{s.Applications, s.Jobs} {
			for _, svc := range list {
				checkRender(t, s, svc)
			}
		}
	})
}

// checkErrorList asserts what every failed Parse promises: an ErrorList and no settings; each error placed in
// file at a line the file has, formatted file:line:col: and on one line; sorted by place; no repeats.
func checkErrorList(t *testing.T, file string, data []byte, s *Settings, err error) {
	t.Helper()
	var list ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("error is %T, not ErrorList: %v", err, err)
	}
	if s != nil {
		t.Fatalf("settings returned along with errors")
	}
	if len(list) == 0 {
		t.Fatalf("empty ErrorList")
	}
	lines := lineCount(data)
	for i, e := range list {
		if e.File != file || e.Line < 1 || e.Col < 1 || e.Line > lines || e.Msg == "" {
			t.Fatalf("error without a place in the file (%d lines): %#v", lines, e)
		}
		if strings.ContainsAny(e.Path+e.Msg, "\n\r\x00\u0085\u2028\u2029") {
			t.Fatalf("error %d repeats a line break or NUL of the file as is: %q", i, e.Path+": "+e.Msg)
		}
		msg := e.Error()
		if !strings.HasPrefix(msg, fmt.Sprintf("%s:%d:%d: ", file, e.Line, e.Col)) {
			t.Fatalf("bad format: %q", msg)
		}
		if strings.ContainsAny(msg, "\n\r\x00") {
			t.Fatalf("error %d spans lines or holds a NUL, so a reader cannot tell one error from the next: %q", i, msg)
		}
		if i > 0 {
			p := list[i-1]
			if p.Line > e.Line || (p.Line == e.Line && p.Col > e.Col) {
				t.Fatalf("errors not sorted by place: %q before %q", p.Error(), msg)
			}
			if *p == *e {
				t.Fatalf("error reported twice: %q", msg)
			}
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != len(list) {
		t.Fatalf("%d errors print as %d lines", len(list), n)
	}
}

// lineCount is the number of lines an editor may show for data, counting every YAML line break (\n, \r\n, a
// lone \r, NEL, LS, PS), plus one for a place at the very end.
func lineCount(data []byte) int {
	n := 1
	s := string(data)
	for i, r := range s {
		switch r {
		case '\n', '\u0085', '\u2028', '\u2029':
			n++
		case '\r':
			if i+1 >= len(s) || s[i+1] != '\n' {
				n++
			}
		}
	}
	return n + 1
}

// checkRender asserts what RenderEnv promises for any loaded settings: one KEY=value per env entry, in the
// entries' order; keys upper-cased shell names, each once; no NUL (the kernel cannot pass one); $name resolved
// to an application's container; lists and mappings valid JSON; a domains value that splits back into its
// domains; the same result each time.
func checkRender(t *testing.T, s *Settings, svc *Service) {
	t.Helper()
	env := RenderEnv(s, svc)
	keys := EnvKeys(svc)
	if len(env) != len(svc.Env) || len(keys) != len(svc.Env) {
		t.Fatalf("%s: %d entries render as %d lines and %d keys", svc.Name, len(svc.Env), len(env), len(keys))
	}
	if again := RenderEnv(s, svc); !slices.Equal(env, again) {
		t.Fatalf("%s: two renders differ: %q, %q", svc.Name, env, again)
	}
	seen := map[string]bool{}
	for i, kv := range env {
		e := svc.Env[i]
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k != keys[i] || k != strings.ToUpper(e.Key) || !upperKeyRE.MatchString(k) {
			t.Fatalf("%s: entry %q renders as %q (key %q)", svc.Name, e.Key, kv, keys[i])
		}
		if seen[k] {
			t.Fatalf("%s: key %s rendered twice: %q", svc.Name, k, env)
		}
		seen[k] = true
		if strings.Contains(kv, "\x00") {
			t.Fatalf("%s: %s holds a NUL, which no process environment can carry: %q", svc.Name, k, kv)
		}
		ev := e.Value
		switch {
		case isDomains(e.Key) && ev.Scalar:
			// domains: all, "<prefix>-app-<name>:<d1>,<d2>" per application of the same server.
			for _, item := range strings.Fields(v) {
				name, domains, ok := strings.Cut(item, ":")
				app := s.Application(strings.TrimPrefix(name, s.Docker.Prefix+"-app-"))
				if !ok || app == nil || app.Server != svc.Server || domains == "" || strings.Contains(domains, ",,") {
					t.Fatalf("%s: DOMAINS=all renders %q: %q is not an application of %s with its domains", svc.Name, v, item, svc.Server)
				}
			}
		case isDomains(e.Key):
			if got := strings.Fields(v); !slices.Equal(got, ev.List) && !(len(got) == 0 && len(ev.List) == 0) {
				t.Fatalf("%s: DOMAINS=%q does not split back into %q", svc.Name, v, ev.List)
			}
		case !ev.Scalar:
			if !json.Valid([]byte(v)) {
				t.Fatalf("%s: %s is not valid JSON: %q", svc.Name, k, v)
			}
		case ev.Ref != "":
			if s.Application(ev.Ref) == nil || v != ContainerName(s.Docker.Prefix, KindApp, ev.Ref) {
				t.Fatalf("%s: %s=$%s renders %q, not an application's container", svc.Name, k, ev.Ref, v)
			}
		}
	}
}

// envTemplate puts an env mapping (indented, at envLine) under the application svc and the job job of server
// w1, beside an application of each server that has domains.
const envTemplate = `servers: {w1: , w2: }
docker: {prefix: px}
applications:
  web: {server: w1, image: x, env: {domains: [a.example, b.example]}}
  other: {server: w2, image: x, env: {domains: [o.example]}}
  svc:
    server: w1
    image: x
    env:
%s
jobs:
  job:
    server: w1
    image: x
    env:
%s
`

// envLine is the line of envTemplate where the application's env starts, less one.
const envLine = 9

var envApps = []string{"web", "other", "svc"}

// FuzzRenderEnv renders any env mapping and checks the result against the mapping read on its own: keys
// upper-cased in file order, ordinary values as written, $name resolved to px-app-<name> or refused at its
// place, $$ unescaped once, nothing injected into a key, the same input giving the same output.
func FuzzRenderEnv(f *testing.F) {
	for _, tt := range renderEnvCases {
		if env := envOf(f, renderEnvServers+tt.settings, tt.service); env != "" {
			f.Add(env)
		}
	}
	f.Add("a: $web\nb: $$web\nc: $nope\nd: $$\ne: $\n")
	f.Add("domains: all\n")
	f.Add("domains: [x.example, y.example/8080]\nDomain: z\n")
	f.Add("base: &b {x: 1}\nm: {<<: *b, y: [1, {z: null}]}\n")
	f.Add("k: \"a\\0b\"\nl: \"line\\nbreak\"\n")
	f.Add("a: +job\nb: ++job\nc: +nope\nd: _dbmap\ne: _postgres^password\nf: _plain\ng: yes\n")
	memoryPasswords(f)
	f.Fuzz(func(t *testing.T, env string) {
		if strings.ContainsAny(env, "\r\u0085\u2028\u2029") {
			return // line breaks other than \n would escape the indentation that places the text
		}
		if !strings.HasSuffix(env, "\n") {
			env += "\n" // in the template a line break follows, and a block scalar keeps it
		}
		var model yaml.Node
		if yaml.Unmarshal([]byte(env), &model) != nil || len(model.Content) != 1 || model.Content[0].Kind != yaml.MappingNode {
			return // not a mapping on its own: FuzzParse covers what Parse makes of it
		}
		if model.Content[0].Column != 1 {
			// A mapping indented on its own (" a: $\n0" reads as {a: "$ 0"}) is not the same text once every
			// line is indented into the template, where a less indented line ends it.
			return
		}
		indented := "      " + strings.ReplaceAll(strings.TrimSuffix(env, "\n"), "\n", "\n      ")
		data := fmt.Sprintf(envTemplate, indented, indented)
		file := filepath.Join("testdata", "env.yml")
		s, err := Parse(file, []byte(data))
		if err != nil {
			checkErrorList(t, file, []byte(data), s, err)
			checkRefsRefused(t, model.Content[0], err.(ErrorList))
			return
		}
		if again, err := Parse(file, []byte(data)); err != nil || !slices.Equal(RenderEnv(again, again.Application("svc")), RenderEnv(s, s.Application("svc"))) {
			t.Fatalf("the same env renders differently: %v", err)
		}
		svc := s.Application("svc")
		checkRender(t, s, svc)
		checkRender(t, s, s.Job("job"))
		checkAgainstModel(t, s, svc, model.Content[0])
	})
}

// envOf returns the env mapping of service (app:name or job:name) in settings as block YAML, "" if none.
func envOf(f *testing.F, settings, service string) string {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(settings), &doc); err != nil {
		f.Fatal(err)
	}
	kind, name, _ := strings.Cut(service, ":")
	section := map[string]string{"app": "applications", "job": "jobs"}[kind]
	env := lookup(lookup(lookup(doc.Content[0], section), name), "env")
	if env == nil || env.Kind != yaml.MappingNode {
		return ""
	}
	env.Style = 0 // block style, so that it can be indented into the template
	out, err := yaml.Marshal(env)
	if err != nil {
		f.Fatal(err)
	}
	return string(out)
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// checkRefsRefused: settings that do not load because of a "$name" that names no application must say so on
// that value's line, or refuse the entry itself on its key's line.
func checkRefsRefused(t *testing.T, m *yaml.Node, list ErrorList) {
	t.Helper()
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!str" || !strings.HasPrefix(v.Value, "$") ||
			strings.HasPrefix(v.Value, "$$") || slices.Contains(envApps, v.Value[1:]) {
			continue
		}
		placed := slices.ContainsFunc(list, func(e *Error) bool {
			return e.Line == k.Line+envLine || e.Line == v.Line+envLine
		})
		if !placed {
			t.Fatalf("%s: %s names no application, and no error is on line %d:\n%v", k.Value, v.Value, v.Line+envLine, list)
		}
	}
}

// checkAgainstModel compares the rendered env with the mapping read independently: for a mapping without
// merge keys, the keys upper-cased in the same order; plain scalars as written; $name and $$text as promised.
func checkAgainstModel(t *testing.T, s *Settings, svc *Service, m *yaml.Node) {
	t.Helper()
	var keys []string
	values := map[string]*yaml.Node{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if k.Kind != yaml.ScalarNode || k.ShortTag() == "!!merge" {
			return // merges reorder keys: the order check does not apply
		}
		keys = append(keys, strings.ToUpper(k.Value))
		values[strings.ToUpper(k.Value)] = m.Content[i+1]
	}
	if got := EnvKeys(svc); !slices.Equal(got, keys) && !(len(got) == 0 && len(keys) == 0) {
		t.Fatalf("keys %q, want %q in file order", got, keys)
	}
	for _, kv := range RenderEnv(s, svc) {
		k, got, _ := strings.Cut(kv, "=")
		v := values[k]
		if v.Kind != yaml.ScalarNode || isDomains(k) {
			continue
		}
		var want string
		switch tag := v.ShortTag(); {
		case tag == "!!null":
			want = ""
		case tag != "!!str":
			want = v.Value
		case strings.HasPrefix(v.Value, "$$"):
			want = v.Value[1:]
		case strings.HasPrefix(v.Value, "$"):
			want = "px-app-" + v.Value[1:]
		case strings.HasPrefix(v.Value, "++"):
			want = v.Value[1:]
		case strings.HasPrefix(v.Value, "+") && ValidName(v.Value[1:]):
			want = "px-job-" + v.Value[1:]
		case strings.HasPrefix(v.Value, "_") && (strings.Contains(v.Value, "^") || strings.HasPrefix(strings.TrimLeft(v.Value, "_:"), "dbmap")):
			continue // a database value: a password or the database map, made when the settings load
		default:
			want = v.Value
		}
		if got != want {
			t.Fatalf("%s=%q, want %q (from %q)", k, got, want, v.Value)
		}
	}
}

// TestLineCount pins the bound FuzzParse puts on error lines.
func TestLineCount(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want int
	}{{"", 2}, {"a", 2}, {"a\n", 3}, {"a\r\nb", 3}, {"a\rb\n", 4}, {"a\u2028b", 3}} {
		if got := lineCount([]byte(tt.in)); got != tt.want {
			t.Errorf("lineCount(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// memStore keeps passwords in memory: the same name gives the same password.
type memStore struct {
	mu sync.Mutex
	m  map[string]string
}

func (m *memStore) Get(folder, name string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := folder + "/" + name
	if v, ok := m.m[k]; ok {
		return v, false, nil
	}
	v := fmt.Sprintf("%032x", len(m.m)+1)
	m.m[k] = v
	return v, true, nil
}

// memoryPasswords makes the settings loaded during the test keep database passwords in memory.
func memoryPasswords(t testing.TB) {
	store := &memStore{m: map[string]string{}}
	old := passwordStoreFor
	passwordStoreFor = func(*Settings) (passwordStore, error) { return passwordStore{Store: store, dir: "(memory)"}, nil }
	t.Cleanup(func() { passwordStoreFor = old })
}
