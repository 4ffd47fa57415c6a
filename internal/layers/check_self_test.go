package layers

import (
	"slices"
	"strings"
	"testing"
)

// fake makes a world from edges written "from -> to in a.go b.go" (a test file's import: "=test=>"; the
// file defaults to a.go). Names starting with pkg/, internal/ or cmd/ are the module's.
func fake(t *testing.T, edges ...string) world {
	t.Helper()
	w := world{}
	node := func(name string) *pkg {
		if p := w[name]; p != nil {
			return p
		}
		p := &pkg{path: name, imports: map[string][]string{}, testImports: map[string][]string{}}
		w[name] = p
		return p
	}
	for _, e := range edges {
		f := strings.Fields(e)
		if len(f) < 3 || f[1] != "->" && f[1] != "=test=>" || len(f) > 3 && f[3] != "in" {
			t.Fatalf("edge %q: want from -> to [in files]", e)
		}
		from, to := node(full(f[0])), node(full(f[2]))
		files := []string{"a.go"}
		if len(f) > 4 {
			files = f[4:]
		}
		if f[1] == "->" {
			from.imports[to.path] = files
		} else {
			from.testImports[to.path] = files
		}
	}
	return w
}

func full(name string) string {
	for _, top := range []string{"pkg/", "internal/", "cmd/"} {
		if strings.HasPrefix(name, top) {
			return m + name
		}
	}
	return name
}

// shape is the bee2d of DESIGN.md section 3: no rule is broken.
var shape = []string{
	"cmd/bee2d -> pkg/daemon",
	"cmd/bee2d -> pkg/reconcile",
	"cmd/bee2d -> pkg/gitx",
	"cmd/bee2d -> pkg/dockerx",
	"cmd/bee2d -> pkg/backup",
	"pkg/daemon -> pkg/reconcile",
	"pkg/daemon -> pkg/dockerx",
	"pkg/daemon -> net/http",
	"pkg/daemon -> pkg/gitx",
	"pkg/reconcile -> pkg/config",
	"pkg/reconcile -> pkg/engine",
	"pkg/reconcile -> pkg/labels",
	"pkg/reconcile -> path/filepath",
	"pkg/gitx -> os/exec",
	"pkg/gitx -> pkg/config",
	"pkg/dockerx -> github.com/docker/docker/client",
	"pkg/dockerx -> github.com/docker/go-connections/nat",
	"pkg/dockerx -> pkg/engine",
	"pkg/dockerx =test=> internal/testdocker",
	"internal/testdocker -> pkg/dockerx",
	"pkg/backup -> pkg/dockerx",
	"pkg/backup -> pkg/config",
	"pkg/engine -> github.com/containerd/errdefs",
	"pkg/config -> go.yaml.in/yaml/v3",
	"github.com/docker/docker/client -> github.com/docker/docker/api/types",
	"github.com/docker/docker/client -> net/http",
}

// checkCase is a fabricated module and what check must find in it.
type checkCase struct {
	name  string
	edges []string
	excs  []exception
	// want are the violations as "rule package import"; msg a message one of them must show.
	want []string
	msg  string
}

var (
	endpoint = []exception{{rule: "planner-does-no-io", from: m + "pkg/reconcile", imports: "os", files: []string{"converge.go"}, why: "EndpointFor"}}
	backups  = []exception{{rule: "planner-does-no-io", from: m + "pkg/reconcile", imports: m + "pkg/backup", files: []string{"backups.go"}, why: "moving"}}
)

