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

	"github.com/bee2d/bee2d/pkg/daemon"
	"github.com/bee2d/bee2d/pkg/daemon/metrics"
)

func cmdDaemon(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("daemon", "daemon -c settings.yml [--listen 127.0.0.1:9380]", &c, false, stderr)
	listen := fs.String("listen", "127.0.0.1:9380", "address for /metrics, /healthz and /readyz (empty: none)")
	resync := fs.Duration("resync", 5*time.Minute, "full pass over every server this often, even without events")
	grace := fs.Duration("grace", 30*time.Second, "on SIGTERM, how long the actions in flight may take")
	debounce := fs.Duration("debounce", 200*time.Millisecond, "merge settings file events this close together")
	parallel := fs.Int("parallel", defaultParallel, "container actions at once per server")
	logFormat := fs.String("log-format", "auto", "log format: auto (console on a terminal, else JSON), json, console")
	if err := parse(fs, &c, args); err != nil {
		return err
	}
	log, err := daemonLogger(c.logLevel, *logFormat, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()

	m := metrics.New()
	d := &daemon.Daemon{
		Path:     c.config,
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
	if err := d.LoadInitial(); err != nil {
		fmt.Fprintln(stderr, err)
		return errUsage
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
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
		srv := &http.Server{Handler: httpHandler(d, m), ReadHeaderTimeout: 10 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		log.Info("serving metrics", zap.String("listen", ln.Addr().String()))
	}
	log.Info("daemon started", zap.String("version", version), zap.String("settings", c.config))
	err = d.Run(ctx)
	log.Info("daemon stopped")
	return err
}

func httpHandler(d *daemon.Daemon, m *metrics.Metrics) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		// The first line says ready or not; each line after it names a task that cannot run on a server.
		problems := strings.Join(d.Problems(), "\n")
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
