package main

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

var legacyCases = []struct {
	in      string
	want    legacyCommand
	wantErr string
}{
	{in: "help", want: legacyCommand{Action: "help"}},
	{in: "web1:build", want: legacyCommand{Server: "web1", Action: "build"}},
	{in: "web1:build:haproxy", want: legacyCommand{Server: "web1", Action: "build", Arg: "haproxy"}},
	{in: "web1:rebuild", want: legacyCommand{Server: "web1", Action: "rebuild"}},
	{in: "web1:rebuild:haproxy", want: legacyCommand{Server: "web1", Action: "rebuild", Arg: "haproxy"}},
	{in: "web1:run:dyject", want: legacyCommand{Server: "web1", Action: "run", Arg: "dyject"}},
	{in: "web1:restore:1511928000", want: legacyCommand{Server: "web1", Action: "restore", Arg: "1511928000"}},
	{in: "web1:backup", want: legacyCommand{Server: "web1", Action: "backup"}},
	{in: "web1", wantErr: "want SERVER:ACTION[:NAME]"},
	{in: "", wantErr: "want SERVER:ACTION[:NAME]"},
	{in: "web1:build:a:b", wantErr: "want SERVER:ACTION[:NAME]"},
	{in: ":build", wantErr: "no server"},
	{in: "web1:build:", wantErr: "empty name"},
	{in: "web1:deploy", wantErr: `unknown action "deploy"`},
	{in: "web1:backup:x", wantErr: "backup takes no name"},
}

func TestParseLegacy(t *testing.T) {
	for _, tt := range legacyCases {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseLegacy(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

// FuzzParseLegacy: whatever -d says, parseLegacy either refuses it with a one-line error that quotes it and
// returns nothing, or returns exactly what it says: one server without ":", a known action, at most one
// non-empty name (none for backup), that put back together give the input; the same each time.
func FuzzParseLegacy(f *testing.F) {
	for _, tt := range legacyCases {
		f.Add(tt.in)
	}
	f.Add("web1:run:")
	f.Add("web1::build")
	f.Add("web1:help")
	f.Add("help:build")
	f.Add("web1\n:build")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseLegacy(s)
		c2, err2 := parseLegacy(s)
		if c != c2 || (err == nil) != (err2 == nil) {
			t.Fatalf("%q parses as %+v, %v then %+v, %v", s, c, err, c2, err2)
		}
		if err != nil {
			msg := err.Error()
			if c != (legacyCommand{}) || !strings.Contains(msg, strconv.Quote(s)) || strings.ContainsAny(msg, "\n\r") {
				t.Fatalf("%q refused as %q with %+v: want one line quoting the input and nothing parsed", s, msg, c)
			}
			return
		}
		if c.Action == "help" {
			if s != "help" || c != (legacyCommand{Action: "help"}) {
				t.Fatalf("%q accepted as help: %+v", s, c)
			}
			return
		}
		back := c.Server + ":" + c.Action
		if c.Arg != "" {
			back += ":" + c.Arg
		}
		if back != s || c.Server == "" || strings.Contains(c.Server, ":") || strings.Contains(c.Arg, ":") ||
			!legacyActions[c.Action] || (c.Action == "backup" && c.Arg != "") {
			t.Fatalf("accepted %q as %+v", s, c)
		}
	})
}

// Exit codes are part of the interface: scripts and systemd read them.
func TestExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
		out  string // expected in stdout or stderr
	}{
		{args: []string{"-d", "help"}, code: 0, out: "SERVER:build"},
		{args: []string{"-c", "x.yml", "-d", "web1:deploy"}, code: 1, out: `unknown action "deploy"`},
		{args: []string{"-c", "testdata/missing.yml", "-d", "web1:build"}, code: 1, out: "missing.yml"},
		{args: []string{"-c", "../../examples/settings.yml", "-d", "local:run"}, code: 1, out: "server local has no jobs"},
		{args: []string{"-c", "../../examples/settings.yml", "-d", "local:run:nope"}, code: 1, out: `no job "nope" on server local`},
		{args: []string{"run", "-c", "../../examples/settings.yml"}, code: 1, out: "want SERVER [JOB]"},
		{args: []string{"-c", "../../examples/settings.yml", "-d", "nowhere:build"}, code: 1, out: `no server "nowhere"`},
		{args: []string{"-c", "../../examples/settings.yml", "-d", "local:build:nope"}, code: 1, out: `no application "nope"`},
		{args: []string{"version"}, code: 0, out: "bee2d "},
		{args: []string{"help"}, code: 0, out: "Usage:"},
		{args: []string{}, code: 1, out: "Usage:"},
		{args: []string{"frobnicate"}, code: 1, out: `unknown command "frobnicate"`},
		{args: []string{"plan", "--help"}, code: 0, out: "--detailed-exitcode"},
		{args: []string{"apply", "--nope"}, code: 1, out: "flag provided but not defined"},
		{args: []string{"apply"}, code: 1, out: "-c settings.yml is required"},
		{args: []string{"validate", "-c", "../../examples/settings.yml"}, code: 0, out: "ok (1 server, 2 applications, 0 jobs)"},
		{args: []string{"validate", "-c", "testdata/bad.yml"}, code: 1, out: "bad.yml:"},
		{args: []string{"backup", "-c", "../../examples/settings.yml"}, code: 1, out: "has backup settings"},
		{args: []string{"restore", "-c", "../../examples/settings.yml"}, code: 1, out: "want one SERVER"},
		{args: []string{"-c", "../../examples/settings.yml", "-d", "local:backup"}, code: 1, out: "no backup settings"},
		{args: []string{"-c", "../../examples/settings.yml", "-d", "local:restore:x"}, code: 1, out: "unix seconds"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(t.Context(), tt.args, &out, &errOut)
			all := out.String() + errOut.String()
			if code != tt.code || !strings.Contains(all, tt.out) {
				t.Errorf("exit %d (want %d), output:\n%s\nwant it to contain %q", code, tt.code, all, tt.out)
			}
		})
	}
}