var checkCases = []checkCase{
	{name: "bee2d as designed", edges: shape},
	{
		name:  "the SDK outside dockerx",
		edges: []string{"cmd/bee2d -> github.com/docker/docker/api/types/container in main.go"},
		want:  []string{"sdk-only-in-dockerx cmd/bee2d github.com/docker/docker/api/types/container"},
		msg:   "cmd/bee2d imports github.com/docker/docker/api/types/container in main.go: breaks rule sdk-only-in-dockerx: only pkg/dockerx imports the Docker SDK",
	},
	{
		name:  "go-connections in a test file",
		edges: []string{"internal/testdocker =test=> github.com/docker/go-connections/nat in tls_test.go"},
		want:  []string{"sdk-only-in-dockerx internal/testdocker github.com/docker/go-connections/nat"},
	},
	{
		name:  "config imports the engine's values",
		edges: []string{"pkg/config -> pkg/engine in settings.go"},
		want:  []string{"config-knows-no-docker pkg/config pkg/engine"},
	},
	{
		name:  "config reaches dockerx through another package",
		edges: []string{"pkg/config -> internal/util in load.go", "internal/util -> pkg/dockerx", "pkg/dockerx -> github.com/docker/docker/client"},
		want:  []string{"config-knows-no-docker pkg/config internal/util"},
		msg:   "pkg/config depends on pkg/dockerx through pkg/config -> internal/util -> pkg/dockerx (it imports internal/util in load.go); 1 more forbidden packages lie behind internal/util: breaks rule config-knows-no-docker",
	},
	{
		name:  "a config subpackage imports the planner",
		edges: []string{"pkg/config/source -> pkg/reconcile"},
		want:  []string{"config-knows-no-docker pkg/config/source pkg/reconcile"},
	},
	{
		name:  "the settings source reaches the executor",
		edges: []string{"pkg/gitops -> pkg/reconcile in follow.go", "pkg/gitops -> pkg/gitx"},
		want:  []string{"git-only-in-gitx pkg/gitops pkg/reconcile"},
	},
	{
		name:  "the planner runs commands",
		edges: []string{"pkg/reconcile -> os/exec in execute.go"},
		want:  []string{"planner-does-no-io pkg/reconcile os/exec"},
	},
	{
		name:  "the planner imports gitx, dockerx and net/http",
		edges: []string{"pkg/reconcile -> pkg/gitx", "pkg/reconcile -> pkg/dockerx", "pkg/reconcile -> net/http", "pkg/dockerx -> github.com/docker/docker/client"},
		// The SDK behind dockerx is not reported again.
		want: []string{"planner-does-no-io pkg/reconcile pkg/gitx", "planner-does-no-io pkg/reconcile pkg/dockerx", "planner-does-no-io pkg/reconcile net/http"},
	},
	{
		name:  "the SDK below the planner, through a subpackage",
		edges: []string{"pkg/reconcile -> pkg/reconcile/reload in reloads.go", "pkg/reconcile/reload -> pkg/dockerx", "pkg/dockerx -> github.com/docker/docker/client"},
		want:  []string{"planner-does-no-io pkg/reconcile pkg/reconcile/reload"},
		msg:   "pkg/reconcile depends on github.com/docker/docker/client through pkg/reconcile -> pkg/reconcile/reload -> pkg/dockerx -> github.com/docker/docker/client (it imports pkg/reconcile/reload in reloads.go): breaks rule planner-does-no-io",
	},
	{
		name:  "the planner imports the runtime",
		edges: []string{"pkg/reconcile -> pkg/daemon/metrics"},
		want:  []string{"planner-does-no-io pkg/reconcile pkg/daemon/metrics", "runtime-on-top pkg/reconcile pkg/daemon/metrics"},
	},
	{
		name:  "lower layers reach the runtime",
		edges: []string{"internal/pki -> pkg/daemon", "pkg/dockerx/ssh -> internal/util", "internal/util -> pkg/daemon/reload", "pkg/backup -> pkg/daemon"},
		want:  []string{"runtime-on-top internal/pki pkg/daemon", "runtime-on-top pkg/dockerx/ssh internal/util", "runtime-on-top pkg/backup pkg/daemon"},
	},
	{
		name:  "the leaves import the module",
		edges: []string{"pkg/engine -> pkg/labels", "pkg/labels -> internal/util"},
		want:  []string{"leaves pkg/engine pkg/labels", "leaves pkg/labels internal/util"},
	},
	{
		name:  "a leaf imports the SDK",
		edges: []string{"pkg/engine -> github.com/docker/docker/errdefs"},
		want:  []string{"sdk-only-in-dockerx pkg/engine github.com/docker/docker/errdefs", "leaves pkg/engine github.com/docker/docker/errdefs"},
	},
	{
		name:  "an exception excuses its files",
		edges: append([]string{"pkg/reconcile -> os in converge.go"}, shape...),
		excs:  endpoint,
	},
	{
		name:  "an exception excuses no other file",
		edges: []string{"pkg/reconcile -> os in converge.go execute.go"},
		excs:  endpoint,
		want:  []string{"planner-does-no-io pkg/reconcile os"},
		msg:   "pkg/reconcile imports os in converge.go, execute.go: breaks rule planner-does-no-io",
	},
	{
		name:  "an excused import is not walked",
		edges: []string{"pkg/reconcile -> pkg/backup in backups.go", "pkg/backup -> pkg/dockerx", "pkg/dockerx -> github.com/docker/docker/client"},
		excs:  backups,
	},
	{
		name:  "an exception that excuses nothing is stale",
		edges: []string{"pkg/reconcile -> os in daemon.go"},
		excs:  endpoint,
		want:  []string{"planner-does-no-io pkg/reconcile os", "stale pkg/reconcile os"},
		msg:   "stale exception (pkg/reconcile imports os in converge.go: EndpointFor): none of these files has that import any more; delete it from the exceptions table",
	},
	{
		name:  "an exception of no rule is stale",
		edges: []string{"pkg/reconcile -> os in converge.go"},
		excs:  []exception{{rule: "planner", from: m + "pkg/reconcile", imports: "os", files: []string{"converge.go"}}},
		want:  []string{"planner-does-no-io pkg/reconcile os", "stale pkg/reconcile os"},
		msg:   `there is no rule "planner"`,
	},
}

func TestRulesFire(t *testing.T) {
	for _, tc := range checkCases {
		t.Run(tc.name, func(t *testing.T) {
			got := check(fake(t, tc.edges...), rules, tc.excs)
			var keys, msgs []string
			for _, v := range got {
				keys = append(keys, v.rule+" "+short(v.pkg)+" "+short(v.imp))
				msgs = append(msgs, v.String())
			}
			slices.Sort(keys)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(keys, want) {
				t.Errorf("violations:\n\t%s\nwant:\n\t%s\nmessages:\n\t%s", strings.Join(keys, "\n\t"), strings.Join(want, "\n\t"), strings.Join(msgs, "\n\t"))
			}
			if tc.msg != "" && !slices.ContainsFunc(msgs, func(s string) bool { return strings.Contains(s, tc.msg) }) {
				t.Errorf("no message says %q:\n\t%s", tc.msg, strings.Join(msgs, "\n\t"))
			}
		})
	}
}

// Every rule, and the stale check, has a case in checkCases that shows it firing.
func TestEveryRuleHasACase(t *testing.T) {
	fired := map[string]bool{}
	for _, tc := range checkCases {
		for _, w := range tc.want {
			fired[strings.Fields(w)[0]] = true
		}
	}
	for _, r := range rules {
		if !fired[r.name] {
			t.Errorf("no case of checkCases expects rule %s to fire", r.name)
		}
	}
	if !fired[stale] {
		t.Errorf("no case of checkCases expects a stale exception")
	}
}
