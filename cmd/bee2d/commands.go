package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"text/tabwriter"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/reconcile"
)

// errHelp is returned when --help was asked for and printed.
var errHelp = flag.ErrHelp

// common are the flags every settings command takes.
type common struct {
	config   string
	server   string
	logLevel string
	// ageIdentity is the file of the age identity that decrypts the settings' .age secrets.
	ageIdentity string
	// elsewhere tells that the command can take its settings from elsewhere than -c (--git, a state
	// directory): parse does not require -c, the command checks.
	elsewhere bool
}

// ageIdentityEnv gives --age-identity its default, so that a host's key need not be named on each command.
const ageIdentityEnv = "BEE2D_AGE_IDENTITY"

// options are how the flags say the settings are loaded: decrypted with the --age-identity.
func (c common) options() (config.Options, error) {
	if c.ageIdentity == "" {
		return config.Options{}, nil
	}
	ids, err := config.ParseIdentities(c.ageIdentity)
	if err != nil {
		return config.Options{}, err
	}
	return config.Options{Identities: ids}, nil
}

func newFlags(name, synopsis string, c *common, withServer bool, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.config, "c", "", "settings file (Bee2 format)")
	fs.StringVar(&c.config, "config", "", "settings file (same as -c)")
	if withServer {
		fs.StringVar(&c.server, "server", "", "only this server")
	}
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&c.ageIdentity, "age-identity", os.Getenv(ageIdentityEnv),
		"file of the age identity (or SSH private key) that decrypts the settings' .age secrets (default $"+ageIdentityEnv+")")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: bee2d %s\n\nFlags:\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses flags and checks that -c was given and nothing else is left.
func parse(fs *flag.FlagSet, c *common, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "bee2d %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	if c.config == "" && !c.elsewhere {
		fmt.Fprintf(fs.Output(), "bee2d %s: -c settings.yml is required\n", fs.Name())
		fs.Usage()
		return errUsage
	}
	return nil
}

// load reads and validates the settings; every problem is printed, one per line, with its place, and so is
// every warning (a secret or key file readable by others), though the settings are used.
func load(c common, stderr io.Writer) (*config.Settings, error) {
	opt, err := c.options()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, errUsage
	}
	s, err := config.LoadWith(c.config, opt)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, errUsage
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if s.HashKeyMade != "" {
		fmt.Fprintf(stderr, "made %s, the key of the hashes of secret values in container labels (mode 0600); keep it with the secrets\n", s.HashKeyMade)
	}
	for _, p := range s.PasswordsMade {
		fmt.Fprintf(stderr, "made database password %s\n", p)
	}
	return s, nil
}

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("validate", "validate -c settings.yml", &c, false, stderr)
	if err := parse(fs, &c, args); err != nil {
		return err
	}
	s, err := load(c, stderr)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: ok (%s, %s, %s)\n", c.config, count(len(s.Servers), "server"), count(len(s.Applications), "application"), count(len(s.Jobs), "job"))
	return nil
}

func cmdPlan(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	c := common{elsewhere: true}
	var g gitFlags
	var detailed bool
	fs := newFlags("plan", "plan -c settings.yml | --git URL [--git-ref REF] [--server S] [--detailed-exitcode]", &c, true, stderr)
	fs.BoolVar(&detailed, "detailed-exitcode", false, "exit 0 when there are no changes, 2 when there are, 1 on error")
	addGitFlags(fs, &g, false)
	if err := parse(fs, &c, args); err != nil {
		return exitCode(err, stderr)
	}
	var s *config.Settings
	var err error
	switch {
	case c.config != "" && g.url != "":
		fmt.Fprintln(stderr, "bee2d plan: -c and --git are mutually exclusive")
		return exitError
	case g.url != "":
		var opt config.Options
		if opt, err = c.options(); err == nil {
			var cleanup func()
			s, cleanup, err = checkoutForPlan(ctx, g, opt, stderr)
			if err == nil {
				defer cleanup()
			}
		}
	case c.config == "":
		fmt.Fprintln(stderr, "bee2d plan: -c settings.yml or --git URL is required")
		fs.Usage()
		return exitError
	default:
		s, err = load(c, stderr)
	}
	if err != nil {
		return exitCode(err, stderr)
	}
	sess, err := newSession(s, c, stderr)
	if err != nil {
		return exitCode(err, stderr)
	}
	var changes atomic.Bool
	err = sess.eachServer(ctx, func(ctx context.Context, srv *server) (string, error) {
		p, _, err := srv.plan(ctx, reconcile.Options{})
		if err != nil {
			return "", err
		}
		if !p.Empty() {
			changes.Store(true)
		}
		return p.String(), nil
	}, stdout)
	if err != nil {
		return exitCode(err, stderr)
	}
	if detailed && changes.Load() {
		return exitChanges
	}
	return exitOK
}

