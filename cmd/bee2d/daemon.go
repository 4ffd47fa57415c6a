package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/bee2d/bee2d/pkg/config"
	"github.com/bee2d/bee2d/pkg/daemon"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
	"github.com/bee2d/bee2d/pkg/gitops"
)

func cmdDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c := common{elsewhere: true}
	var g gitFlags
	fs := newFlags("daemon", "daemon -c settings.yml | --git URL [--git-branch B] [--git-path P] [--listen 127.0.0.1:9380]", &c, false, stderr)
	addGitFlags(fs, &g, true)
	listen := fs.String("listen", "127.0.0.1:9380", "address for /metrics, /healthz, /readyz and, without --listen-webhook, /hooks/git (empty: none)")
	listenHook := fs.String("listen-webhook", "", "a separate address for POST /hooks/git only, so that /metrics can stay on loopback")
	hookSecret := fs.String("webhook-secret-file", "", "serve POST /hooks/git, authenticated with the secret in this file (HMAC-SHA256 of GitHub, Gitea, Forgejo, bee2d; GitLab's token)")
	resync := fs.Duration("resync", 5*time.Minute, "full pass over every server this often, even without events")
	grace := fs.Duration("grace", 30*time.Second, "on SIGTERM, how long the actions in flight may take")
	debounce := fs.Duration("debounce", 200*time.Millisecond, "merge settings file events this close together")
	parallel := fs.Int("parallel", defaultParallel, "container actions at once per server")
	logFormat := fs.String("log-format", "auto", "log format: auto (console on a terminal, else JSON), json, console")
	if err := parse(fs, &c, args); err != nil {
		return err
	}
	if msg := checkDaemonSource(c, g, *hookSecret, *listen, *listenHook); msg != "" {
		fmt.Fprintf(stderr, "bee2d daemon: %s\n", msg)
		fs.Usage()
		return errUsage
	}
	opt, err := c.options()
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errUsage
	}
	log, err := daemonLogger(c.logLevel, *logFormat, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()

	m := metrics.New()
	d := &daemon.Daemon{
		Path:     c.config,
		Options:  opt,
		Log:      log,
		Metrics:  m,
		Resync:   *resync,
		Debounce: *debounce,
		Parallel: *parallel,
		Grace:    *grace,
		Version:  version,
		Ready: func() {
			log.Info("first pass done on every server")
			sdNotify("READY=1")
		},
	}
	var hook http.Handler
	var fetchNow func() // SIGHUP also fetches the branch followed
	if g.url != "" {
		f, err := follower(g, opt, log, m)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return errUsage
		}
		if f.Verify != nil {
			defer f.Verify.Close() // its private GNUPGHOME
		}
		d.Source, d.StateDir, fetchNow = f, g.stateDir, f.Trigger
		if *hookSecret != "" {
			secret, warning, err := gitops.ReadWebhookSecret(*hookSecret)
			if err != nil {
				fmt.Fprintf(stderr, "--webhook-secret-file: %v\n", err)
				return errUsage
			}
			if warning != "" {
				log.Warn("webhook secret file", zap.String("file", *hookSecret), zap.String("problem", warning))
			}
			wh, err := gitops.NewWebhook(secret, f.Trigger)
			if err != nil {
				fmt.Fprintf(stderr, "--webhook-secret-file: %v\n", err)
				return errUsage
			}
			wh.Log, wh.Metrics = log, m
			hook = wh
			m.FollowGit(gitops.WebhookResults())
		} else {
			m.FollowGit(nil)
		}
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := d.LoadInitialContext(ctx); err != nil {
		fmt.Fprintln(stderr, err)
		return errUsage
	}
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		stopping := false
		for sig := range sigs {
			switch {
			case sig == syscall.SIGHUP:
				log.Info("SIGHUP: reloading the settings and converging every server")
				d.Reload()
				d.KickAll()
				if fetchNow != nil {
					fetchNow()
				}
			case !stopping:
				stopping = true
				log.Info("stopping: no new actions; waiting for those in flight", zap.String("signal", sig.String()), zap.Duration("grace", *grace))
				sdNotify("STOPPING=1")
				cancel()
			default:
				log.Warn("second signal: exiting now", zap.String("signal", sig.String()))
				os.Exit(exitError)
			}
		}
	}()

	if *listen != "" {
		ln, err := net.Listen("tcp", *listen)
		if err != nil {
			return fmt.Errorf("--listen: %w", err)
		}
		if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
			log.Warn("metrics listener is not on loopback: anyone who reaches it sees server and container names", zap.String("listen", ln.Addr().String()))
		}
		mainHook := hook
		if *listenHook != "" {
			mainHook = nil
		}
		srv := &http.Server{Handler: httpHandler(d, m, mainHook), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("serving metrics", zap.String("listen", ln.Addr().String()), zap.Bool("webhook", mainHook != nil))
	}
	if *listenHook != "" {
		ln, err := net.Listen("tcp", *listenHook)
		if err != nil {
			return fmt.Errorf("--listen-webhook: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("/hooks/git", hook)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("serving the git webhook", zap.String("listen", ln.Addr().String()))
	}
	source := c.config
	if g.url != "" {
		source = config.RedactURL(g.url) + " " + g.branch + ":" + g.path
	}
	log.Info("daemon started", zap.String("version", version), zap.String("settings", source))
	err = d.Run(ctx)
	log.Info("daemon stopped")
	return err
}

// checkDaemonSource checks that the settings come from exactly one place and that the webhook flags fit;
// it returns what is wrong, "" when nothing is.
func checkDaemonSource(c common, g gitFlags, hookSecret, listen, listenHook string) string {
	switch {
	case c.config != "" && g.url != "":
		return "-c and --git are mutually exclusive: the settings come from a file or from a repository"
	case c.config == "" && g.url == "":
		return "-c settings.yml or --git URL is required"
	case g.url == "" && (hookSecret != "" || listenHook != ""):
		return "--webhook-secret-file and --listen-webhook need --git"
	case listenHook != "" && hookSecret == "":
		return "--listen-webhook needs --webhook-secret-file"
	case hookSecret != "" && listen == "" && listenHook == "":
		return "--webhook-secret-file needs --listen or --listen-webhook to serve the webhook on"
	case g.url != "" && g.poll < 0:
		return "--git-poll must not be negative"
	case g.url != "" && g.poll == 0 && hookSecret == "":
		return "--git-poll 0 fetches only when the webhook asks, and there is no webhook: give --webhook-secret-file or a poll interval"
	}
	return ""
}

// httpHandler serves /metrics, /healthz, /readyz and, when hook is set, the git webhook.
func httpHandler(d *daemon.Daemon, m *metrics.Metrics, hook http.Handler) http.Handler {
	mux := http.NewServeMux()
	if hook != nil {
		mux.Handle("/hooks/git", hook)
	}
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		// The first line says ready or not; each line after it names a task that cannot run on a server,
		// then what each server converged to.
		problems := strings.Join(append(d.Problems(), d.ConvergedLines()...), "\n")
		if problems != "" {
			problems = "\n" + problems
		}
		if !d.IsReady() {
			http.Error(w, "first pass not done on every server"+problems, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready"+problems)
	})
	return mux
}

// daemonLogger logs JSON for journald and log shippers, and readable lines on a terminal.
func daemonLogger(level, format string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	if format == "auto" {
		format = "json"
		if isTerminal(w) {
			format = "console"
		}
	}
	var enc zapcore.Encoder
	switch format {
	case "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	case "console":
		cfg := zap.NewDevelopmentEncoderConfig()
		cfg.EncodeTime = zapcore.TimeEncoderOfLayout(time.DateTime)
		enc = zapcore.NewConsoleEncoder(cfg)
	default:
		return nil, fmt.Errorf("--log-format %q: want auto, json or console", format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}

// sdNotify tells systemd about the service's state (Type=notify). Without NOTIFY_SOCKET it does nothing.
func sdNotify(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte(state))
}
