package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"strings"

	"github.com/bee2d/bee2d/pkg/config"
)

const syncUsage = `Usage: bee2d sync -c settings.yml [SERVER...]

Pushes each entry "local:remote" of sync.SERVER.push to the server, one after the other, as Bee2's -s did:

  rsync -av --delete -e "ssh -i KEY -o BatchMode=yes" LOCAL root@HOST:REMOTE

HOST is the server's first dns.private name, KEY is provisioner.ssh_key.private (without it, ssh's own
keys). Local paths are relative to the settings file; a trailing "/" copies a directory's content rather
than the directory, as with rsync. An entry is split at its first ":", so a remote path may hold one.
ssh checks the server's host key against your known_hosts and never prompts: add the key first
(ssh root@HOST once). Ports, jump hosts and the like go in ~/.ssh/config.

--delete removes files on the server that are not on this side.

Without a SERVER, every server that has entries. A server without entries is reported and skipped.
The first rsync that fails stops the command (exit status 1), naming its entry.

Flags:
`

// syncRemoteUser is who rsync logs in as on the server, as with Bee2.
const syncRemoteUser = "root"

func cmdSync(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	flags := newFlags("sync", "sync -c settings.yml [SERVER...]", &c, false, stderr)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), syncUsage)
		flags.PrintDefaults()
	}
	names, err := parseMixed(flags, &c, args)
	if err != nil {
		return err
	}
	s, err := load(c, stderr)
	if err != nil {
		return err
	}
	return runSync(ctx, s, names, stdout, stderr)
}

// syncJob is one push: the entry as written, and the rsync arguments that carry it out.
type syncJob struct {
	push config.SyncPush
	args []string
}

// runSync pushes the sync entries of the servers named, or of every server that has entries when none is.
// Everything is checked before the first rsync starts; the first one that fails ends the run.
func runSync(ctx context.Context, s *config.Settings, names []string, stdout, stderr io.Writer) error {
	if len(names) == 0 {
		for _, srv := range s.Servers {
			if len(s.Sync[srv.Name]) > 0 {
				names = append(names, srv.Name)
			}
		}
		if len(names) == 0 {
			fmt.Fprintf(stdout, "no server of %s has sync entries (sync.SERVER.push): nothing to push\n", s.File)
			return nil
		}
	}
	type serverJobs struct {
		name string
		jobs []syncJob
	}
	var plan []serverJobs
	pushing := false
	for _, name := range names {
		if s.Server(name) == nil {
			return fmt.Errorf("no server %q in %s", name, s.File)
		}
		sj := serverJobs{name: name}
		for _, p := range s.Sync[name] {
			args, err := rsyncArgs(s, name, p)
			if err != nil {
				return err
			}
			sj.jobs = append(sj.jobs, syncJob{push: p, args: args})
			pushing = true
		}
		plan = append(plan, sj)
	}
	if pushing {
		if err := syncTools(s); err != nil {
			return err
		}
	}
	for _, sj := range plan {
		if len(sj.jobs) == 0 {
			fmt.Fprintf(stdout, "server %s: no sync entries (sync.%s.push), nothing to push\n", sj.name, sj.name)
			continue
		}
		for _, j := range sj.jobs {
			n := len(j.args)
			fmt.Fprintf(stdout, "server %s: push %s to %s\n", sj.name, j.args[n-2], j.args[n-1])
			cmd := exec.CommandContext(ctx, "rsync", j.args...)
			cmd.Stdout, cmd.Stderr = stdout, stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("server %s: push %q (%s:%d:%d): rsync: %w",
					sj.name, j.push.Local+":"+j.push.Remote, s.File, j.push.Pos.Line, j.push.Pos.Col, err)
			}
		}
	}
	return nil
}

// syncTools checks that the key sync logs in with is there (ssh would only warn about a missing key and go
// on with its own), and that rsync and ssh can be run.
func syncTools(s *config.Settings) error {
	if s.SSHKey != "" {
		key := s.ResolvePath(s.SSHKey)
		f, err := os.Open(key)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("provisioner.ssh_key.private: %s does not exist", key)
		case err != nil:
			return fmt.Errorf("provisioner.ssh_key.private: %w", err)
		}
		f.Close()
	}
	for _, tool := range []string{"rsync", "ssh"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("sync needs %s: %w", tool, err)
		}
	}
	return nil
}

// rsyncArgs are the arguments of the rsync that pushes one entry: Bee2's, but given to rsync directly
// rather than through a shell, so the ssh command is one argument without quotes around it (Bee2's
// literal quotes were a bug of its shell string).
func rsyncArgs(s *config.Settings, server string, p config.SyncPush) ([]string, error) {
	srv := s.Server(server)
	if srv == nil {
		return nil, fmt.Errorf("no server %q in %s", server, s.File)
	}
	if len(srv.DNS.Private) == 0 || srv.DNS.Private[0] == "" {
		return nil, fmt.Errorf("server %s: sync pushes to its first dns.private name, and servers.%s.dns.private gives none", server, server)
	}
	host := srv.DNS.Private[0]
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 address
	}
	local := s.ResolvePath(p.Local)
	if strings.HasSuffix(p.Local, "/") && !strings.HasSuffix(local, "/") {
		// Resolving cleans the path, but the trailing "/" tells rsync to copy the content, not the directory.
		local += "/"
	}
	return []string{"-av", "--delete", "-e", sshCommand(s), local, syncRemoteUser + "@" + host + ":" + p.Remote}, nil
}

// sshCommand is the remote shell rsync runs. BatchMode keeps ssh from ever prompting (a password, an unknown
// host key): a host key that is not known is a failure, not a question.
func sshCommand(s *config.Settings) string {
	parts := []string{"ssh"}
	if s.SSHKey != "" {
		parts = append(parts, "-i", rsyncQuote(s.ResolvePath(s.SSHKey)))
	}
	return strings.Join(append(parts, "-o", "BatchMode=yes"), " ")
}

// rsyncQuote quotes one word of a remote shell command for rsync, which splits the command at spaces and
// keeps what is inside '...' or "..." together (a doubled quote inside stands for itself).
func rsyncQuote(word string) string {
	if !strings.ContainsAny(word, " '\"") {
		return word
	}
	return "'" + strings.ReplaceAll(word, "'", "''") + "'"
}

// legacySync is Bee2's -s SERVER; "all" pushes every server that has entries (Bee2's -s all did nothing).
func legacySync(ctx context.Context, s *config.Settings, server string, stdout, stderr io.Writer) error {
	var names []string
	if server != "all" {
		names = []string{server}
	}
	return runSync(ctx, s, names, stdout, stderr)
}