func cmdApply(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	var retry stringsFlag
	fs := newFlags("apply", "apply -c settings.yml [--server S] [--retry-held APP]...", &c, true, stderr)
	fs.Var(&retry, "retry-held", "try again a version of APP that failed its health check, though the settings did not change (repeatable)")
	if err := parse(fs, &c, args); err != nil {
		return err
	}
	s, err := load(c, stderr)
	if err != nil {
		return err
	}
	var opt reconcile.Options
	for _, app := range retry {
		for _, name := range strings.Split(app, ",") {
			if s.Application(name) == nil {
				fmt.Fprintf(stderr, "bee2d apply: --retry-held %s: no application %q in %s\n", name, name, s.File)
				return errUsage
			}
			if opt.RetryHeld == nil {
				opt.RetryHeld = map[string]bool{}
			}
			opt.RetryHeld[name] = true
		}
	}
	sess, err := newSession(s, c, stderr)
	if err != nil {
		return err
	}
	return sess.eachServer(ctx, func(ctx context.Context, srv *server) (string, error) {
		return srv.converge(ctx, opt)
	}, stdout)
}

func cmdStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := common{elsewhere: true}
	fs := newFlags("status", "status -c settings.yml | --state-dir DIR [--server S]", &c, true, stderr)
	stateDir := fs.String("state-dir", defaultStateDir, "the daemon's state directory: what each server converged to, and without -c the settings of the commit the daemon follows")
	if err := parse(fs, &c, args); err != nil {
		return err
	}
	var s *config.Settings
	var err error
	if c.config != "" {
		s, err = load(c, stderr)
	} else {
		var opt config.Options
		if opt, err = c.options(); err == nil {
			if s, err = runningSettings(*stateDir, opt); err != nil {
				fmt.Fprintf(stderr, "bee2d status: -c settings.yml is required, or a daemon's --state-dir that follows a git branch: %v\n", err)
				return errUsage
			}
		}
	}
	if err != nil {
		return err
	}
	sess, err := newSession(s, c, stderr)
	if err != nil {
		return err
	}
	return sess.eachServer(ctx, func(ctx context.Context, srv *server) (string, error) {
		snap, err := reconcile.ObserveAll(ctx, srv.client)
		if err != nil {
			return "", err
		}
		var b strings.Builder
		if line := convergedLine(*stateDir, srv.name); line != "" {
			fmt.Fprintf(&b, "%s  %s\n", srv.name, line)
		}
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "SERVER\tKIND\tNAME\tSTATE\tSYNC\n")
		for _, r := range reconcile.Status(srv.desired, snap) {
			sync := "in sync"
			if !r.InSync {
				sync = "out of sync: " + r.Detail
			}
			state := r.State
			if r.Health != "" {
				state += " (" + r.Health + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", srv.name, r.Kind, r.Name, state, sync)
		}
		tw.Flush()
		return b.String(), nil
	}, stdout)
}

// isTerminal tells whether w is a terminal, where progress output belongs.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// count says how many, with the noun in the singular for one: "1 server", "2 servers".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
