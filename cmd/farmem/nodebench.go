package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/farmem/farmem/internal/size"
	"github.com/farmem/farmem/memnode"
	"github.com/farmem/farmem/store/remote"
)

func init() { register(newNodebenchCmd) }

// nodebenchFlags are the flags of farmem nodebench.
type nodebenchFlags struct {
	nodes                         []string
	tokenFile, capacity, json     string
	conns, callers, batch, readPc int
	duration                      time.Duration
	seed                          uint64
	pmQoS                         bool
}

// NodebenchResult is the JSON object farmem nodebench --json prints
// (fields documented in docs/PROTOCOL.md, "Throughput").
type NodebenchResult struct {
	Nodes         []string `json:"nodes"`
	Embedded      bool     `json:"embedded"`
	Conns         int      `json:"conns"`
	Callers       int      `json:"callers"`
	Batch         int      `json:"batch"`
	ReadPct       int      `json:"read_pct"`
	GOMAXPROCS    int      `json:"gomaxprocs"`
	DurationS     float64  `json:"duration_s"`
	Calls         uint64   `json:"calls"`
	PageOps       uint64   `json:"page_ops"`
	PageOpsPerSec float64  `json:"page_ops_per_sec"`
	CallsPerSec   float64  `json:"calls_per_sec"`
	CallP50US     float64  `json:"call_p50_us"`
	CallP99US     float64  `json:"call_p99_us"`
	Errors        uint64   `json:"errors"`
}

