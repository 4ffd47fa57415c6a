// Command remote measures bee2d converging several servers at once against the same servers one at a time
// (`apply --server S` for each in turn), in one run: S Docker engines of its own, each a dockerd reached
// over TCP with mutual TLS as remote servers are, with N applications each; cold (no containers and no
// network; the image is there, as after a first deploy) and with nothing to change. It reports medians and
// ratios; it never asserts a time. It needs root (it runs dockerd) and the Go toolchain; no registry.
//
//	go run ./bench/remote [-servers 3] [-n 50] [-rounds 3] [-bee2d bin/bee2d] [-json remote.json]
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/bee2d/bee2d/internal/pki"
	"github.com/bee2d/bee2d/internal/testdocker"
	"github.com/bee2d/bee2d/pkg/dockerx"
)

type options struct {
	servers int
	n       int
	rounds  int
	rtt     time.Duration
	bee2d   string
	jsonOut string
}

func main() {
	var opt options
	fs := flag.NewFlagSet("remote", flag.ContinueOnError)
	fs.IntVar(&opt.servers, "servers", 3, "number of servers (dockerd processes)")
	fs.IntVar(&opt.n, "n", 50, "applications per server")
	fs.IntVar(&opt.rounds, "rounds", 3, "measured rounds; the median is reported")
	fs.DurationVar(&opt.rtt, "rtt", 0, "round-trip time added between bee2d and each engine, as over a VPN (e.g. 20ms)")
	fs.StringVar(&opt.bee2d, "bee2d", "", "bee2d binary to measure (default: built from ./cmd/bee2d)")
	fs.StringVar(&opt.jsonOut, "json", "", "also write the numbers to this file")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		os.Exit(2)
	}
	if opt.servers < 1 || opt.n < 1 || opt.rounds < 1 || opt.rtt < 0 || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "bench/remote: -servers, -n and -rounds must be at least 1; no arguments")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, opt)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/remote:", err)
		os.Exit(1)
	}
}

// bench is one run's servers and files.
type bench struct {
	opt      options
	dir      string
	settings string
	bee2d    string
	engines  []*testdocker.Engine
	clients  []*dockerx.Client
	proxies  []net.Listener
}

func (b *bench) server(i int) string { return fmt.Sprintf("web%d", i+1) }

func run(ctx context.Context, opt options) error {
	if os.Geteuid() != 0 {
		return errors.New("needs root: it starts dockerd processes")
	}
	dir, err := os.MkdirTemp("", "bee2d-bench-remote")
	if err != nil {
		return err
	}
	b := &bench{opt: opt, dir: dir, settings: filepath.Join(dir, "settings.yml"), bee2d: opt.bee2d}
	defer b.close()
	if err := b.setUp(ctx); err != nil {
		return err
	}

	// Each round measures both contenders cold, then with no change, alternating which goes first.
	contenders := []string{"concurrent", "one at a time"}
	times := map[string][]time.Duration{}
	for round := 0; round < opt.rounds; round++ {
		order := contenders
		if round%2 == 1 {
			order = []string{contenders[1], contenders[0]}
		}
		for _, c := range order {
			if err := b.wipe(ctx); err != nil {
				return err
			}
			for _, phase := range []string{"cold", "no change"} {
				took, err := b.apply(ctx, c == "concurrent")
				if err != nil {
					return fmt.Errorf("%s, %s: %w", c, phase, err)
				}
				if err := b.check(ctx); err != nil {
					return fmt.Errorf("%s, %s: %w", c, phase, err)
				}
				times[c+"/"+phase] = append(times[c+"/"+phase], took)
				fmt.Fprintf(os.Stderr, "round %d: %-13s %-9s %6.2fs\n", round+1, c, phase, took.Seconds())
			}
		}
	}
	return b.report(times)
}

// image is what every application runs; setUp builds it on each engine.
const image = "b2remote-sleeper:1"

