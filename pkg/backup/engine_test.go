package backup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/dockerx"
	"github.com/bee2d/bee2d/pkg/labels"
)

// The engine tests run bee2d's own static binary as the helper, as a release does: the test binary itself
// is built with the race detector, which needs cgo, so it cannot run in a FROM scratch image.
var (
	staticOnce sync.Once
	staticBin  string
	staticErr  error
	staticDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if staticDir != "" {
		os.RemoveAll(staticDir)
	}
	os.Exit(code)
}

// staticBee2d builds cmd/bee2d with CGO_ENABLED=0, once per test run.
func staticBee2d(t testing.TB) string {
	t.Helper()
	staticOnce.Do(func() {
		staticDir, staticErr = os.MkdirTemp("", "bee2d-static-")
		if staticErr != nil {
			return
		}
		staticBin = filepath.Join(staticDir, "bee2d")
		cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -X main.version=test", "-o", staticBin, "../../cmd/bee2d")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			staticErr = fmt.Errorf("build a static bee2d: %w\n%s", err, out)
		}
	})
	if staticErr != nil {
		t.Fatal(staticErr)
	}
	return staticBin
}

// fixture is one server with backup settings on the local engine, everything named with a unique prefix.
type fixture struct {
	t        *testing.T
	cli      *dockerx.Client
	prefix   string
	dir      string // the settings file's directory
	store    string // <storage_dir>/web1
	settings *config.Settings
	vols     []string
	opts     Options
}

type fixtureOpts struct {
	compression config.Compression
	extra       string // more YAML under docker.backup.web1
	apps        string // the applications section
	storage     string // storage_dir; default <dir>/store
}