func newNodebenchCmd() *cobra.Command {
	var f nodebenchFlags
	cmd := &cobra.Command{
		Use:   "nodebench",
		Short: "Measure memnode throughput in page operations per second",
		Long: `Drive memnodes with --callers concurrent callers over a pool of --conns TCP
connections, each caller reading or writing --batch pages per call, and report
page operations per second and call latency. Without --nodes an embedded
memnode is started on 127.0.0.1 (real TCP, sharing this machine's CPUs with
the client).`,
		Example: `  farmem nodebench --duration 5s --batch 16
  farmem nodebench --nodes 10.0.0.5:7070 --conns 64 --batch 1 --json -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			return runNodebench(ctx, f, cmd.OutOrStdout())
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.nodes, "nodes", nil, "memnode addresses host:port (default: an embedded memnode)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the memnodes' token")
	fl.StringVar(&f.capacity, "capacity", "1GiB", "capacity of the embedded memnode")
	fl.IntVar(&f.conns, "conns", 64, "client TCP connections in total (spread over the nodes)")
	fl.IntVar(&f.callers, "callers", 0, "concurrent callers, one call in flight each (default: --conns)")
	fl.IntVar(&f.batch, "batch", 1, "pages per call")
	fl.IntVar(&f.readPc, "read-pct", 50, "percentage of calls that read; the rest write")
	fl.DurationVar(&f.duration, "duration", 5*time.Second, "measured duration")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of the page and operation choice")
	fl.StringVar(&f.json, "json", "", "also write the result as JSON to this file (- for stdout)")
	fl.BoolVar(&f.pmQoS, "pm-qos", false, pmQoSUsage)
	return cmd
}

func runNodebench(ctx context.Context, f nodebenchFlags, out io.Writer) error {
	switch {
	case f.conns <= 0:
		return fmt.Errorf("nodebench: --conns must be positive, got %d", f.conns)
	case f.batch <= 0 || f.batch > 4096:
		return fmt.Errorf("nodebench: --batch must be 1..4096, got %d", f.batch)
	case f.readPc < 0 || f.readPc > 100:
		return fmt.Errorf("nodebench: --read-pct must be 0..100, got %d", f.readPc)
	case f.duration <= 0:
		return fmt.Errorf("nodebench: --duration must be positive, got %v", f.duration)
	case f.callers < 0:
		return fmt.Errorf("nodebench: --callers must not be negative, got %d", f.callers)
	}
	release, err := holdPMQoS("nodebench: --pm-qos", f.pmQoS)
	if err != nil {
		return err
	}
	defer release()
	if f.callers == 0 {
		f.callers = f.conns
	}
	var token []byte
	if f.tokenFile != "" {
		var err error
		if token, err = readTokenFile("nodebench: --token-file", f.tokenFile); err != nil {
			return err
		}
	}
	res := NodebenchResult{Nodes: f.nodes, Conns: f.conns, Callers: f.callers, Batch: f.batch, ReadPct: f.readPc, GOMAXPROCS: runtime.GOMAXPROCS(0)}
	if len(f.nodes) == 0 {
		capacity, err := size.Parse(f.capacity)
		if err != nil {
			return fmt.Errorf("nodebench: --capacity: %w", err)
		}
		srv, err := memnode.New(memnode.Config{Capacity: capacity, Token: token})
		if err != nil {
			return fmt.Errorf("nodebench: %w", err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("nodebench: starting the embedded memnode: %w", err)
		}
		served := make(chan error, 1)
		go func() { served <- srv.Serve(l) }()
		defer func() { srv.Close(); <-served }()
		f.nodes = []string{l.Addr().String()}
		res.Nodes, res.Embedded = f.nodes, true
	}
	need := uint64(f.callers) * uint64(max(64, f.batch))
	perNode := max(1, f.conns/len(f.nodes))
	s, err := remote.New(ctx, remote.Config{Nodes: f.nodes, Namespace: fmt.Sprintf("farmem-nodebench-%d-%d", os.Getpid(), time.Now().UnixNano()), Token: token, ConnsPerNode: perNode})
	if err != nil {
		return fmt.Errorf("nodebench: %w", err)
	}
	defer s.Close()
	if st, err := s.Stat(ctx); err == nil && st.Capacity > 0 && st.Capacity-min(st.Capacity, st.Pages) < need {
		return fmt.Errorf("nodebench: the working set needs %d pages, the nodes have %d free", need, st.Capacity-min(st.Capacity, st.Pages))
	}
	res.Conns = perNode * len(f.nodes)
	lr, err := remote.Load(ctx, s, remote.LoadConfig{Workers: f.callers, Batch: f.batch, ReadPct: f.readPc, Duration: f.duration, Seed: f.seed})
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("nodebench: %w", err)
	}
	res.DurationS = lr.Elapsed.Seconds()
	res.Calls, res.PageOps, res.Errors = lr.Calls, lr.PageOps, lr.Errors
	res.PageOpsPerSec = lr.PageOpsPerSec()
	res.CallsPerSec = float64(lr.Calls) / lr.Elapsed.Seconds()
	res.CallP50US = float64(lr.CallP50) / float64(time.Microsecond)
	res.CallP99US = float64(lr.CallP99) / float64(time.Microsecond)

	if f.json != "-" {
		fmt.Fprintf(out, "nodes        %v (embedded %v), GOMAXPROCS %d\n", res.Nodes, res.Embedded, res.GOMAXPROCS)
		fmt.Fprintf(out, "load         %d conns, %d callers, batch %d pages, %d%% reads, %.1fs\n", res.Conns, res.Callers, res.Batch, res.ReadPct, res.DurationS)
		fmt.Fprintf(out, "throughput   %.0f page ops/s (%.0f calls/s)\n", res.PageOpsPerSec, res.CallsPerSec)
		fmt.Fprintf(out, "call latency p50 %.1f µs  p99 %.1f µs\n", res.CallP50US, res.CallP99US)
		fmt.Fprintf(out, "errors       %d\n", res.Errors)
	}
	if f.json != "" {
		var w io.Writer = out
		if f.json != "-" {
			file, err := os.Create(f.json)
			if err != nil {
				return fmt.Errorf("nodebench: --json: %w", err)
			}
			defer file.Close()
			w = file
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("nodebench: --json: %w", err)
		}
	}
	return nil
}
