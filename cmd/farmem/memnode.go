package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/farmem/farmem/internal/size"
	"github.com/farmem/farmem/memnode"
)

func init() { register(newMemnodeCmd) }

// memnodeFlags are the flags of farmem memnode.
type memnodeFlags struct {
	listen, capacity, tokenFile, admin string
	idleTimeout, shutdownTimeout, spin time.Duration
	pageSize                           int
	verbose, pmQoS                     bool
}

func newMemnodeCmd() *cobra.Command {
	var f memnodeFlags
	cmd := &cobra.Command{
		Use:   "memnode",
		Short: "Lend this machine's RAM as pages to farmem clients over TCP",
		Long: `Run a memory node: a server that holds pages for many clients, each in its
own namespace, up to --capacity in total. With --token-file, clients must
present the file's content (a trailing newline is ignored). With --admin,
Prometheus metrics are served on /metrics and profiles on /debug/pprof.
SIGTERM or SIGINT shuts down gracefully: requests already received are
answered, then connections close. The protocol is in docs/PROTOCOL.md.`,
		Example: `  farmem memnode --listen :7070 --capacity 2GiB
  farmem memnode --listen 10.0.0.5:7070 --capacity 512MiB --token-file /etc/farmem/token --admin 127.0.0.1:9070`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return runMemnode(ctx, f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.listen, "listen", "127.0.0.1:7070", "address to listen on (host:port)")
	fl.StringVar(&f.capacity, "capacity", "", "RAM to lend, e.g. 512MiB, 2GiB, 1G (required)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the token clients must present")
	fl.StringVar(&f.admin, "admin", "", "address for /metrics and /debug/pprof (off when empty)")
	fl.DurationVar(&f.idleTimeout, "idle-timeout", 5*time.Minute, "close connections silent for this long (0: never)")
	fl.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long a graceful shutdown may take")
	fl.IntVar(&f.pageSize, "page-size", memnode.DefaultPageSize, "page size in bytes (clients must match)")
	fl.DurationVar(&f.spin, "spin", 0, "busy-poll each connection this long for the next request before sleeping (e.g. 50us; for a dedicated memnode host, where an idle vCPU's wake-up dominates latency; 0: off)")
	fl.BoolVarP(&f.verbose, "verbose", "v", false, "log every connection error, including idle timeouts")
	fl.BoolVar(&f.pmQoS, "pm-qos", false, pmQoSUsage)
	return cmd
}

// readTokenFile returns the token in path, without a trailing newline.
func readTokenFile(flag, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	tok := strings.TrimRight(string(b), "\r\n")
	if tok == "" {
		return nil, fmt.Errorf("%s: %s is empty", flag, path)
	}
	return []byte(tok), nil
}

func runMemnode(ctx context.Context, f memnodeFlags, out interface{ Write([]byte) (int, error) }) error {
	if f.capacity == "" {
		return errors.New("memnode: --capacity is required (e.g. --capacity 512MiB)")
	}
	capacity, err := size.Parse(f.capacity)
	if err != nil {
		return fmt.Errorf("memnode: --capacity: %w", err)
	}
	if f.spin < 0 || f.spin > time.Second {
		return fmt.Errorf("memnode: --spin %v: want 0 to 1s", f.spin)
	}
	if f.idleTimeout < 0 {
		return fmt.Errorf("memnode: --idle-timeout must not be negative, got %v", f.idleTimeout)
	}
	var token []byte
	if f.tokenFile != "" {
		if token, err = readTokenFile("memnode: --token-file", f.tokenFile); err != nil {
			return err
		}
	}
	release, err := holdPMQoS("memnode: --pm-qos", f.pmQoS)
	if err != nil {
		return err
	}
	defer release()
	level := slog.LevelWarn
	if f.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	srv, err := memnode.New(memnode.Config{
		Capacity: capacity, PageSize: f.pageSize, Token: token, IdleTimeout: f.idleTimeout, SpinRead: f.spin, Logger: log,
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", f.listen)
	if err != nil {
		return fmt.Errorf("memnode: --listen: %w", err)
	}
	var adminSrv *http.Server
	adminErr := make(chan error, 1)
	if f.admin != "" {
		al, err := net.Listen("tcp", f.admin)
		if err != nil {
			l.Close()
			return fmt.Errorf("memnode: --admin: %w", err)
		}
		adminSrv = &http.Server{Handler: srv.AdminHandler(), ReadHeaderTimeout: 10 * time.Second}
		go func() { adminErr <- adminSrv.Serve(al) }()
		fmt.Fprintf(out, "memnode admin on http://%s/metrics\n", al.Addr())
	}
	st := srv.Stats()
	fmt.Fprintf(out, "memnode listening on %s: %d pages of %d bytes (%s), epoch %016x, token %v\n",
		l.Addr(), st.Capacity, srv.PageSize(), size.Format(st.Capacity*uint64(srv.PageSize())), srv.Epoch(), token != nil)

	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	select {
	case err = <-served:
		// Serve failed on its own (not by Shutdown).
	case err = <-adminErr:
		err = fmt.Errorf("memnode: admin server: %w", err)
	case <-ctx.Done():
		err = nil
	}
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	serr := srv.Shutdown(sctx)
	if adminSrv != nil {
		adminSrv.Shutdown(sctx)
	}
	if err != nil && !errors.Is(err, memnode.ErrServerClosed) {
		return err
	}
	if serr != nil {
		return fmt.Errorf("memnode: graceful shutdown did not finish in %v; connections were closed", f.shutdownTimeout)
	}
	fmt.Fprintln(out, "memnode stopped")
	return nil
}