func newFixture(t *testing.T, fo fixtureOpts) *fixture {
	t.Helper()
	requireRoot(t)
	cli := testdocker.Require(t)
	prefix := testdocker.UniquePrefix(t)
	f := &fixture{t: t, cli: cli, prefix: prefix, dir: t.TempDir(), vols: []string{prefix + "-data", prefix + "-other"}}
	testdocker.Cleanup(t, cli, prefix, f.vols...)
	if fo.compression == "" {
		fo.compression = config.CompressionNone
	}
	storage := fo.storage
	if storage == "" {
		storage = "store"
	}
	yml := fmt.Sprintf(`servers:
  web1: {}
docker:
  prefix: %s
  backup:
    web1:
      storage_dir: %s
      volumes: [%s]
      compression: %s
%s
%s`, prefix, storage, strings.Join(f.vols, ", "), fo.compression, fo.extra, fo.apps)
	path := filepath.Join(f.dir, "settings.yml")
	if err := os.WriteFile(path, []byte(yml), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := config.Load(path)
	if err != nil {
		t.Fatalf("%v\n%s", err, yml)
	}
	f.settings = s
	f.store, _ = Dir(s, "web1")
	for _, v := range f.vols {
		if err := cli.CreateVolume(t.Context(), v, nil); err != nil {
			t.Fatal(err)
		}
	}
	f.opts = Options{Version: "test", Helper: staticBee2d(t)}
	return f
}

// volumeDir is where a volume's data lies; the tests run on the engine's machine.
func (f *fixture) volumeDir(v string) string {
	f.t.Helper()
	p, err := f.cli.VolumeMountpoint(f.t.Context(), v)
	if err != nil {
		f.t.Fatal(err)
	}
	return p
}

func (f *fixture) backup(method Method) Result {
	f.t.Helper()
	o := f.opts
	o.Method = method
	res, err := Run(f.t.Context(), f.cli, f.settings, "web1", o)
	if err != nil {
		f.t.Fatalf("backup: %v", err)
	}
	return res
}

func (f *fixture) restore(ro RestoreOptions) (RestoreResult, error) {
	ro.Options = f.opts
	return Restore(f.t.Context(), f.cli, f.settings, "web1", ro)
}

// noHelpers fails the test when a helper container of the fixture is left.
func (f *fixture) noHelpers() {
	f.t.Helper()
	list, err := f.cli.ListContainers(f.t.Context())
	if err != nil {
		f.t.Fatal(err)
	}
	for _, c := range list {
		if strings.HasPrefix(c.Name, f.prefix+"-helper") {
			f.t.Errorf("helper container %s left behind (%s)", c.Name, c.State)
		}
	}
}

// A backup and a restore keep files, directories, links inside the volume, permissions, owners, times and
// empty files, by every data path; a restore into a volume changed since gives back exactly the backed-up
// tree, and a volume that is gone is created again, with bee2d's labels.
func TestRoundTripOnEngine(t *testing.T) {
	cases := []struct {
		method Method
		comp   config.Compression
	}{
		{MethodBind, config.CompressionNone},
		{MethodStream, config.CompressionNone}, // compressed on the wire, stored plain
		{MethodStream, config.CompressionZstd},
		{MethodArchive, config.CompressionGzip},
		{MethodBind, config.CompressionGzip}, // restored by the block index, the helper's too
	}
	for _, tc := range cases {
		t.Run(string(tc.method)+"/"+string(tc.comp), func(t *testing.T) {
			f := newFixture(t, fixtureOpts{compression: tc.comp})
			data, other := f.volumeDir(f.vols[0]), f.volumeDir(f.vols[1])
			leftOut := fillTree(t, data)
			os.WriteFile(filepath.Join(other, "note"), []byte("other volume"), 0o600)
			want := without(snapshot(t, data), leftOut)
			wantOther := snapshot(t, other)

			res := f.backup(tc.method)
			f.noHelpers()
			if res.Method != tc.method {
				t.Errorf("method %s", res.Method)
			}
			a := res.Archive
			if filepath.Dir(a.Path) != f.store || !strings.HasSuffix(a.Name, Ext(tc.comp)) {
				t.Errorf("archive %s", a.Path)
			}
			fi, err := os.Stat(a.Path)
			if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != a.Size {
				t.Errorf("archive file: %v %v", fi, err)
			}
			m, err := ReadManifest(a.Path + ".json")
			if err != nil {
				t.Fatal(err)
			}
			if m.Archive != a.Name || m.Server != "web1" || m.Version != "test" || len(m.Volumes) != 2 || m.Volumes[0].Files != 8 || m.Files != 9 || m.Method != string(tc.method) {
				t.Errorf("manifest %+v", m)
			}
			var problems []string
			for _, p := range m.Problems {
				problems = append(problems, p.Path)
			}
			for _, p := range leftOut {
				// The engine's archive endpoint leaves sockets out by itself.
				if !slices.Contains(problems, p) && !(tc.method == MethodArchive && p == "app.sock") {
					t.Errorf("problem for %s not reported: %v", p, m.Problems)
				}
			}
			sum, err := Verify(a, nil)
			if err != nil || sum.SHA256 != m.SHA256 {
				t.Fatalf("verify: %v", err)
			}
			// A compressed archive's manifest indexes its blocks, and the check reads it by that index.
			if c := indexable(tc.comp); c != validBlocks(m.Blocks, a.Size) || c != sum.Indexed {
				t.Errorf("block index %v (indexed read %v) for a %s archive of %d bytes", m.Blocks, sum.Indexed, tc.comp, a.Size)
			}

			mess(t, data)
			os.WriteFile(filepath.Join(other, "note"), []byte("changed"), 0o600)
			// The restore takes the backup's path where a restore has it: the stream (an uncompressed
			// archive compressed on the wire again), else the bind mount.
			ro, wantMethod := RestoreOptions{Options: f.opts}, MethodBind
			if tc.method == MethodStream {
				ro.Method, wantMethod = MethodStream, MethodStream
			}
			rr, err := Restore(t.Context(), f.cli, f.settings, "web1", ro)
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			f.noHelpers()
			if !rr.Verified || len(rr.Volumes) != 2 || rr.Archive.Name != a.Name {
				t.Errorf("restore result %+v", rr)
			}
			if rr.Method != wantMethod {
				t.Errorf("restored by %s, want %s", rr.Method, wantMethod)
			}
			sameTree(t, "data after restore", without(snapshot(t, data), leftOut), want)
			sameTree(t, "other after restore", snapshot(t, other), wantOther)
		})
	}
}

func TestRestoreCreatesMissingVolumeWithLabels(t *testing.T) {
	f := newFixture(t, fixtureOpts{compression: config.CompressionZstd})
	os.WriteFile(filepath.Join(f.volumeDir(f.vols[1]), "note"), []byte("hello"), 0o640)
	want := snapshot(t, f.volumeDir(f.vols[1]))
	f.backup(MethodAuto)
	if err := f.cli.RemoveVolume(t.Context(), f.vols[1]); err != nil {
		t.Fatal(err)
	}
	rr, err := f.restore(RestoreOptions{Volumes: []string{f.vols[1]}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rr.Created, []string{f.vols[1]}) {
		t.Errorf("created %v", rr.Created)
	}
	vols, _ := f.cli.ListVolumes(t.Context())
	for _, v := range vols {
		if v.Name == f.vols[1] && (v.Labels[labels.Owner] != labels.Bee2d || v.Labels[labels.Server] != "web1" || v.Labels[labels.Prefix] != f.prefix) {
			t.Errorf("labels %v", v.Labels)
		}
	}
	sameTree(t, "recreated volume", snapshot(t, f.volumeDir(f.vols[1])), want)
	if _, err := f.restore(RestoreOptions{Volumes: []string{"nope"}}); err == nil || !strings.Contains(err.Error(), "holds no volume nope") {
		t.Errorf("unknown volume: %v", err)
	}
}

// startApp runs a sleeper as bee2d's application name, mounting the data volume, and returns its id.
func (f *fixture) startApp(name string, labels map[string]string) string {
	f.t.Helper()
	img := testdocker.Sleeper(f.t, f.cli)
	id, err := f.cli.CreateContainer(f.t.Context(), dockerx.ContainerSpec{
		Name: name, Image: img, Binds: []string{f.vols[0] + ":/data"}, Labels: labels,
		// No network: the tests need none, and do not depend on the engine's default bridge.
		Network: "none",
	})
	if err != nil {
		f.t.Fatal(err)
	}
	if err := f.cli.StartContainer(f.t.Context(), id); err != nil {
		f.t.Fatal(err)
	}
	return id
}

func (f *fixture) running(name string) bool {
	f.t.Helper()
	list, _ := f.cli.ListContainers(f.t.Context())
	for _, c := range list {
		if c.Name == name {
			return c.Running()
		}
	}
	return false
}

func appLabels(prefix, name string) map[string]string {
	return map[string]string{labels.Owner: labels.Bee2d, labels.Prefix: prefix, labels.Server: "web1", labels.Kind: string(config.KindApp),
		labels.Name: name, "io.bee2d.spec-hash": "x"}
}

// stop: applications are stopped for a backup and started again; a restore stops the applications that mount
// the volume and starts them again, and refuses while a container bee2d does not manage uses it.
func TestApplicationsStoppedAndStartedAgain(t *testing.T) {
	f := newFixture(t, fixtureOpts{
		extra: "      stop: [db]",
		apps:  "applications:\n  db:\n    server: web1\n    image: x\n    volumes: [\"data:/data\"]\n",
	})
	app := config.ContainerName(f.prefix, config.KindApp, "db")
	f.startApp(app, appLabels(f.prefix, "db"))
	res := f.backup(MethodAuto)
	if !slices.Equal(res.Stopped, []string{app}) || !slices.Equal(res.Archive.Manifest.Stopped, []string{app}) {
		t.Errorf("stopped %v", res.Stopped)
	}
	if !f.running(app) {
		t.Errorf("%s not running after the backup", app)
	}
	rr, err := f.restore(RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rr.Stopped, []string{app}) || !f.running(app) {
		t.Errorf("restore stopped %v; running after: %v", rr.Stopped, f.running(app))
	}

	os.WriteFile(filepath.Join(f.volumeDir(f.vols[0]), "live"), []byte("x"), 0o644)
	before := snapshot(t, f.volumeDir(f.vols[0]))
	foreign := f.prefix + "-by-hand"
	f.startApp(foreign, nil)
	_, err = f.restore(RestoreOptions{})
	if err == nil || !strings.Contains(err.Error(), foreign) || !strings.Contains(err.Error(), "does not manage") {
		t.Fatalf("restore under a foreign container: %v", err)
	}
	sameTree(t, "volume after the refused restore", snapshot(t, f.volumeDir(f.vols[0])), before)
	if !f.running(app) || !f.running(foreign) {
		t.Error("containers stopped by a refused restore")
	}
}

// Hostile archives are refused before anything changes: the volume stays, the applications keep running.
func TestRestoreRefusesHostileArchivesOnEngine(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	data := f.volumeDir(f.vols[0])
	os.WriteFile(filepath.Join(data, "mine"), []byte("keep me"), 0o644)
	before := snapshot(t, data)
	os.MkdirAll(f.store, 0o700)
	good := bee2Archive(t)
	cases := []struct {
		name    string
		archive []byte
		sha     string // manifest checksum, "" for none
		want    string
	}{
		{"escaping path", tarOf(t, dirEnt("volumes/"+f.vols[0]+"/"), fileEnt("volumes/"+f.vols[0]+"/../../x", "x")), "", "path with .."},
		{"escaping link", tarOf(t, dirEnt("volumes/"+f.vols[0]+"/"), symEnt("volumes/"+f.vols[0]+"/l", "../../../etc")), "", "points outside its volume"},
		{"truncated", good[:len(good)-1500], "", "truncated"},
		{"wrong checksum", good, strings.Repeat("0", 64), "sha256 is"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := int64(1000 + i)
			name := ArchiveName(ts, config.CompressionNone)
			if err := os.WriteFile(filepath.Join(f.store, name), tc.archive, 0o600); err != nil {
				t.Fatal(err)
			}
			if tc.sha != "" {
				writeManifest(f.store, &Manifest{Format: ManifestFormat, Archive: name, SHA256: tc.sha})
			}
			_, err := f.restore(RestoreOptions{At: ts})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), name) {
				t.Fatalf("err = %v, want one naming %s and saying %q", err, name, tc.want)
			}
			sameTree(t, "volume", snapshot(t, data), before)
			f.noHelpers()
		})
	}
}

