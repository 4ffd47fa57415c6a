// Package benchrun holds what the benchmarks that run bee2d's daemon share: starting and stopping it,
// recording the versions measured, replacing the settings file, and removing what a run made.
package benchrun

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/bee2d/bee2d/pkg/dockerx"
)

// Versions say what was measured.
type Versions struct {
	Engine string `json:"engine"`
	Bee2d  string `json:"bee2d"`
	Go     string `json:"go"`
	CPUs   int    `json:"cpus"`
}

// ReadVersions asks bee2dBin for its version and the docker CLI, if there is one, for the engine's.
func ReadVersions(ctx context.Context, bee2dBin string) (Versions, error) {
	v := Versions{Go: runtime.Version(), CPUs: runtime.NumCPU(), Engine: "unknown"}
	out, err := exec.CommandContext(ctx, bee2dBin, "version").Output()
	if err != nil {
		return v, fmt.Errorf("%s version: %w", bee2dBin, err)
	}
	v.Bee2d = strings.TrimSpace(strings.TrimPrefix(string(out), "bee2d "))
	// The docker CLI is optional; the engine version is only for the record.
	if out, err := exec.CommandContext(ctx, "docker", "version", "--format", "{{.Server.Version}}").Output(); err == nil {
		v.Engine = strings.TrimSpace(string(out))
	}
	return v, nil
}

// Daemon is a `bee2d daemon` the bench runs, its log (JSON at debug level) in LogFile.
type Daemon struct {
	Cmd     *exec.Cmd
	LogFile string
	// Exited receives the daemon's exit once.
	Exited chan error
}

// StartDaemon runs `bee2d daemon` on settings, with no listener and the given debounce.
func StartDaemon(bin, settings string, debounce time.Duration, logFile string) (*Daemon, error) {
	return StartDaemonArgs(bin, []string{"-c", settings, "--listen", "", "--debounce", debounce.String()}, logFile)
}

// StartDaemonArgs runs `bee2d daemon` with args, logging JSON at debug level into logFile.
func StartDaemonArgs(bin string, args []string, logFile string) (*Daemon, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	args = append(append([]string{"daemon"}, args...), "--log-format", "json", "--log-level", "debug")
	d := &Daemon{LogFile: logFile, Exited: make(chan error, 1), Cmd: exec.Command(bin, args...)}
	d.Cmd.Stdout, d.Cmd.Stderr = f, f
	if err := d.Cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	go func() {
		d.Exited <- d.Cmd.Wait()
		f.Close()
	}()
	return d, nil
}

// Stop sends SIGTERM and waits for the exit, killing the daemon after a minute. A nil Daemon is stopped.
func (d *Daemon) Stop() error {
	if d == nil {
		return nil
	}
	select {
	case err := <-d.Exited:
		return fmt.Errorf("the daemon had exited: %v", err)
	default:
	}
	d.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.Exited:
		return err
	case <-time.After(time.Minute):
		d.Cmd.Process.Kill()
		return errors.New("the daemon did not stop within a minute of SIGTERM; killed")
	}
}

// Teardown removes the containers whose names start with runID-, then the network. Containers are stopped
// and removed one at a time: on Docker 20.10 concurrent stops on one network can leave it believing it
// still has endpoints (see bench/README.md).
func Teardown(ctx context.Context, cli *dockerx.Client, runID, network string) error {
	list, err := cli.ListContainers(ctx)
	if err != nil {
		return err
	}
	for _, c := range list {
		if !strings.HasPrefix(c.Name, runID+"-") {
			continue
		}
		if err := cli.StopContainer(ctx, c.ID, 5*time.Second); err != nil && !dockerx.IsNotFound(err) {
			return fmt.Errorf("teardown: %w", err)
		}
		if err := cli.RemoveContainer(ctx, c.ID); err != nil && !dockerx.IsNotFound(err) {
			return fmt.Errorf("teardown: %w", err)
		}
	}
	var last error
	for range 5 {
		last = cli.RemoveNetwork(ctx, network)
		if last == nil || dockerx.IsNotFound(last) {
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("teardown: network %s (if it \"has active endpoints\", see bench/README.md): %w", network, last)
}

// Command runs a preparation step, showing its output only when it fails.
func Command(ctx context.Context, dir string, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// WriteAtomic replaces a file by renaming a new one over it, as editors and `git checkout` do: the daemon
// never reads half a file.
func WriteAtomic(path, text string, perm os.FileMode) error {
	tmp := path + ".new"
	if err := os.WriteFile(tmp, []byte(text), perm); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Main is a bench's main: it parses the flags with parse, runs run until it returns or until SIGINT or
// SIGTERM cancels its context, and exits 0, 1 for a failed run, or 2 for bad flags; messages start with
// name ("bench/gitops").
func Main[O any](name string, parse func([]string) (O, error), run func(context.Context, O) error) {
	opt, err := parse(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err = run(ctx, opt)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}
