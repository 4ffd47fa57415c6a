package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// decoder walks yaml.Nodes by hand so that every problem is reported with its place, not only the first.
type decoder struct {
	file string
	opt  Options
	errs ErrorList

	// Kept for the cross-checks that need the whole file.
	svcs            []*svcMeta
	backupMeta      []backupMeta
	syncMeta        []syncMeta
	dockerfiles     string
	dockerfilesNode *yaml.Node
	secretsDir      string
	secretsDirNode  *yaml.Node
	sections        []sectionMeta
	stateFileNode   *yaml.Node
	pgpID           *yaml.Node
	firstSecret     *yaml.Node // the first database value, where a hash key problem is reported
	warnings        []Warning

	// secretsDirOK is false when a relative secrets_dir leaves the repository checkout; secretsEach is set
	// when each secret is to be checked against the checkout (see checkRootSecretsDir).
	secretsDirOK, secretsEach bool

	// root is the document; aliased holds the nodes an alias refers to (made on first use).
	root    *yaml.Node
	aliased map[*yaml.Node]bool

	// work counts mapping entries and JSON values produced. Aliases and merge keys can make a small file expand
	// exponentially; past maxWork the file is refused instead.
	work      int
	exhausted *Error
}

const maxWork = 1_000_000

// spend charges n units of work and reports, once, when the budget is gone.
func (d *decoder) spend(n int, at *yaml.Node, path string) bool {
	d.work += n
	if d.work <= maxWork {
		return true
	}
	if d.exhausted == nil {
		d.errorf(at, path, "the settings expand to too much data through aliases and merges")
		d.exhausted = d.errs[len(d.errs)-1]
	}
	return false
}

func (d *decoder) errorAt(line, col int, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{
		File: d.file,
		Line: max(line, 1),
		Col:  max(col, 1),
		Path: path,
		Msg:  fmt.Sprintf(format, args...),
	})
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.errorAt(n.Line, n.Column, path, format, args...)
}

// document parses data into the root node of its single YAML document; nil when there is none or it cannot be
// parsed, with the reason recorded.
func (d *decoder) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	switch err := safeDecode(dec, &doc); {
	case errors.Is(err, io.EOF):
		d.errorAt(1, 1, "", "empty settings file")
		return nil
	case err != nil:
		d.syntaxError(data, err)
		return nil
	}
	var next yaml.Node
	switch err := safeDecode(dec, &next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		d.syntaxError(data, err)
		return nil
	default:
		d.errorAt(next.Line, next.Column, "", "more than one YAML document; settings are one document")
		return nil
	}
	if len(doc.Content) == 0 {
		d.errorAt(1, 1, "", "empty settings file")
		return nil
	}
	root := doc.Content[0]
	if !d.acyclic(root) {
		return nil
	}
	d.root = root
	return root
}

// safeDecode turns a panic inside the YAML library into an error: a malformed file must never stop the daemon.
func safeDecode(dec *yaml.Decoder, n *yaml.Node) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: internal error: %v", r)
		}
	}()
	return dec.Decode(n)
}

var yamlLine = regexp.MustCompile(`^line (\d+): `)

// syntaxError records a YAML syntax error. The library only reports a line, and not always the right one, so the
// place is found again by parsing ever longer prefixes of the file until one fails with the same message.
func (d *decoder) syntaxError(data []byte, err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	reported := 0
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		reported, _ = strconv.Atoi(m[1])
		msg = msg[len(m[0]):]
	}
	line, col := locateSyntaxError(data, msg)
	if line == 0 {
		line, col = reported, 1
	}
	d.errorAt(line, col, "", "syntax error: %s", msg)
}

// locateSyntaxError returns the 1-based line and column where parsing data first fails with msg, or 0, 0.
func locateSyntaxError(data []byte, msg string) (line, col int) {
	failsAt := func(n int) bool {
		err := firstError(data[:n])
		if err == nil {
			return false
		}
		m := strings.TrimPrefix(err.Error(), "yaml: ")
		if loc := yamlLine.FindStringIndex(m); loc != nil {
			m = m[loc[1]:]
		}
		return m == msg
	}
	// Line ends: prefixes made of whole lines.
	var ends []int
	for i, c := range data {
		if c == '\n' {
			ends = append(ends, i+1)
		}
	}
	if len(ends) == 0 || ends[len(ends)-1] != len(data) {
		ends = append(ends, len(data))
	}
	// Once the prefix holds the faulty place, the parser meets it the same way, so the first failing prefix can be
	// found by bisection.
	k := sort.Search(len(ends), func(i int) bool { return failsAt(ends[i]) })
	if k == len(ends) {
		return 0, 0
	}
	start := 0
	if k > 0 {
		start = ends[k-1]
	}
	text := data[start:ends[k]]
	text = bytes.TrimSuffix(text, []byte("\n"))
	c := sort.Search(len(text), func(i int) bool { return failsAt(start + i + 1) })
	if c == len(text) {
		// The problem shows only at the line break.
		return k + 1, utf8.RuneCount(text) + 1
	}
	return k + 1, utf8.RuneCount(text[:c]) + 1
}