// A Bee2 archive (plain tar, volumes/ first, no manifest) restores; its checksum cannot be verified.
func TestBee2ArchiveRestores(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	v := f.vols[0]
	os.MkdirAll(f.store, 0o700)
	archive := tarOf(t,
		dirEnt("volumes/"), dirEnt("volumes/"+v+"/"),
		fileEnt("volumes/"+v+"/index.html", "<h1>bee2</h1>\n"),
		dirEnt("volumes/"+v+"/css/"), fileEnt("volumes/"+v+"/css/site.css", "body{}\n"),
		symEnt("volumes/"+v+"/home.html", "index.html"))
	os.WriteFile(filepath.Join(f.store, "1511928000-volumes.tar"), archive, 0o600)
	os.WriteFile(filepath.Join(f.volumeDir(v), "stale"), []byte("x"), 0o644)
	rr, err := f.restore(RestoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Verified || rr.Archive.Name != "1511928000-volumes.tar" {
		t.Errorf("result %+v", rr)
	}
	got := snapshot(t, f.volumeDir(v))
	var names []string
	for k := range got {
		names = append(names, k)
	}
	slices.Sort(names)
	if strings.Join(names, " ") != " css css/site.css home.html index.html" || got["index.html"].MTime != fixedTime.Unix() {
		t.Errorf("volume holds %q", names)
	}
}

// A leftover helper from an interrupted run (Bee2's blocking bug) is removed by the next run; a container
// with that name that bee2d did not make is left alone and stops the run.
func TestLeftoverHelperRemoved(t *testing.T) {
	f := newFixture(t, fixtureOpts{})
	name := HelperName(f.prefix, "backup", "web1")
	h, err := prepareHelper(t.Context(), f.cli, f.prefix, f.opts.Helper, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.cli.CreateHelper(t.Context(), dockerx.HelperSpec{Name: name, Image: h.Image, Cmd: []string{"x"},
		Labels: helperLabels(f.prefix, "web1", "backup", nil)}); err != nil {
		t.Fatal(err)
	}
	res := f.backup(MethodAuto)
	if !slices.Contains(res.Leftovers, name) {
		t.Errorf("leftovers %v", res.Leftovers)
	}
	f.noHelpers()

	if _, err := f.cli.CreateHelper(t.Context(), dockerx.HelperSpec{Name: name, Image: h.Image, Cmd: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	_, err = Run(t.Context(), f.cli, f.settings, "web1", f.opts)
	if err == nil || !strings.Contains(err.Error(), "did not create") {
		t.Fatalf("err = %v", err)
	}
}

// A backup cancelled midway (the daemon's shutdown past its grace) leaves no partial file, no final file and
// no helper, and the applications it stopped run again.
func TestCancelledBackupCleansUp(t *testing.T) {
	f := newFixture(t, fixtureOpts{compression: config.CompressionGzip})
	writeRandom(t, filepath.Join(f.volumeDir(f.vols[0]), "big"), 256<<20)
	ctx, cancel := context.WithCancel(t.Context())
	o := f.opts
	o.Method = MethodStream
	// Cancelled once the partial file holds something: midway, whatever the machine's speed.
	go func() {
		for ctx.Err() == nil {
			if partial(t, f.store) > 1<<20 {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err := Run(ctx, f.cli, f.settings, "web1", o)
	cancel()
	if err == nil {
		t.Fatal("a cancelled backup succeeded")
	}
	entries, _ := os.ReadDir(f.store)
	for _, e := range entries {
		if e.Name() != lockName {
			t.Errorf("left in the storage directory: %s", e.Name())
		}
	}
	f.noHelpers()
}

// writeRandom writes n bytes that do not compress.
func writeRandom(t *testing.T, path string, n int64) {
	t.Helper()
	fh, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	buf := make([]byte, 1<<20)
	for n > 0 {
		randRead(buf)
		m := min(int64(len(buf)), n)
		fh.Write(buf[:m])
		n -= m
	}
}

// A bee2d process killed in the middle of a backup leaves nothing under a final name and the older archives
// intact; the next run removes what it left (the partial file and the helper) and succeeds.
func TestKilledBackupLeavesNoFinalFile(t *testing.T) {
	f := newFixture(t, fixtureOpts{compression: config.CompressionGzip})
	os.WriteFile(filepath.Join(f.volumeDir(f.vols[0]), "small"), []byte("first"), 0o644)
	first := f.backup(MethodAuto)
	writeRandom(t, filepath.Join(f.volumeDir(f.vols[0]), "big"), 512<<20)

	cmd := exec.Command(f.opts.Helper, "backup", "-c", f.settings.File, "web1", "--helper", f.opts.Helper)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if partial(t, f.store) > 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the backup wrote no partial file")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	list, _ := List(f.store)
	if len(list) != 1 || list[0].Name != first.Archive.Name {
		t.Fatalf("archives after the kill: %+v", list)
	}
	if _, err := Verify(list[0], nil); err != nil {
		t.Fatalf("the older archive: %v", err)
	}
	res := f.backup(MethodAuto)
	var tmp, helper bool
	for _, l := range res.Leftovers {
		tmp = tmp || strings.HasSuffix(l, ".tmp")
		helper = helper || l == HelperName(f.prefix, "backup", "web1")
	}
	if !tmp || !helper {
		t.Errorf("leftovers removed: %v", res.Leftovers)
	}
	if _, err := Verify(res.Archive, nil); err != nil {
		t.Error(err)
	}
	f.noHelpers()
}

// partial returns the size of the temporary archive in dir, 0 when there is none.
func partial(t *testing.T, dir string) int64 {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if tempName.MatchString(e.Name()) && !strings.HasSuffix(e.Name(), ".json.tmp") {
			if fi, err := e.Info(); err == nil {
				return fi.Size()
			}
		}
	}
	return 0
}

// A storage directory that fills up gives a clear error, leaves no partial file and keeps the older archives,
// by both data paths.
func TestStorageFull(t *testing.T) {
	for _, method := range []Method{MethodBind, MethodStream} {
		t.Run(string(method), func(t *testing.T) {
			requireRoot(t)
			store := filepath.Join(t.TempDir(), "tmpfs")
			os.MkdirAll(store, 0o700)
			if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", store).CombinedOutput(); err != nil {
				testdocker.Need(t, fmt.Sprintf("cannot mount a tmpfs: %v: %s", err, out))
			}
			t.Cleanup(func() { exec.Command("umount", store).Run() })
			f := newFixture(t, fixtureOpts{storage: store})
			os.WriteFile(filepath.Join(f.volumeDir(f.vols[0]), "small"), []byte("fits"), 0o644)
			first := f.backup(method)
			writeRandom(t, filepath.Join(f.volumeDir(f.vols[0]), "big"), 4<<20)
			o := f.opts
			o.Method = method
			_, err := Run(t.Context(), f.cli, f.settings, "web1", o)
			if err == nil || !strings.Contains(err.Error(), "storage directory "+f.store+" is full") {
				t.Fatalf("err = %v", err)
			}
			list, _ := List(f.store)
			if len(list) != 1 || list[0].Name != first.Archive.Name {
				t.Fatalf("archives: %+v", list)
			}
			if _, err := Verify(list[0], nil); err != nil {
				t.Error(err)
			}
			if n := partial(t, f.store); n != 0 {
				t.Errorf("partial file of %d bytes left", n)
			}
			f.noHelpers()
		})
	}
}

// Retention runs after a successful backup and removes only bee2d's own archives.
func TestRetentionAfterBackup(t *testing.T) {
	f := newFixture(t, fixtureOpts{extra: "      retain: {last: 2}"})
	os.MkdirAll(f.store, 0o700)
	os.WriteFile(filepath.Join(f.store, "100-volumes.tar"), bee2Archive(t), 0o600)
	var names []string
	now := time.Now()
	for i := range 3 {
		o := f.opts
		o.Now = func() time.Time { return now.Add(time.Duration(i) * time.Second) }
		res, err := Run(t.Context(), f.cli, f.settings, "web1", o)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, res.Archive.Name)
		if i == 2 && !slices.Equal(res.Pruned, names[:1]) {
			t.Errorf("pruned %v, want %v", res.Pruned, names[:1])
		}
	}
	list, _ := List(f.store)
	var left []string
	for _, a := range list {
		left = append(left, a.Name)
	}
	if !slices.Equal(left, []string{"100-volumes.tar", names[1], names[2]}) {
		t.Errorf("left %v", left)
	}
}

// Over TCP with mutual TLS, as to a remote server, the archive travels through the helper's attach stream,
// and a restore sends it back the same way: the round trip keeps the tree as on the local engine.
func TestRoundTripOverTLS(t *testing.T) {
	requireRoot(t)
	e, certs := testdocker.StartTLSEngine(t)
	cli := e.Client(t)
	dir := t.TempDir()
	yml := fmt.Sprintf(`servers:
  web1:
    docker:
      host: %s
      tls: {ca: %s, cert: %s, key: %s}
docker:
  prefix: remote
  backup:
    web1:
      storage_dir: store
      volumes: [site]
      compression: zstd
`, e.TCPHost, certs.CAFile, certs.ClientCert, certs.ClientKey)
	os.WriteFile(filepath.Join(dir, "settings.yml"), []byte(yml), 0o644)
	s, err := config.Load(filepath.Join(dir, "settings.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.CreateVolume(t.Context(), "site", nil); err != nil {
		t.Fatal(err)
	}
	data, err := cli.VolumeMountpoint(t.Context(), "site")
	if err != nil {
		t.Fatal(err)
	}
	leftOut := fillTree(t, data)
	want := without(snapshot(t, data), leftOut)

	remote, err := dockerx.Connect(t.Context(), dockerx.Endpoint{Host: e.TCPHost,
		TLS: &dockerx.TLSFiles{CA: certs.CAFile, Cert: certs.ClientCert, Key: certs.ClientKey}})
	if err != nil {
		t.Fatal(err)
	}
	defer remote.Close()
	opts := Options{Version: "test", Helper: staticBee2d(t)}
	res, err := Run(t.Context(), remote, s, "web1", opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Method != MethodStream {
		t.Errorf("method %s over TCP", res.Method)
	}
	if _, err := Verify(res.Archive, nil); err != nil {
		t.Fatal(err)
	}
	mess(t, data)
	rr, err := Restore(t.Context(), remote, s, "web1", RestoreOptions{Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Method != MethodStream || !rr.Verified {
		t.Errorf("restore %+v", rr)
	}
	sameTree(t, "restored over TLS", without(snapshot(t, data), leftOut), want)
}
