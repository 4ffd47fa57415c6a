package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// TestLayers checks the import rules on the module as it is.
func TestLayers(t *testing.T) {
	w := load(t)
	for _, r := range rules {
		for _, pattern := range r.from {
			if !hasMatch(w, pattern) {
				t.Errorf("rule %s binds %s, which matches no package: a renamed package would leave the rule empty", r.name, pattern)
			}
		}
	}
	for _, v := range check(w, rules, exceptions) {
		t.Error(v)
	}
}

func hasMatch(w world, pattern string) bool {
	for p := range w {
		if matches(pattern, p) {
			return true
		}
	}
	return false
}

// listed is what go list -json tells of a package that the rules need.
type listed struct {
	ImportPath, Dir                              string
	Module                                       *struct{ Path string }
	Imports                                      []string
	GoFiles, CgoFiles, TestGoFiles, XTestGoFiles []string
}

// load lists every package of the module and all it depends on; for the module's own packages it reads
// which file has which import.
func load(t *testing.T) world {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), "go", "list", "-deps", "-json", m+"...")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	w := world{}
	dec := json.NewDecoder(&stdout)
	for {
		var l listed
		if err := dec.Decode(&l); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		p := &pkg{path: l.ImportPath, imports: map[string][]string{}, testImports: map[string][]string{}}
		for _, imp := range l.Imports {
			p.imports[imp] = nil
		}
		if l.Module != nil && l.Module.Path+"/" == m {
			fileImports(t, l.Dir, append(l.GoFiles, l.CgoFiles...), p.imports)
			fileImports(t, l.Dir, append(l.TestGoFiles, l.XTestGoFiles...), p.testImports)
		}
		w[l.ImportPath] = p
	}
	if len(w) == 0 {
		t.Fatal("go list listed no package")
	}
	return w
}

// fileImports adds each file's imports to imports, with the file's name.
func fileImports(t *testing.T, dir string, files []string, imports map[string][]string) {
	t.Helper()
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, spec := range f.Imports {
			path, err := strconv.Unquote(spec.Path.Value)
			if err != nil {
				t.Fatalf("%s: import %s: %v", fset.Position(spec.Pos()), spec.Path.Value, err)
			}
			if path == "C" {
				continue // cgo's pseudo-package
			}
			imports[path] = append(imports[path], name)
		}
	}
}
