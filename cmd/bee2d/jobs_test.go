package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/bee2d/bee2d/pkg/labels"
)

// sitegenSource is the job of the blog's pattern: it "builds a site" into /out from the repository's
// content. A content file starting with FAIL makes it exit with the code that follows.
const sitegenSource = `package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

func main() {
	b, err := os.ReadFile("/content.txt")
	if err != nil {
		fmt.Println("no content:", err)
		os.Exit(2)
	}
	text := strings.TrimSpace(string(b))
	if code, ok := strings.CutPrefix(text, "FAIL "); ok {
		fmt.Println("refusing to build:", text)
		n, _ := strconv.Atoi(code)
		os.Exit(n)
	}
	if err := os.WriteFile("/out/index.html", []byte(text+"\n"), 0o644); err != nil {
		fmt.Println("write:", err)
		os.Exit(1)
	}
	fmt.Println("built the site:", text)
}
`

var (
	sitegenOnce sync.Once
	sitegenBin  string
	sitegenErr  error
)

// gitRepo is a repository on this machine holding the site generator: a Dockerfile FROM scratch, its
// static binary and content.txt.
type gitRepo struct {
	t   *testing.T
	dir string
}

func newGitRepo(t *testing.T) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed for job tests: %v", err)
	}
	sitegenOnce.Do(func() {
		dir, err := os.MkdirTemp("", "bee2d-sitegen")
		if err != nil {
			sitegenErr = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(sitegenSource), 0o644); err != nil {
			sitegenErr = err
			return
		}
		if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module sitegen\n\ngo 1.22\n"), 0o644); err != nil {
			sitegenErr = err
			return
		}
		sitegenBin = filepath.Join(dir, "sitegen")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s", "-o", sitegenBin, ".")
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			sitegenErr = err
			sitegenBin = string(out)
		}
	})
	if sitegenErr != nil {
		t.Fatalf("build sitegen: %v\n%s", sitegenErr, sitegenBin)
	}
	r := &gitRepo{t: t, dir: filepath.Join(t.TempDir(), "site.git")}
	bin, err := os.ReadFile(sitegenBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.git("init", "--quiet", "--initial-branch=main")
	r.write("sitegen", string(bin), 0o755)
	r.write("Dockerfile", "FROM scratch\nCOPY sitegen /sitegen\nCOPY content.txt /content.txt\nENTRYPOINT [\"/sitegen\"]\n", 0o644)
	r.commit("first version of the site")
	return r
}

func (r *gitRepo) write(name, content string, mode os.FileMode) {
	r.t.Helper()
	if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), mode); err != nil {
		r.t.Fatal(err)
	}
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=bee2d test", "-c", "user.email=test@bee2d.invalid"}, args...)...)
	cmd.Dir = r.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit sets content.txt and commits; it returns the new commit.
func (r *gitRepo) commit(content string) string {
	r.t.Helper()
	r.write("content.txt", content+"\n", 0o644)
	r.git("add", "-A")
	r.git("commit", "--quiet", "-m", content)
	return r.git("rev-parse", "HEAD")
}

// jobStack is the example's static server serving a volume that a git job fills.
func newJobStack(t *testing.T) (*stack, *gitRepo) {
	t.Helper()
	st := newStack(t)
	repo := newGitRepo(t)
	yml := st.read()
	// The front is not needed: static serves the job's output directly on the published port.
	yml = yml[:strings.Index(yml, "  front:")]
	yml = strings.Replace(yml, st.volume+":/www:rw", st.volume+":/www:ro", 1)
	yml = strings.Replace(yml, "      port: 8080\n", "      port: "+fmt.Sprint(st.port)+"\n", 1)
	yml = strings.Replace(yml, "      seed: Hello from the "+st.volume+" volume\n", "", 1)
	yml = strings.Replace(yml, "    volumes: [\""+st.volume+":/www:ro\"]", "    volumes: [\""+st.volume+":/www:ro\"]\n    ports: ["+fmt.Sprint(st.port)+"]", 1)
	yml += "jobs:\n  site:\n    server: local\n    git: " + repo.dir + "\n    branch: main\n    volumes: [\"" + st.volume + ":/out:rw\"]\n"
	st.write(yml)
	return st, repo
}

