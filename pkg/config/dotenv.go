package config

import (
	"bytes"
	"strconv"
	"strings"
)

// dotenvVar is one KEY=VALUE line of an env_file.
type dotenvVar struct {
	key, value string
	line       int
}

// lineError is a problem on one line of an env_file. Its message never quotes the line: it may hold a secret.
type lineError struct {
	line int
	msg  string
}

// parseDotenv reads an env_file: KEY=VALUE lines, blank lines and # comments, an optional "export " before
// the key. A value is taken literally: no $ expansion, no inline comment (# is part of an unquoted value),
// surrounding blanks trimmed. 'single quotes' keep everything inside; "double quotes" also read \n, \r, \t,
// \" and \\. A line without = is an error: values never come from bee2d's own environment.
func parseDotenv(data []byte) ([]dotenvVar, []lineError) {
	var vars []dotenvVar
	var errs []lineError
	first := map[string]int{}
	for i, raw := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		line := strings.TrimRight(string(raw), "\r")
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
			line = strings.TrimLeft(rest, " \t")
		}
		key, val, ok := strings.Cut(line, "=")
		key = strings.TrimRight(key, " \t")
		switch {
		case !envKeyRE.MatchString(key):
			// Not quoted: a line without a proper key may be a value pasted alone.
			errs = append(errs, lineError{n, "expected KEY=VALUE, with a name of letters, digits and _ not starting with a digit"})
			continue
		case !ok:
			// Not quoted either: a lone word may well be a secret pasted without its name.
			errs = append(errs, lineError{n, "expected KEY=VALUE, found no =; write KEY= for an empty value (values are never taken from bee2d's environment)"})
			continue
		}
		value, msg := dotenvValue(strings.TrimLeft(val, " \t"))
		if msg != "" {
			errs = append(errs, lineError{n, key + ": " + msg})
			continue
		}
		if strings.IndexByte(value, 0) >= 0 {
			errs = append(errs, lineError{n, key + ": the value holds a NUL byte, which an environment cannot"})
			continue
		}
		u := strings.ToUpper(key)
		if l, dup := first[u]; dup {
			errs = append(errs, lineError{n, u + " is set twice (first at line " + strconv.Itoa(l) + ")"})
			continue
		}
		first[u] = n
		vars = append(vars, dotenvVar{key: key, value: value, line: n})
	}
	return vars, errs
}

// dotenvValue reads the value after =, or says what is wrong with it.
func dotenvValue(v string) (string, string) {
	if v == "" {
		return "", ""
	}
	switch v[0] {
	case '\'':
		end := strings.IndexByte(v[1:], '\'')
		if end < 0 {
			return "", "no closing ' (a value cannot span lines)"
		}
		if strings.TrimSpace(v[end+2:]) != "" {
			return "", "text after the closing '"
		}
		return v[1 : end+1], ""
	case '"':
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			c := v[i]
			switch {
			case c == '"':
				if strings.TrimSpace(v[i+1:]) != "" {
					return "", `text after the closing "`
				}
				return b.String(), ""
			case c == '\\' && i+1 < len(v):
				i++
				switch v[i] {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case 't':
					b.WriteByte('\t')
				case '"', '\\':
					b.WriteByte(v[i])
				default:
					b.WriteByte('\\')
					b.WriteByte(v[i])
				}
			default:
				b.WriteByte(c)
			}
		}
		return "", `no closing " (a value cannot span lines)`
	}
	return strings.TrimRight(v, " \t"), ""
}
