package layers

import (
	"fmt"
	"slices"
	"strings"
)

// rule forbids some packages to others.
type rule struct {
	name string
	why  string
	// from are the packages the rule binds, but for except.
	from, except []string
	// imports may not be imported by them; deps may not be anywhere below them.
	imports, deps []string
	// tests checks imports in their _test.go files too.
	tests bool
}

// exception lets one package of a rule import one package in the files named.
type exception struct {
	rule, from, imports string
	files               []string
	why                 string
}

// pkg is one package as the rules see it: each import with the files that have it. Outside the module
// the files are not read and the lists are empty.
type pkg struct {
	path                 string
	imports, testImports map[string][]string
}

// world is every package of the module and everything it depends on, by import path.
type world map[string]*pkg

// violation is one broken rule, or an exception that no longer applies (rule stale).
type violation struct {
	rule, why string
	pkg       string
	// imp is the forbidden import; for a dependency, the import that leads to it along path.
	imp   string
	files []string
	path  []string // for a dependency: imp, ..., the forbidden package
	more  int      // for a dependency: further forbidden packages reached through imp
	note  string   // for a stale exception: why it is stale
}

// stale is the rule of the violations that are exceptions excusing nothing.
const stale = "stale"

func (v violation) String() string {
	var b strings.Builder
	switch {
	case v.rule == stale:
		fmt.Fprintf(&b, "stale exception (%s imports %s in %s: %s): %s; delete it from the exceptions table",
			short(v.pkg), short(v.imp), strings.Join(v.files, ", "), v.why, v.note)
		return b.String()
	case len(v.path) > 1:
		fmt.Fprintf(&b, "%s depends on %s through %s -> %s (it imports %s",
			short(v.pkg), short(v.path[len(v.path)-1]), short(v.pkg), shortAll(v.path, " -> "), short(v.imp))
		if len(v.files) > 0 {
			fmt.Fprintf(&b, " in %s", strings.Join(v.files, ", "))
		}
		b.WriteString(")")
	default:
		fmt.Fprintf(&b, "%s imports %s", short(v.pkg), short(v.imp))
		if len(v.files) > 0 {
			fmt.Fprintf(&b, " in %s", strings.Join(v.files, ", "))
		}
	}
	if v.more > 0 {
		fmt.Fprintf(&b, "; %d more forbidden packages lie behind %s", v.more, short(v.imp))
	}
	fmt.Fprintf(&b, ": breaks rule %s: %s", v.rule, v.why)
	return b.String()
}

// short names the module's packages without the module path.
func short(p string) string {
	if s, ok := strings.CutPrefix(p, m); ok {
		return s
	}
	return p
}

func shortAll(ps []string, sep string) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = short(p)
	}
	return strings.Join(out, sep)
}

// matches tells whether path is pattern, or below it when pattern ends in /... .
func matches(pattern, path string) bool {
	if base, ok := strings.CutSuffix(pattern, "/..."); ok {
		return path == base || strings.HasPrefix(path, base+"/")
	}
	return path == pattern
}

func matchesAny(patterns []string, path string) bool {
	return slices.ContainsFunc(patterns, func(p string) bool { return matches(p, path) })
}

// check applies the rules to w and returns what breaks them, and the exceptions that excuse nothing any more.
func check(w world, rules []rule, excs []exception) []violation {
	var out []violation
	paths := make([]string, 0, len(w))
	for p := range w {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, r := range rules {
		// excused tells whether the rule lets from import imp in all of files.
		excused := func(from, imp string, files []string) bool {
			var allowed []string
			for _, e := range excs {
				if e.rule == r.name && e.from == from && e.imports == imp {
					allowed = append(allowed, e.files...)
				}
			}
			return len(allowed) > 0 && len(files) > 0 &&
				!slices.ContainsFunc(files, func(f string) bool { return !slices.Contains(allowed, f) })
		}
		for _, path := range paths {
			if !matchesAny(r.from, path) || matchesAny(r.except, path) {
				continue
			}
			p := w[path]
			direct := map[string]bool{} // forbidden imports reported, so that deps do not repeat them
			for _, imps := range []map[string][]string{p.imports, testsIf(r.tests, p)} {
				for _, imp := range sortedKeys(imps) {
					if matchesAny(r.imports, imp) && !excused(path, imp, imps[imp]) {
						direct[imp] = true
						out = append(out, violation{rule: r.name, why: r.why, pkg: path, imp: imp, files: imps[imp]})
					}
				}
			}
			if len(r.deps) > 0 {
				out = append(out, forbiddenDeps(w, r, path, direct, excused)...)
			}
		}
	}
	for _, e := range excs {
		v := violation{rule: stale, why: e.why, pkg: e.from, imp: e.imports, files: e.files}
		p := w[e.from]
		listed := func(f string) bool { return slices.Contains(e.files, f) }
		switch {
		case !slices.ContainsFunc(rules, func(r rule) bool { return r.name == e.rule }):
			v.note = fmt.Sprintf("there is no rule %q", e.rule)
		case p == nil:
			v.note = "there is no such package"
		case !slices.ContainsFunc(p.imports[e.imports], listed) && !slices.ContainsFunc(p.testImports[e.imports], listed):
			v.note = "none of these files has that import any more"
		default:
			continue
		}
		out = append(out, v)
	}
	return out
}

// forbiddenDeps walks what from depends on, leaving out the imports the rule excuses or that check already
// reported, and reports the forbidden packages it reaches: one violation for each import of from that leads
// to some, each forbidden package counted once, through the first import (in path order) that reaches it.
func forbiddenDeps(w world, r rule, from string, direct map[string]bool, excused func(from, imp string, files []string) bool) []violation {
	parent := map[string]string{from: ""}
	queue := []string{from}
	byHop := map[string]*violation{}
	var hops []string
	for len(queue) > 0 {
		cur := queue[0]
		queue = queue[1:]
		p := w[cur]
		if p == nil {
			continue // outside the world: go list leaves out nothing a package depends on, fabrications may
		}
		for _, imp := range sortedKeys(p.imports) {
			if _, seen := parent[imp]; seen || excused(cur, imp, p.imports[imp]) || cur == from && direct[imp] {
				continue // an import already reported as forbidden is not walked: what lies behind it shows once it goes
			}
			parent[imp] = cur
			queue = append(queue, imp)
			if !matchesAny(r.deps, imp) {
				continue
			}
			path := []string{imp}
			for q := cur; q != from; q = parent[q] {
				path = append([]string{q}, path...)
			}
			hop := path[0]
			if v := byHop[hop]; v != nil {
				v.more++
				continue
			}
			byHop[hop] = &violation{rule: r.name, why: r.why, pkg: from, imp: hop, files: w[from].imports[hop], path: path}
			hops = append(hops, hop)
		}
	}
	out := make([]violation, 0, len(hops))
	for _, h := range hops {
		out = append(out, *byHop[h])
	}
	return out
}

func testsIf(tests bool, p *pkg) map[string][]string {
	if !tests {
		return nil
	}
	return p.testImports
}

func sortedKeys(imports map[string][]string) []string {
	keys := make([]string, 0, len(imports))
	for k := range imports {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