func TestJobBuildsTheSiteAnApplicationServes(t *testing.T) {
	st, repo := newJobStack(t)

	// apply on a fresh server: the job runs from the repository's commit before the server that mounts
	// its volume is created, so the site is never served empty.
	out := st.mustApply()
	if body, _ := st.get(); !strings.Contains(body, "first version of the site") {
		t.Fatalf("served %q after the first apply:\n%s", body, out)
	}
	job := st.containers()[st.prefix+"-job-site"]
	head := repo.git("rev-parse", "HEAD")
	if job.State != "exited" || job.Labels[labels.Commit] != head {
		t.Fatalf("job container %s (commit %s), want exited with commit %s", job.State, job.Labels[labels.Commit], head)
	}
	if code, out, _ := st.bee2d("plan", "-c", st.settings, "--detailed-exitcode"); code != 0 {
		t.Fatalf("after a successful run nothing is left to do, plan says %d:\n%s", code, out)
	}

	t.Run("a new commit reruns the job and the served content changes", func(t *testing.T) {
		repo.commit("second version of the site")
		code, plan, _ := st.bee2d("plan", "-c", st.settings)
		if code != 0 || !strings.Contains(plan, "run job "+st.prefix+"-job-site: image") {
			t.Fatalf("plan after a commit:\n%s", plan)
		}
		st.mustApply()
		if body, _ := st.get(); !strings.Contains(body, "second version of the site") {
			t.Fatalf("served %q", body)
		}
	})

	t.Run("a failing run exits with the job's code and the next run still works", func(t *testing.T) {
		repo.commit("FAIL 3")
		code, out, errOut := st.bee2d("run", "-c", st.settings, "local", "site")
		if code != 3 {
			t.Fatalf("run exited %d, want the job's 3\n%s%s", code, out, errOut)
		}
		if !strings.Contains(out, "[site] refusing to build: FAIL 3") {
			t.Errorf("job output not streamed with its prefix:\n%s", out)
		}
		failed := st.containers()[st.prefix+"-job-site"]
		if code, ok := failed.ExitCode(); !ok || code != 3 {
			t.Errorf("failed job container kept for its logs? state %s status %q", failed.State, failed.Status)
		}
		if body, _ := st.get(); !strings.Contains(body, "second version of the site") {
			t.Errorf("a failed run changed the served site: %q", body)
		}
		repo.commit("third version of the site")
		if code, out, errOut := st.bee2d("-c", st.settings, "-d", "local:run:site"); code != 0 {
			t.Fatalf("run after the fix exited %d\n%s%s", code, out, errOut)
		}
		if body, _ := st.get(); !strings.Contains(body, "third version of the site") {
			t.Errorf("served %q", body)
		}
	})
}

func TestJobSourceErrorsStayWithTheJob(t *testing.T) {
	st, _ := newJobStack(t)
	yml := st.read()
	st.write(strings.Replace(yml, "branch: main", "branch: nosuchbranch", 1))
	code, out, errOut := st.bee2d("apply", "-c", st.settings)
	if code != 1 || !strings.Contains(errOut, `no branch "nosuchbranch"`) {
		t.Fatalf("apply = %d\n%s%s", code, out, errOut)
	}
	// The static server waits for the job's first success instead of serving an empty volume.
	if _, ok := st.containers()[st.name("static")]; ok {
		t.Errorf("the server of the job's volume was created before the job ever succeeded")
	}
}

