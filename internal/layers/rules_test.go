package layers

// m is the module path; the tables name the module's packages with it.
const m = "github.com/bee2d/bee2d/"

// dockerSDK is the Docker SDK: only pkg/dockerx may import it.
var dockerSDK = []string{"github.com/docker/docker/...", "github.com/docker/go-connections/..."}

// rules are the import rules of DESIGN.md section 3. A pattern ending in /... also matches the packages
// below it. imports is checked against a package's own imports (and, with tests, those of its _test.go
// files); deps against everything its non-test code depends on, however indirectly.
var rules = []rule{
	{
		name:    "sdk-only-in-dockerx",
		why:     "only pkg/dockerx imports the Docker SDK",
		from:    []string{m + "..."},
		except:  []string{m + "pkg/dockerx"},
		imports: dockerSDK,
		tests:   true,
	},
	{
		name: "config-knows-no-docker",
		why:  "pkg/config knows nothing of Docker, of the planner, of backups or of the daemon runtime",
		from: []string{m + "pkg/config/..."},
		deps: append([]string{m + "pkg/dockerx/...", m + "pkg/engine/...", m + "pkg/reconcile/...",
			m + "pkg/backup/...", m + "pkg/daemon/..."}, dockerSDK...),
	},
	{
		name: "planner-does-no-io",
		why:  "the planner does no I/O itself; it talks to Docker through small interfaces",
		from: []string{m + "pkg/reconcile"},
		imports: []string{m + "pkg/dockerx/...", m + "pkg/backup/...", m + "pkg/daemon/...",
			m + "pkg/gitx", "os/exec", "net/http", "os", "net"},
		deps: dockerSDK,
	},
	{
		name: "runtime-on-top",
		why:  "the daemon runtime (pkg/daemon) builds on the lower layers; none of them reaches back up to it",
		from: []string{m + "pkg/config/...", m + "pkg/engine/...", m + "pkg/labels/...", m + "pkg/reconcile/...",
			m + "pkg/dockerx/...", m + "pkg/backup/...", m + "pkg/gitx/...", m + "pkg/gitops/...", m + "internal/pki/..."},
		deps: []string{m + "pkg/daemon/..."},
	},
	{
		name: "git-only-in-gitx",
		why:  "the settings source (pkg/gitops) runs git through pkg/gitx, which knows nothing of Docker",
		from: []string{m + "pkg/gitx/...", m + "pkg/gitops/..."},
		deps: append([]string{m + "pkg/dockerx/...", m + "pkg/reconcile/...", m + "pkg/backup/..."}, dockerSDK...),
	},
	{
		name: "leaves",
		why:  "pkg/engine and pkg/labels are leaves: every layer may import them, and they import nothing of the module",
		from: []string{m + "pkg/engine", m + "pkg/labels"},
		deps: append([]string{m + "..."}, dockerSDK...),
	},
}

// exceptions excuse an import in the files named, and only there. One that no longer applies fails the
// test, so that the table shrinks as the code moves.
var exceptions = []exception{
	// For good: EndpointFor, beside the planner, is pure apart from this.
	{rule: "planner-does-no-io", from: m + "pkg/reconcile", imports: "net", files: []string{"converge.go"},
		why: "EndpointFor joins a host and port 2376 with net.JoinHostPort, which does no I/O"},
}
