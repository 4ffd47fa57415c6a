// Command bee2d converges Docker hosts to a Bee2 settings file: once (plan, apply, Bee2's -d commands) or
// as a daemon.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/bee2d/bee2d/pkg/backup"
	"github.com/bee2d/bee2d/pkg/daemon/reload"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes, documented in the README and in usage.
const (
	exitOK      = 0
	exitError   = 1 // an error: bad flags, bad settings, an engine that failed
	exitChanges = 2 // plan --detailed-exitcode: the plan has changes
)

const usage = `bee2d converges Docker hosts to a Bee2 settings file.

Usage:
  bee2d daemon   -c settings.yml [--listen 127.0.0.1:9380] [--resync 5m]
  bee2d validate -c settings.yml
  bee2d plan     -c settings.yml [--server S] [--detailed-exitcode]
  bee2d apply    -c settings.yml [--server S]
  bee2d status   -c settings.yml [--server S]
  bee2d render   -c settings.yml [--server S] --json [--show-secrets]   the create requests, as JSON
  bee2d tls init SERVER -c settings.yml [--name NAME] [--ip IP] [--ipv6-subnet PREFIX]
  bee2d run      -c settings.yml SERVER [JOB]        run the server's jobs (or one) now
  bee2d backup   -c settings.yml [SERVER...]        back up the servers' volumes now
  bee2d backups  -c settings.yml [SERVER...] [--quick]  list the archives and check them
  bee2d verify   -c settings.yml SERVER [--at TS]    re-check an archive (default the newest)
  bee2d restore  -c settings.yml SERVER [--at TS] [--volume V]...
  bee2d sync     -c settings.yml [SERVER...]        push the servers' sync entries with rsync over ssh
  bee2d secret encrypt NAME --recipient R... [-c settings.yml | --dir DIR] [--force]
                 encrypt stdin with age to secrets/NAME.age, for committing
  bee2d version
  bee2d -c settings.yml -d SERVER:ACTION[:NAME]    Bee2's commands; -d help lists them
  bee2d -c settings.yml -s SERVER|all              Bee2's sync, the same as bee2d sync

Run 'bee2d COMMAND --help' for a command's flags.

Exit status: 0 success; 1 error (bad flags, invalid settings, a server that failed);
2 from 'plan --detailed-exitcode' when there are changes.
`

func main() {
	// On a server, bee2d's own binary is the backup helper in its container (see pkg/backup).
	if len(os.Args) > 1 && os.Args[1] == backup.HelperCommand {
		os.Exit(backup.HelperMain(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
	}
	// In a probe container on a server, bee2d's binary checks the certificates a reloaded application serves.
	if len(os.Args) > 1 && os.Args[1] == reload.ProbeCommand {
		os.Exit(reload.ProbeMain(os.Args[2:], os.Stdout, os.Stderr))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// errUsage marks an error whose message already went out with the usage text.
var errUsage = errors.New("usage")

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return exitError
	}
	if isLegacy(args) {
		return runLegacy(ctx, args, stdout, stderr)
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "validate":
		err = cmdValidate(rest, stdout, stderr)
	case "plan":
		return cmdPlan(ctx, rest, stdout, stderr)
	case "apply":
		err = cmdApply(ctx, rest, stdout, stderr)
	case "status":
		err = cmdStatus(ctx, rest, stdout, stderr)
	case "render":
		err = cmdRender(ctx, rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintf(stdout, "bee2d %s\n", version)
		return exitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return exitOK
	case "daemon":
		err = cmdDaemon(ctx, rest, stdout, stderr)
	case "tls":
		err = cmdTLS(rest, stdout, stderr)
	case "run":
		return cmdRun(ctx, rest, stdout, stderr)
	case "backup":
		err = cmdBackup(ctx, rest, stdout, stderr)
	case "backups":
		err = cmdBackups(rest, stdout, stderr)
	case "verify":
		err = cmdVerify(rest, stdout, stderr)
	case "restore":
		err = cmdRestore(ctx, rest, stdout, stderr)
	case "sync":
		err = cmdSync(ctx, rest, stdout, stderr)
	case "secret":
		err = cmdSecret(rest, os.Stdin, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "bee2d: unknown command %q\n\n%s", cmd, usage)
		return exitError
	}
	return exitCode(err, stderr)
}

// exitCode prints err, if any, and maps it to an exit code.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		return exitOK
	case errors.Is(err, errUsage):
		return exitError
	}
	fmt.Fprintf(stderr, "bee2d: %v\n", err)
	return exitError
}