// TestApplicationBuildsFromGit builds an application, not a job, from a branch of a repository with git,
// branch, git_dir and dockerfile, as Bee2 did: the image is built from the named Dockerfile of the
// subdirectory at the branch's commit, a commit on another branch changes nothing, and one on the branch
// recreates the application with the new build.
func TestApplicationBuildsFromGit(t *testing.T) {
	st := newStack(t)
	repo := newGitRepo(t)
	// The branch release holds the example's static server under web/, with Dockerfile.web baking the page
	// into the image. web/Dockerfile, which a build that ignored dockerfile: would take, cannot build, and
	// the root Dockerfile is the site generator's, which a build that ignored git_dir would take.
	static, err := os.ReadFile(filepath.Join(st.dir, "dockerfiles", "Static", "static"))
	if err != nil {
		t.Fatal(err)
	}
	repo.git("checkout", "--quiet", "-b", "release")
	if err := os.MkdirAll(filepath.Join(repo.dir, "web"), 0o755); err != nil {
		t.Fatal(err)
	}
	repo.write("web/static", string(static), 0o755)
	repo.write("web/Dockerfile", "FROM scratch\nCOPY no-such-file /x\n", 0o644)
	repo.write("web/Dockerfile.web", "FROM scratch\nCOPY static /app\nCOPY index.html /site/index.html\nENTRYPOINT [\"/app\"]\n", 0o644)
	page := func(text string) string {
		repo.write("web/index.html", "<h1>"+text+"</h1>\n", 0o644)
		repo.git("add", "-A")
		repo.git("commit", "--quiet", "-m", text)
		return repo.git("rev-parse", "HEAD")
	}
	first := page("release one")
	repo.git("checkout", "--quiet", "main")

	st.write(`servers:
  local: {}
docker:
  prefix: bee2ex
applications:
  static:
    server: local
    git: ` + repo.dir + `
    branch: release
    git_dir: web
    dockerfile: Dockerfile.web
    env: {root: /site, port: 8480}
    ports: [8480]
`)
	code, plan, errOut := st.bee2d("plan", "-c", st.settings)
	if code != 0 || !strings.Contains(plan, "build image "+st.prefix+"/static:"+first[:12]) {
		t.Fatalf("plan = %d, want a build of release's commit %s:\n%s%s", code, first[:12], plan, errOut)
	}
	out := st.mustApply()
	if body, _ := st.get(); !strings.Contains(body, "release one") {
		t.Fatalf("served %q after the first apply:\n%s", body, out)
	}
	app := st.containers()[st.name("static")]
	if !app.Running() || app.Labels[labels.Commit] != first || !strings.HasPrefix(app.Image, st.prefix+"/static:"+first[:12]) {
		t.Fatalf("application %s from image %s with commit label %q, want running from release's commit %s", app.State, app.Image, app.Labels[labels.Commit], first)
	}

	t.Run("a commit on another branch changes nothing", func(t *testing.T) {
		repo.commit("main moves on")
		if code, out, errOut := st.bee2d("plan", "-c", st.settings, "--detailed-exitcode"); code != 0 {
			t.Fatalf("plan = %d, want no changes:\n%s%s", code, out, errOut)
		}
	})

	t.Run("a commit on the branch recreates the application", func(t *testing.T) {
		repo.git("checkout", "--quiet", "release")
		second := page("release two")
		repo.git("checkout", "--quiet", "main")
		code, plan, errOut := st.bee2d("plan", "-c", st.settings)
		if code != 0 || !strings.Contains(plan, "recreate container "+st.name("static")+": image") {
			t.Fatalf("plan after a commit on release = %d:\n%s%s", code, plan, errOut)
		}
		st.mustApply()
		if body, _ := st.get(); !strings.Contains(body, "release two") {
			t.Errorf("served %q after the commit was applied", body)
		}
		now := st.containers()[st.name("static")]
		if now.ID == app.ID || now.Labels[labels.Commit] != second {
			t.Errorf("application %s with commit %q, want a new container from %s", now.ID[:12], now.Labels[labels.Commit], second)
		}
	})
}
