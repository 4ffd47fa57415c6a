package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/bee2d/bee2d/pkg/reconcile"
)

const legacyUsage = `Bee2 commands: bee2d -c settings.yml -d SERVER:ACTION[:NAME]
               bee2d -c settings.yml -s SERVER|all

  SERVER:build            create every application of SERVER that has no container yet, in link
                          order; existing containers are left as they are
  SERVER:build:APP        the same for one application
  SERVER:rebuild          remove and recreate every application of SERVER with a fresh image build
  SERVER:rebuild:APP      the same for one application (its volumes are kept)
  SERVER:run[:JOB]        run the server's jobs, or one; exit with the first failing job's code
  SERVER:backup           back up the server's volumes now
  SERVER:restore[:TS]     restore the newest archive, or the one taken at TS (unix seconds)
  help                    this text

  -s SERVER               push SERVER's sync.SERVER.push entries ("local:remote") with rsync over ssh
                          as root@ its first dns.private name, with provisioner.ssh_key.private; the
                          same as bee2d sync -c settings.yml SERVER (see bee2d sync --help)
  -s all                  the same for every server that has sync entries

Exit status: 0 success or help; 1 error, an unknown action or a push that failed; for run, a failing job's
own exit code.
`

// legacyCommand is one parsed -d argument.
type legacyCommand struct {
	Server string
	Action string
	Arg    string
}

var legacyActions = map[string]bool{"build": true, "rebuild": true, "run": true, "backup": true, "restore": true}

// parseLegacy reads Bee2's SERVER:ACTION[:NAME] grammar. "help" stands alone.
func parseLegacy(s string) (legacyCommand, error) {
	if s == "help" {
		return legacyCommand{Action: "help"}, nil
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return legacyCommand{}, fmt.Errorf("-d %q: want SERVER:ACTION[:NAME]", s)
	}
	c := legacyCommand{Server: parts[0], Action: parts[1]}
	if len(parts) == 3 {
		c.Arg = parts[2]
		if c.Arg == "" {
			return legacyCommand{}, fmt.Errorf("-d %q: empty name after the action", s)
		}
	}
	if c.Server == "" {
		return legacyCommand{}, fmt.Errorf("-d %q: no server", s)
	}
	if !legacyActions[c.Action] {
		return legacyCommand{}, fmt.Errorf("-d %q: unknown action %q (build, rebuild, run, backup, restore)", s, c.Action)
	}
	if c.Action == "backup" && c.Arg != "" {
		return legacyCommand{}, fmt.Errorf("-d %q: backup takes no name", s)
	}
	return c, nil
}

// isLegacy tells whether the arguments use Bee2's -d or -s form rather than a subcommand.
func isLegacy(args []string) bool {
	for _, a := range args {
		for _, f := range []string{"d", "s"} {
			if a == "-"+f || a == "--"+f || strings.HasPrefix(a, "-"+f+"=") || strings.HasPrefix(a, "--"+f+"=") {
				return true
			}
		}
	}
	return false
}

func runLegacy(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var c common
	var d, syncServer string
	fs := flag.NewFlagSet("bee2d", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "c", "", "settings file (Bee2 format)")
	fs.StringVar(&d, "d", "", "Bee2 command SERVER:ACTION[:NAME], or help")
	fs.StringVar(&syncServer, "s", "", "Bee2 sync: push SERVER's sync entries, or every server's (all)")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.ageIdentity, "age-identity", os.Getenv(ageIdentityEnv), "file of the age identity that decrypts the settings' .age secrets")
	fs.Usage = func() { fmt.Fprint(fs.Output(), legacyUsage) }
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK
		}
		return exitError
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "bee2d: unexpected argument %q\n", fs.Arg(0))
		return exitError
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if set["s"] {
		return runLegacySync(ctx, c, set["d"], syncServer, stdout, stderr)
	}
	cmd, err := parseLegacy(d)
	if err != nil {
		fmt.Fprintf(stderr, "bee2d: %v\n\n%s", err, legacyUsage)
		return exitError
	}
	if cmd.Action == "help" {
		fmt.Fprint(stdout, legacyUsage)
		return exitOK
	}
	if c.config == "" {
		fmt.Fprintf(stderr, "bee2d: -c settings.yml is required\n")
		return exitError
	}
	s, err := load(c, stderr)
	if err != nil {
		return exitCode(err, stderr)
	}
	if s.Server(cmd.Server) == nil {
		return exitCode(fmt.Errorf("no server %q in %s", cmd.Server, s.File), stderr)
	}
	if cmd.Action == "backup" || cmd.Action == "restore" {
		return exitCode(legacyBackup(ctx, s, c, cmd, stdout, stderr), stderr)
	}
	if cmd.Action == "run" {
		c.server = cmd.Server
		return runJobs(ctx, c, cmd.Server, cmd.Arg, stdout, stderr)
	}
	var opt reconcile.Options
	switch cmd.Action {
	case "build":
		opt = reconcile.Options{Mode: reconcile.CreateMissing, Only: cmd.Arg}
	case "rebuild":
		opt = reconcile.Options{Mode: reconcile.CreateMissing, Only: cmd.Arg, Rebuild: true}
	default:
		return exitCode(fmt.Errorf("-d %s: %s is not supported yet", d, cmd.Action), stderr)
	}
	if cmd.Arg != "" {
		app := s.App(cmd.Server, cmd.Arg)
		if app == nil {
			return exitCode(fmt.Errorf("-d %s: no application %q on server %s", d, cmd.Arg, cmd.Server), stderr)
		}
	}
	c.server = cmd.Server
	sess, err := newSession(s, c, stderr)
	if err != nil {
		return exitCode(err, stderr)
	}
	err = sess.eachServer(ctx, func(ctx context.Context, srv *server) (string, error) {
		return srv.converge(ctx, opt)
	}, stdout)
	return exitCode(err, stderr)
}

// runLegacySync is Bee2's -s SERVER and -s all.
func runLegacySync(ctx context.Context, c common, withD bool, server string, stdout, stderr io.Writer) int {
	switch {
	case withD:
		fmt.Fprintf(stderr, "bee2d: -d and -s exclude each other\n\n%s", legacyUsage)
		return exitError
	case server == "help":
		fmt.Fprint(stdout, legacyUsage)
		return exitOK
	case server == "":
		fmt.Fprintf(stderr, "bee2d: -s wants SERVER or all\n\n%s", legacyUsage)
		return exitError
	case c.config == "":
		fmt.Fprintf(stderr, "bee2d: -c settings.yml is required\n")
		return exitError
	}
	s, err := load(c, stderr)
	if err != nil {
		return exitCode(err, stderr)
	}
	return exitCode(legacySync(ctx, s, server, stdout, stderr), stderr)
}