// setUp builds bee2d, makes the certificates, starts the engines, builds the image on each and writes the
// settings.
func (b *bench) setUp(ctx context.Context) error {
	if b.bee2d == "" {
		b.bee2d = filepath.Join(b.dir, "bee2d")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", b.bee2d, "./cmd/bee2d")
		cmd.Stderr = os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build bee2d (run from the repository's root, or give -bee2d): %w", err)
		}
	}
	buildDir := filepath.Join(b.dir, "dockerfiles", "Sleeper")
	if err := testdocker.WriteGoBuildDir(buildDir, testdocker.SleeperSource); err != nil {
		return err
	}
	ca, err := pki.NewCA("bench CA", time.Now(), time.Hour*24)
	if err != nil {
		return err
	}
	certs := filepath.Join(b.dir, "certs")
	if err := pki.WriteFile(filepath.Join(certs, "ca.pem"), ca.CertPEM, 0o644); err != nil {
		return err
	}
	for _, c := range []struct {
		name string
		tmpl pki.Template
	}{
		{"server", pki.Template{Usage: pki.Server, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}}},
		{"client", pki.Template{Usage: pki.Client, CommonName: "bee2d"}},
	} {
		kp, err := ca.Issue(c.tmpl)
		if err != nil {
			return err
		}
		if err := kp.Save(filepath.Join(certs, c.name+".crt"), filepath.Join(certs, c.name+".pem")); err != nil {
			return err
		}
	}
	var yml strings.Builder
	yml.WriteString("servers:\n")
	for i := 0; i < b.opt.servers; i++ {
		e, err := testdocker.NewEngine(&testdocker.EngineTLS{CA: filepath.Join(certs, "ca.pem"),
			Cert: filepath.Join(certs, "server.crt"), Key: filepath.Join(certs, "server.pem")})
		if err != nil {
			return err
		}
		b.engines = append(b.engines, e)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		cli, err := dockerx.Connect(cctx, dockerx.Endpoint{Host: e.Host})
		cancel()
		if err != nil {
			return err
		}
		b.clients = append(b.clients, cli)
		if _, err := cli.BuildImage(ctx, dockerx.BuildRequest{ContextDir: buildDir, Tags: []string{image}}); err != nil {
			return err
		}
		host := e.TCPHost
		if b.opt.rtt > 0 {
			if host, err = b.delayProxy(strings.TrimPrefix(e.TCPHost, "tcp://")); err != nil {
				return err
			}
		}
		fmt.Fprintf(&yml, "  %s:\n    docker:\n      host: %s\n      tls: {ca: certs/ca.pem, cert: certs/client.crt, key: certs/client.pem}\n",
			b.server(i), host)
	}
	yml.WriteString("docker:\n  prefix: b2remote\napplications:\n")
	for i := 0; i < b.opt.servers; i++ {
		for a := 1; a <= b.opt.n; a++ {
			fmt.Fprintf(&yml, "  s%da%03d: {server: %s, image: %q, env: {index: %d}}\n", i+1, a, b.server(i), image, a)
		}
	}
	return os.WriteFile(b.settings, []byte(yml.String()), 0o644)
}