// firstError parses every document of data and returns the first error, if any.
func firstError(data []byte) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := safeDecode(dec, &n)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// acyclic reports aliases that refer to a node containing them ("&a [*a]"): the YAML library builds such a
// cycle without complaint, and every later walk would loop.
func (d *decoder) acyclic(root *yaml.Node) bool {
	const (
		active = 1
		done   = 2
	)
	state := map[*yaml.Node]int{}
	ok := true
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		switch state[n] {
		case active:
			return
		case done:
			return
		}
		state[n] = active
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			if state[n.Alias] == active {
				d.errorf(n, "", "alias *%s refers to a value that contains it", n.Value)
				ok = false
			} else {
				walk(n.Alias)
			}
		}
		for _, c := range n.Content {
			walk(c)
		}
		state[n] = done
	}
	walk(root)
	return ok
}

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// describe names what a node is, for "expected X, got Y" messages.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!str":
			return "a string"
		case "!!int":
			return "an integer"
		case "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		default:
			return "a " + strings.TrimLeft(n.ShortTag(), "!") + " value"
		}
	}
	return "an unknown value"
}

func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func joinPath(path, key string) string {
	key = shown(key)
	if path == "" {
		return key
	}
	return path + "." + key
}

// shown is a name from the file as a message shows it: as written, or quoted when it holds a character that
// is not printable (a line break, a NUL), so that one problem stays on one line of output.
func shown(name string) string {
	if strings.IndexFunc(name, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.Quote(name)
	}
	return name
}

func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// pair is one key of a mapping with its value.
type pair struct {
	Key   string
	KNode *yaml.Node
	Val   *yaml.Node // alias already followed
}

// pairs returns the entries of a mapping in file order. Merge keys (<<: *base) are expanded in place; keys given
// explicitly win over merged ones. A duplicate key or a key that is not a scalar is an error.
func (d *decoder) pairs(m *yaml.Node, path string) []pair {
	if !d.spend(len(m.Content)/2, m, path) {
		return nil
	}
	explicit := map[string]*yaml.Node{}
	var out []pair
	seen := map[string]bool{}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := deref(m.Content[i])
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "a key must be a scalar, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			continue
		}
		if first, dup := explicit[k.Value]; dup {
			d.errorf(k, joinPath(path, k.Value), "duplicate key %q (first at line %d)", k.Value, first.Line)
			continue
		}
		explicit[k.Value] = k
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := deref(m.Content[i]), m.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			continue
		}
		if k.ShortTag() != "!!merge" {
			if explicit[k.Value] == k && !seen[k.Value] {
				seen[k.Value] = true
				out = append(out, pair{Key: k.Value, KNode: k, Val: deref(v)})
			}
			continue
		}
		for _, p := range d.merged(v, path) {
			if explicit[p.Key] == nil && !seen[p.Key] {
				seen[p.Key] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// merged returns the entries a merge key brings in: a mapping or a list of mappings, earlier ones winning.
func (d *decoder) merged(v *yaml.Node, path string) []pair {
	v = deref(v)
	switch v.Kind {
	case yaml.MappingNode:
		return d.pairs(v, path)
	case yaml.SequenceNode:
		var out []pair
		for _, item := range v.Content {
			item = deref(item)
			if item.Kind != yaml.MappingNode {
				d.errorf(item, path, "a merge (<<) takes a mapping or a list of mappings, got %s", describe(item))
				continue
			}
			out = append(out, d.pairs(item, path)...)
		}
		return out
	}
	d.errorf(v, path, "a merge (<<) takes a mapping or a list of mappings, got %s", describe(v))
	return nil
}

// mapping returns the entries of n, nil for null, and reports anything else.
func (d *decoder) mapping(n *yaml.Node, path string) ([]pair, bool) {
	n = deref(n)
	switch {
	case n.Kind == yaml.MappingNode:
		return d.pairs(n, path), true
	case isNull(n):
		return nil, true
	}
	d.errorf(n, path, "expected a mapping, got %s", describe(n))
	return nil, false
}

// unknownKey reports a key the schema does not have, suggesting the nearest known one.
func (d *decoder) unknownKey(p pair, path string, known []string) {
	d.errorf(p.KNode, joinPath(path, p.Key), "unknown key %q%s", p.Key, didYouMean(p.Key, known))
}

// str returns a string value; null means not set.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	n = deref(n)
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		d.errorf(n, path, "expected a string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

// boolean returns a boolean value; null means false.
func (d *decoder) boolean(n *yaml.Node, path string) bool {
	n = deref(n)
	if isNull(n) {
		return false
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
		d.errorf(n, path, "expected a boolean (true or false), got %s", describe(n))
		return false
	}
	return b
}

// integer returns an integer value; null means not set.
func (d *decoder) integer(n *yaml.Node, path string) (int64, bool) {
	n = deref(n)
	if isNull(n) {
		return 0, false
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		d.errorf(n, path, "expected an integer, got %s", describe(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		d.errorf(n, path, "integer %s is out of range", n.Value)
		return 0, false
	}
	return v, true
}

// list returns the items of a sequence (aliases followed); null is an empty list.
func (d *decoder) list(n *yaml.Node, path, what string) ([]*yaml.Node, bool) {
	n = deref(n)
	switch {
	case n.Kind == yaml.SequenceNode:
		items := make([]*yaml.Node, len(n.Content))
		for i, c := range n.Content {
			items[i] = deref(c)
		}
		return items, true
	case isNull(n):
		return nil, true
	}
	d.errorf(n, path, "expected a list of %s, got %s", what, describe(n))
	return nil, false
}
