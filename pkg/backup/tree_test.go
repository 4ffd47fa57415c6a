package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// node is what a round trip must keep of one file, directory or link.
type node struct {
	Type  string
	Mode  fs.FileMode
	UID   uint32
	GID   uint32
	Size  int64
	MTime int64 // seconds: tar keeps no more
	Links uint64
	SHA   string
	Link  string
}

func (n node) String() string {
	return fmt.Sprintf("%s %v %d:%d size=%d mtime=%d nlink=%d sha=%.12s link=%q", n.Type, n.Mode, n.UID, n.GID,
		n.Size, n.MTime, n.Links, n.SHA, n.Link)
}

// snapshot lists a tree with a hash of each file, keyed by path ("" is the root itself).
func snapshot(t testing.TB, root string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if rel == "." {
			rel = ""
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		n := node{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid, MTime: fi.ModTime().Unix()}
		switch {
		case fi.IsDir():
			n.Type = "dir"
		case fi.Mode().IsRegular():
			n.Type, n.Size, n.Links = "file", fi.Size(), uint64(st.Nlink)
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			n.SHA = hex.EncodeToString(sum[:])
		case fi.Mode()&fs.ModeSymlink != 0:
			n.Type = "symlink"
			n.Link, _ = os.Readlink(p)
		default:
			n.Type = "other " + fi.Mode().Type().String()
		}
		out[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree reports every difference between two snapshots.
func sameTree(t testing.TB, what string, got, want map[string]node) {
	t.Helper()
	var keys []string
	for k := range want {
		keys = append(keys, k)
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var diffs []string
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		switch {
		case !gok:
			diffs = append(diffs, fmt.Sprintf("  missing /%s (%s)", k, w))
		case !wok:
			diffs = append(diffs, fmt.Sprintf("  extra   /%s (%s)", k, g))
		case g != w:
			diffs = append(diffs, fmt.Sprintf("  /%s:\n     got %s\n    want %s", k, g, w))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s: trees differ:\n%s", what, strings.Join(diffs, "\n"))
	}
}

// withRootTimes returns got with the modification times of roots (snapshot keys) taken from want. A refused
// restore makes and removes its stage in each volume's root: a root's own time may move (when the second
// turned meanwhile), nothing in it may.
func withRootTimes(got, want map[string]node, roots ...string) map[string]node {
	for _, r := range roots {
		if n, ok := got[r]; ok {
			n.MTime = want[r].MTime
			got[r] = n
		}
	}
	return got
}

var fixedTime = time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)

// fillTree makes a tree with what a round trip must keep: nested directories with their own modes and owners,
// files of every permission including setuid, empty files, a large file, symlinks inside the tree (to a file,
// to a directory, dangling), a hard link, a long name, old times on everything. It returns the paths that a
// backup reports and leaves out (a socket, a link out of the volume).
func fillTree(t testing.TB, root string) (leftOut []string) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mk := func(rel string, mode fs.FileMode, uid, gid int, data string) {
		p := filepath.Join(root, rel)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, []byte(data), 0o600))
		must(os.Chown(p, uid, gid))
		must(os.Chmod(p, mode))
	}
	dir := func(rel string, mode fs.FileMode, uid, gid int) {
		p := filepath.Join(root, rel)
		must(os.MkdirAll(p, 0o755))
		must(os.Chown(p, uid, gid))
		must(os.Chmod(p, mode))
	}
	dir("etc", 0o755, 0, 0)
	dir("etc/private", 0o700, 1000, 1000)
	dir("data/deep/er/and/deeper", 0o750, 33, 33)
	dir("sticky", 0o777|fs.ModeSticky, 0, 0)
	dir("empty-dir", 0o711, 0, 0)
	mk("etc/config.yml", 0o644, 0, 0, "key: value\n")
	mk("etc/private/key.pem", 0o600, 1000, 1000, "-----BEGIN PRIVATE KEY-----\nsecret\n")
	mk("data/empty", 0o640, 33, 33, "")
	mk("data/deep/er/and/deeper/leaf.txt", 0o444, 33, 33, strings.Repeat("leaf ", 1000))
	mk("bin/tool", 0o755|fs.ModeSetuid, 0, 0, "#!/bin/sh\necho hi\n")
	mk("bin/group-tool", 0o750|fs.ModeSetgid, 0, 50, "#!/bin/sh\n")
	mk("big.bin", 0o644, 0, 0, strings.Repeat("0123456789abcdef", 3<<16)) // 3 MiB
	long := strings.Repeat("n", 120) + "/" + strings.Repeat("m", 150) + ".txt"
	mk(long, 0o644, 7, 8, "long name")
	must(os.Symlink("config.yml", filepath.Join(root, "etc/link-to-file")))
	must(os.Symlink("../data/deep", filepath.Join(root, "etc/link-to-dir")))
	must(os.Symlink("nowhere-yet", filepath.Join(root, "dangling")))
	must(os.Lchown(filepath.Join(root, "dangling"), 1000, 1000))
	must(os.Link(filepath.Join(root, "etc/config.yml"), filepath.Join(root, "data/hardlink.yml")))
	// Left out, with a problem each.
	must(os.Symlink("/etc/passwd", filepath.Join(root, "etc/absolute-link")))
	must(os.Symlink("../../outside", filepath.Join(root, "etc/escaping-link")))
	l, err := net.Listen("unix", filepath.Join(root, "app.sock"))
	must(err)
	t.Cleanup(func() { l.Close() })
	leftOut = []string{"app.sock", "etc/absolute-link", "etc/escaping-link"}

	// Times last, deepest first, symlinks' own included.
	var paths []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return nil
	})
	ts := unix.NsecToTimespec(fixedTime.UnixNano())
	for i := len(paths) - 1; i >= 0; i-- {
		must(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	}
	must(os.Chown(root, 1000, 1001))
	must(os.Chmod(root, 0o770))
	must(os.Chtimes(root, fixedTime, fixedTime))
	return leftOut
}

// without drops the left-out paths from a snapshot.
func without(s map[string]node, paths []string) map[string]node {
	out := map[string]node{}
	for k, v := range s {
		if !slices.Contains(paths, k) {
			out[k] = v
		}
	}
	return out
}

// mess changes a tree the way life does between a backup and a restore.
func mess(t testing.TB, root string) {
	t.Helper()
	for _, err := range []error{
		os.WriteFile(filepath.Join(root, "etc/config.yml"), []byte("changed\n"), 0o644),
		os.RemoveAll(filepath.Join(root, "data/deep")),
		os.WriteFile(filepath.Join(root, "new-file"), []byte("new"), 0o644),
		os.MkdirAll(filepath.Join(root, "new-dir/sub"), 0o755),
		os.Remove(filepath.Join(root, "dangling")),
		os.Symlink("elsewhere", filepath.Join(root, "dangling")),
		os.Chmod(filepath.Join(root, "bin/tool"), 0o700),
		os.Chown(filepath.Join(root, "etc/private/key.pem"), 0, 0),
		os.Chmod(root, 0o755),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
}