// apply runs bee2d apply over every server at once, or once per server in turn, and times it.
func (b *bench) apply(ctx context.Context, concurrent bool) (time.Duration, error) {
	var runs [][]string
	if concurrent {
		runs = [][]string{{"apply", "-c", b.settings}}
	} else {
		for i := 0; i < b.opt.servers; i++ {
			runs = append(runs, []string{"apply", "-c", b.settings, "--server", b.server(i)})
		}
	}
	start := time.Now()
	for _, args := range runs {
		cmd := exec.CommandContext(ctx, b.bee2d, args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("bee2d %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}
	return time.Since(start), nil
}

// check makes sure every server runs its N containers (not timed).
func (b *bench) check(ctx context.Context) error {
	for i, cli := range b.clients {
		list, err := cli.ListContainers(ctx)
		if err != nil {
			return err
		}
		running := 0
		for _, c := range list {
			if c.Running() {
				running++
			}
		}
		if running != b.opt.n {
			return fmt.Errorf("%s runs %d containers, want %d", b.server(i), running, b.opt.n)
		}
	}
	return nil
}

// wipe removes every container and bee2d's network, so the next apply starts cold; the image stays.
func (b *bench) wipe(ctx context.Context) error {
	for _, cli := range b.clients {
		list, err := cli.ListContainers(ctx)
		if err != nil {
			return err
		}
		for _, c := range list {
			if err := cli.RemoveContainer(ctx, c.ID); err != nil && !dockerx.IsNotFound(err) {
				return err
			}
		}
		nets, err := cli.ListNetworks(ctx)
		if err != nil {
			return err
		}
		for _, n := range nets {
			if strings.HasPrefix(n.Name, "b2remote") {
				if err := cli.RemoveNetwork(ctx, n.ID); err != nil && !dockerx.IsNotFound(err) {
					return err
				}
			}
		}
	}
	return nil
}

func (b *bench) close() {
	for _, ln := range b.proxies {
		ln.Close()
	}
	for _, cli := range b.clients {
		cli.Close()
	}
	for _, e := range b.engines {
		if err := e.Remove(); err != nil {
			fmt.Fprintln(os.Stderr, "bench/remote: remove engine:", err)
		}
	}
	os.RemoveAll(b.dir)
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// report prints the medians, and one at a time over concurrent for each phase.
func (b *bench) report(times map[string][]time.Duration) error {
	fmt.Printf("\n%d servers x %d applications (dockerd over TCP with mutual TLS, vfs; %s added round trip), %d rounds, medians:\n\n",
		b.opt.servers, b.opt.n, b.opt.rtt, b.opt.rounds)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PHASE\tCONCURRENT\tONE AT A TIME\tONE AT A TIME / CONCURRENT")
	type row struct {
		Phase         string    `json:"phase"`
		Concurrent    float64   `json:"concurrent_seconds"`
		OneAtATime    float64   `json:"one_at_a_time_seconds"`
		Ratio         float64   `json:"ratio"`
		ConcurrentAll []float64 `json:"concurrent_samples_seconds"`
		OneAtATimeAll []float64 `json:"one_at_a_time_samples_seconds"`
	}
	var rows []row
	secs := func(ds []time.Duration) []float64 {
		out := make([]float64, len(ds))
		for i, d := range ds {
			out[i] = d.Seconds()
		}
		return out
	}
	for _, phase := range []string{"cold", "no change"} {
		c, s := median(times["concurrent/"+phase]), median(times["one at a time/"+phase])
		r := row{Phase: phase, Concurrent: c.Seconds(), OneAtATime: s.Seconds(), Ratio: s.Seconds() / c.Seconds(),
			ConcurrentAll: secs(times["concurrent/"+phase]), OneAtATimeAll: secs(times["one at a time/"+phase])}
		rows = append(rows, r)
		fmt.Fprintf(tw, "%s\t%.2fs\t%.2fs\t%.2f\n", phase, r.Concurrent, r.OneAtATime, r.Ratio)
	}
	tw.Flush()
	if b.opt.jsonOut == "" {
		return nil
	}
	out, err := json.MarshalIndent(map[string]any{"servers": b.opt.servers, "applications_per_server": b.opt.n,
		"rounds": b.opt.rounds, "added_rtt_seconds": b.opt.rtt.Seconds(), "results": rows}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(b.opt.jsonOut, append(out, '\n'), 0o644)
}

// delayProxy forwards a port of 127.0.0.1 to addr, holding every chunk for half the round trip in each
// direction, in order, as a VPN link would; it returns the proxy's docker host URL.
func (b *bench) delayProxy(addr string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	b.proxies = append(b.proxies, ln)
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", addr)
			if err != nil {
				in.Close()
				continue
			}
			go delayCopy(out, in, b.opt.rtt/2)
			go delayCopy(in, out, b.opt.rtt/2)
		}
	}()
	return "tcp://" + ln.Addr().String(), nil
}

// delayCopy copies src to dst, each chunk written delay after it was read; it closes both at the end.
func delayCopy(dst, src net.Conn, delay time.Duration) {
	type chunk struct {
		at   time.Time
		data []byte
	}
	queue := make(chan chunk, 1024)
	go func() {
		defer close(queue)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				queue <- chunk{time.Now().Add(delay), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range queue {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.data); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}
