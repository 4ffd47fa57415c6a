package backup

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// rewrite copies the engine's archive of /volumes (from the archive endpoint) into w as bee2d writes
// archives: numeric owners, times to the second, no extended attributes, and without what a restore would
// refuse (device files, pipes, sockets, links out of their volume, a restore's leftovers), each reported.
func rewrite(r io.Reader, w io.Writer, vols []string, progress func(bytes, files int64)) (*helperResult, error) {
	tr := tar.NewReader(r)
	a := newArchiver(w)
	stats := map[string]*VolumeStats{}
	written := map[string]bool{} // regular files written, for hard links
	var skipped []string         // directories left out, with everything below
	last := time.Now()
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the engine's archive: %w", err)
		}
		vol, rel, ok, why := split(h.Name)
		if !ok {
			return nil, fmt.Errorf("the engine's archive has an entry %q: %s", h.Name, why)
		}
		if vol == "" {
			if err := a.start(h.ModTime); err != nil {
				return nil, err
			}
			continue
		}
		if !slices.Contains(vols, vol) {
			continue
		}
		st := stats[vol]
		if st == nil {
			st = &VolumeStats{Name: vol}
			a.stats = append(a.stats, st)
			stats[vol] = st
		}
		if slices.ContainsFunc(skipped, func(s string) bool { return strings.HasPrefix(vol+"/"+rel, s+"/") }) {
			continue
		}
		if rel != "" && !strings.Contains(rel, "/") && reservedName(rel) {
			a.problem(vol, rel, "left over from an interrupted restore: left out")
			skipped = append(skipped, vol+"/"+rel)
			continue
		}
		name := "volumes/" + vol + "/" + rel
		out := &tar.Header{Name: name, Mode: h.Mode & 0o7777, Uid: h.Uid, Gid: h.Gid, ModTime: h.ModTime.Truncate(time.Second)}
		switch h.Typeflag {
		case tar.TypeDir:
			out.Typeflag = tar.TypeDir
			out.Name = strings.TrimSuffix(name, "/") + "/"
			st.Dirs++
		case tar.TypeReg:
			out.Typeflag, out.Size = tar.TypeReg, h.Size
		case tar.TypeSymlink:
			if why := linkEscapes(rel, h.Linkname); why != "" {
				a.problem(vol, rel, "symlink to %q %s: left out, as restore refuses such links", h.Linkname, why)
				continue
			}
			out.Typeflag, out.Linkname = tar.TypeSymlink, h.Linkname
			st.Symlinks++
		case tar.TypeLink:
			if !written[strings.TrimPrefix(h.Linkname, "./")] {
				a.problem(vol, rel, "hard link to %q, which is not in the archive: left out", h.Linkname)
				continue
			}
			out.Typeflag, out.Linkname = tar.TypeLink, strings.TrimPrefix(h.Linkname, "./")
			st.Links++
		case tar.TypeChar, tar.TypeBlock:
			a.problem(vol, rel, "device file: left out")
			continue
		case tar.TypeFifo:
			a.problem(vol, rel, "named pipe: left out")
			continue
		default:
			a.problem(vol, rel, "entry type %q: left out", h.Typeflag)
			continue
		}
		if err := a.header(out); err != nil {
			return nil, err
		}
		if out.Typeflag == tar.TypeReg {
			n, err := a.content(tr, h.Size)
			if err != nil {
				return nil, err
			}
			if n < h.Size {
				return nil, fmt.Errorf("the engine's archive ends inside %s", name)
			}
			if err := a.zeros(blockPad(h.Size)); err != nil {
				return nil, err
			}
			written[name] = true
			st.Files++
			st.Bytes += h.Size
			a.files.Add(1)
		}
		if progress != nil && time.Since(last) >= time.Second {
			last = time.Now()
			progress(a.bytes.Load(), a.files.Load())
		}
	}
	for _, v := range vols {
		if stats[v] == nil {
			return nil, fmt.Errorf("the engine's archive holds no volume %s", v)
		}
	}
	if err := a.finish(); err != nil {
		return nil, err
	}
	return &helperResult{Volumes: a.volumeStats(), Problems: a.problems, ProblemsTotal: a.total}, nil
}
