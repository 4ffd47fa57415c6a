package testdocker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

// buildTimeout bounds compiling one program and building its image.
const buildTimeout = 5 * time.Minute

// LabelTest marks every image testdocker builds, so leftovers of a killed test run are easy to find.
const LabelTest = "bee2d.test"

var (
	// mainRunning says Main owns the process, so images can be shared by its tests and removed at its end.
	mainRunning atomic.Bool

	sharedMu     sync.Mutex
	sharedPrefix string
	sharedBuilds = map[string]*sharedBuild{} // by tag
)

type sharedBuild struct {
	once sync.Once
	err  error
}

// Main runs a package's tests and then removes the images that BuildGoImage built for them, together with any
// container still using them. With it, every test of the package shares one build per program; without it,
// each test builds its own image and removes it when it ends. Use it as
//
//	func TestMain(m *testing.M) { testdocker.Main(m) }
func Main(m *testing.M) {
	mainRunning.Store(true)
	code := m.Run()
	if err := removeSharedImages(); err != nil {
		fmt.Fprintf(os.Stderr, "testdocker: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

func removeSharedImages() error {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	var tags []string
	for tag, b := range sharedBuilds {
		// A build that never ran or failed left no tagged image behind (sync.Once has finished by now).
		if b.err == nil {
			tags = append(tags, tag)
		}
	}
	if len(tags) == 0 {
		return nil
	}
	cli, err := connect()
	if err != nil {
		return fmt.Errorf("remove test images: %w", err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	for _, tag := range tags {
		if err := removeImageAndUsers(ctx, cli, tag); err != nil {
			return err
		}
	}
	return nil
}

// removeImageAndUsers removes the containers created from tag first, since the engine keeps an image that a
// container still uses.
func removeImageAndUsers(ctx context.Context, cli *dockerx.Client, tag string) error {
	images, err := cli.ListImages(ctx)
	if err != nil {
		return err
	}
	var id string
	for _, img := range images {
		for _, t := range img.Tags {
			if t == tag {
				id = img.ID
			}
		}
	}
	if id == "" {
		return nil
	}
	containers, err := cli.ListContainers(ctx)
	if err != nil {
		return err
	}
	for _, c := range containers {
		if c.Image == tag { // by tag only: identical builds share an image id across tests
			if err := removeContainer(ctx, cli, c.ID); err != nil {
				return err
			}
		}
	}
	if err := cli.RemoveImage(ctx, tag); err != nil && !dockerx.IsNotFound(err) {
		return err
	}
	return nil
}

var imageName = regexp.MustCompile(`^[a-z0-9]+(?:[._-][a-z0-9]+)*$`)

// BuildGoImage compiles goSource (one file of package main, standard library only) into a static linux binary
// and builds the image FROM scratch with it as /app, the entrypoint. It returns the image's tag, which names
// name and a hash of the source. Under Main, identical builds are shared by all tests of the process; otherwise
// the image is removed when the test ends.
func BuildGoImage(t testing.TB, cli *dockerx.Client, name, goSource string) string {
	t.Helper()
	if !imageName.MatchString(name) {
		t.Fatalf("testdocker.BuildGoImage: %q is not a valid image name component", name)
	}
	sum := sha256.Sum256([]byte(goSource))
	version := hex.EncodeToString(sum[:])[:12]

	if !mainRunning.Load() {
		tag := UniquePrefix(t) + "/" + name + ":" + version
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
			defer cancel()
			if err := removeImageAndUsers(ctx, cli, tag); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		})
		if err := buildGoImage(cli, tag, goSource); err != nil {
			t.Fatal(err)
		}
		return tag
	}

	sharedMu.Lock()
	if sharedPrefix == "" {
		sharedPrefix = UniquePrefix(t)
	}
	tag := sharedPrefix + "/" + name + ":" + version
	b := sharedBuilds[tag]
	if b == nil {
		b = &sharedBuild{}
		sharedBuilds[tag] = b
	}
	sharedMu.Unlock()
	b.once.Do(func() { b.err = buildGoImage(cli, tag, goSource) })
	if b.err != nil {
		t.Fatal(b.err)
	}
	return tag
}

func buildGoImage(cli *dockerx.Client, tag, goSource string) error {
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	dir, err := os.MkdirTemp("", "testdocker-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src, buildCtx := filepath.Join(dir, "src"), filepath.Join(dir, "context")
	files := map[string]string{
		filepath.Join(src, "go.mod"):          "module testapp\n\ngo 1.22\n",
		filepath.Join(src, "main.go"):         goSource,
		filepath.Join(buildCtx, "Dockerfile"): "FROM scratch\nCOPY app /app\nENTRYPOINT [\"/app\"]\n",
	}
	for path, content := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			return err
		}
	}

	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("build %s: %w", tag, err)
	}
	cmd := exec.CommandContext(ctx, goBin, "build", "-trimpath", "-ldflags=-s", "-o", filepath.Join(buildCtx, "app"), ".")
	cmd.Dir = src
	// A scratch image has no libc, so the binary must be static; the module is self-contained, so nothing may
	// be fetched or switched.
	cmd.Env = append(os.Environ(),
		"CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH,
		"GOWORK=off", "GOTOOLCHAIN=local", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("compile %s: %w\n%s", tag, err, out)
	}

	var out bytes.Buffer
	if _, err := cli.BuildImage(ctx, dockerx.BuildRequest{
		ContextDir: buildCtx,
		Tags:       []string{tag},
		Labels:     map[string]string{LabelTest: "true"},
		Output:     &out,
	}); err != nil {
		return fmt.Errorf("%w\n%s", err, out.String())
	}
	return nil
}

// Sleeper returns the tag of an image running SleeperSource.
func Sleeper(t testing.TB, cli *dockerx.Client) string {
	t.Helper()
	return BuildGoImage(t, cli, "sleeper", SleeperSource)
}

// SleeperSource is a long-running program for tests that need a container. It serves HTTP on :8080 (or on
// $PORT, so a test can publish host port = container port on a free port):
//
//	GET /               its environment, one KEY=value a line, sorted
//	GET /env/NAME       the value of NAME
//	GET /file/PATH      the content of /PATH
//	PUT /file/PATH      writes the body to /PATH
//	DELETE /file/PATH   removes /PATH
//	GET /get?url=URL    fetches URL from inside the container (to check names and aliases on a network)
//
// and exits 0 on SIGTERM or SIGINT. With $TOUCH set it first creates that file (empty), so that a health
// check of "exists $TOUCH" passes until a test deletes the file. Its arguments make short-lived jobs instead:
//
//	echo WORDS...       prints the words and exits 0
//	exit CODE           prints "exiting with CODE" to stderr and exits with CODE
//	write PATH TEXT     writes TEXT to PATH and exits 0
//	exists PATH         exits 0 if PATH exists, else prints why not and exits 1
const SleeperSource = `package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) > 1 {
		job(os.Args[1], os.Args[2:])
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		env := os.Environ()
		sort.Strings(env)
		fmt.Fprintln(w, strings.Join(env, "\n"))
	})
	http.HandleFunc("/env/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getenv(strings.TrimPrefix(r.URL.Path, "/env/")))
	})
	http.HandleFunc("/file/", func(w http.ResponseWriter, r *http.Request) {
		path := "/" + strings.TrimPrefix(r.URL.Path, "/file/")
		if r.Method == http.MethodDelete {
			if err := os.Remove(path); err != nil {
				http.Error(w, err.Error(), http.StatusNotFound)
			}
			return
		}
		if r.Method == http.MethodPut {
			b, err := io.ReadAll(r.Body)
			if err == nil {
				err = os.WriteFile(path, b, 0o644)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	http.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		resp, err := http.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	})
	if f := os.Getenv("TOUCH"); f != "" {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	go func() {
		if err := http.ListenAndServe(":"+port, nil); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
}

func job(cmd string, args []string) {
	switch cmd {
	case "echo":
		fmt.Println(strings.Join(args, " "))
	case "exit":
		code, _ := strconv.Atoi(strings.Join(args, ""))
		fmt.Fprintf(os.Stderr, "exiting with %d\n", code)
		os.Exit(code)
	case "exists":
		if _, err := os.Stat(strings.Join(args, " ")); err != nil {
			fmt.Println(err)
			os.Exit(1)
		}
	case "write":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, "usage: write PATH TEXT")
			os.Exit(2)
		}
		if err := os.WriteFile(args[0], []byte(args[1]), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n", cmd)
		os.Exit(2)
	}
}
`
