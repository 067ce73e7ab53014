package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/farmem/farmem"
	"github.com/farmem/farmem/faultproxy"
	"github.com/farmem/farmem/internal/nodeproc"
	"github.com/farmem/farmem/internal/size"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/remote"
	"github.com/farmem/farmem/store/resilient"
	"github.com/farmem/farmem/workload"
	"github.com/farmem/farmem/workload/hist"
)

func init() { register(newBenchCmd) }

// benchFlags are the flags of farmem bench; their names are a contract that
// scripts rely on (docs/BENCH.md).
type benchFlags struct {
	workload, size, local, baselineLocal string
	duration                             time.Duration
	nodes                                []string
	tokenFile, pattern, trace, mix, json string
	seed                                 uint64
	pageSize                             int
	rttSamples                           int
	noProgress, verify                   bool
	mode                                 string
	backup, faults                       string
	deadline                             time.Duration
	spinRead                             time.Duration
	pmQoS                                bool
}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run a workload on far memory and report throughput, fault latency and integrity",
		Long: `Run a workload on a far-memory region and report throughput, fault latency
against the raw TCP round trip, paging volume and integrity errors.

Without --nodes it starts a memnode in a child process on a loopback TCP port
(real TCP) and stops it at exit. Every byte read is checked against a shadow
model of what was written. With --json the result is one JSON object
(fields in docs/BENCH.md).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBench(cmd.Context(), f, cmd.OutOrStdout()) },
	}
	fl := cmd.Flags()
	fl.StringVar(&f.mode, "mode", "explicit", "explicit (ReadAt/WriteAt on a Region) or transparent (a plain []byte mapped through the pager)")
	fl.StringVar(&f.workload, "workload", "zipf", "workload: "+strings.Join(workload.Names, ", "))
	fl.StringVar(&f.size, "size", "256MiB", "region size (e.g. 256MiB, 1GiB)")
	fl.StringVar(&f.local, "local", "25%", "local DRAM budget: a size, or a percentage of --size")
	fl.StringVar(&f.baselineLocal, "baseline-local", "", "also run the same workload with this local budget (e.g. 100%) and report the slowdown")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "length of the measured phase")
	fl.StringSliceVar(&f.nodes, "nodes", nil, "memnode addresses host:port (default: an embedded memnode)")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the memnodes' token")
	fl.StringVar(&f.pattern, "pattern", "", "workload pattern (kv: a, b, c; pagewalk: sequential, strided, zipf, uniform)")
	fl.StringVar(&f.trace, "trace", "", "trace file for --workload trace (format in docs/WORKLOADS.md)")
	fl.StringVar(&f.mix, "mix", "", "read:write mix, e.g. 50:50 or 95:5 (default: the workload's)")
	fl.Uint64Var(&f.seed, "seed", 1, "seed of every random choice")
	fl.IntVar(&f.pageSize, "page-size", 4096, "page size in bytes")
	fl.IntVar(&f.rttSamples, "rtt-samples", 2000, "round trips measured by the raw TCP reference client")
	fl.StringVar(&f.json, "json", "", "write the result as JSON to FILE, or - for stdout")
	fl.BoolVar(&f.noProgress, "no-progress", false, "never draw a progress bar")
	fl.BoolVar(&f.verify, "verify", true, "after the run, read the whole region back and check every byte against the shadow")
	fl.StringVar(&f.backup, "backup", "", "local backup file of every remote page (C1; default: a temporary file removed at exit; none: no backup, the plain remote store); an existing farmem backup there is replaced")
	fl.StringVar(&f.faults, "faults", "", "fault schedule injected between the client and the memnodes during the measured phase, e.g. blackhole@5s+3s,delay@10s+2s:50ms,reset@14s,kill@16s+2s (docs/FAULTS.md)")
	fl.DurationVar(&f.deadline, "deadline", 0, "fixed remote read deadline (default: adaptive, clamp(4 x p99, 2ms, 100ms))")
	fl.DurationVar(&f.spinRead, "spin-read", farmem.DefaultSpinRead, "--mode explicit: how long a fault busy-polls its connection for the reply before sleeping (0: never)")
	fl.BoolVar(&f.pmQoS, "pm-qos", false, pmQoSUsage+" (for the whole run, pager and memnode children included)")
	return cmd
}

// Latency is a latency summary in microseconds.
type Latency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p999"`
	Max   float64 `json:"max"`
}

// RTT is the raw round-trip reference in microseconds.
type RTT struct {
	Samples int     `json:"samples"`
	P50     float64 `json:"p50"`
	P99     float64 `json:"p99"`
}

// BenchErrors counts what went wrong; a healthy run has all zeros.
type BenchErrors struct {
	LostPages          uint64   `json:"lost_pages"`
	ChecksumMismatches uint64   `json:"checksum_mismatches"`
	Other              uint64   `json:"other"`
	FirstErrors        []string `json:"first_errors,omitempty"`
}

// BenchConfig echoes the run's configuration.
type BenchConfig struct {
	SizeBytes    int64    `json:"size_bytes"`
	LocalBytes   int64    `json:"local_bytes"`
	LocalPct     float64  `json:"local_pct"`
	PageSize     int      `json:"page_size"`
	Nodes        []string `json:"nodes"`
	EmbeddedNode bool     `json:"embedded_node"`
	Pattern      string   `json:"pattern,omitempty"`
	Mix          string   `json:"mix,omitempty"`
	Seed         uint64   `json:"seed"`
	DurationS    float64  `json:"duration_s"`
	Trace        string   `json:"trace,omitempty"`
	GOMAXPROCS   int      `json:"gomaxprocs"`
	// SpinReadUS is --spin-read (explicit mode; 0: off).
	SpinReadUS float64 `json:"spin_read_us"`
	// PMQoS says the run held a 0 µs PM QoS CPU latency request.
	PMQoS bool `json:"pm_qos"`
}

// Memory reports the client's memory against its target.
type Memory struct {
	PeakRSSBytes  int64 `json:"peak_rss_bytes"`
	BudgetBytes   int64 `json:"budget_bytes"`
	MetadataBytes int64 `json:"metadata_bytes"`
	ShadowBytes   int64 `json:"shadow_bytes"`
	// LimitBytes is budget + metadata + 64 MiB, the client RSS target.
	LimitBytes int64 `json:"limit_bytes"`
}

// Baseline is the same workload run with another local budget.
type Baseline struct {
	LocalBytes int64   `json:"local_bytes"`
	LocalPct   float64 `json:"local_pct"`
	Ops        uint64  `json:"ops"`
	OpsPerSec  float64 `json:"ops_per_sec"`
	Faults     uint64  `json:"faults"`
	// Slowdown is the baseline's ops/s divided by the main run's.
	Slowdown float64 `json:"slowdown"`
}

// Failover sums up C1's work in a run: remote reads served by the backup
// instead, pages read from the backup, pages that entered the outage set,
// and pages copied back to memnodes by resync.
type Failover struct {
	Count         uint64 `json:"count"`
	BackupReads   uint64 `json:"backup_reads"`
	OutagePages   uint64 `json:"outage_pages"`
	ResyncedPages uint64 `json:"resynced_pages"`
}

// FaultWindowLatency is a fault latency summary in microseconds over the
// faults that happened while injected faults were in force.
type FaultWindowLatency struct {
	Count uint64  `json:"count"`
	P50   float64 `json:"p50"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
}

// Resilience is the detail behind Failover: the resilient store's counters,
// the backup read latency and the deadline, for the benchmark rule "during a
// blackhole, fault p99 <= deadline + 2 x backup read p99".
type Resilience struct {
	Faults              string             `json:"faults,omitempty"`
	FaultsInjected      map[string]uint64  `json:"faults_injected,omitempty"`
	BackupFile          string             `json:"backup_file"`
	BackupReadLatencyUS FaultWindowLatency `json:"backup_read_latency_us"`
	DuringBlackholeUS   FaultWindowLatency `json:"fault_latency_us_during_blackhole"`
	WhileDownUS         FaultWindowLatency `json:"fault_latency_us_while_down"`
	DeadlineMSMax       float64            `json:"read_deadline_ms_max"` // over the measured phase with --faults, else at its end
	DeadlineMSBlackhole float64            `json:"read_deadline_ms_max_during_blackhole"`
	Store               resilient.Counters `json:"store"`
}

// BenchResult is the JSON object of farmem bench --json.
type BenchResult struct {
	Workload         string      `json:"workload"`
	Mode             string      `json:"mode"`
	Config           BenchConfig `json:"config"`
	Ops              uint64      `json:"ops"`
	Reads            uint64      `json:"reads"`
	Writes           uint64      `json:"writes"`
	OpsPerSec        float64     `json:"ops_per_sec"`
	DurationS        float64     `json:"duration_s"`
	SetupS           float64     `json:"setup_s"`
	VerifyS          float64     `json:"verify_s"`
	Faults           uint64      `json:"faults"`
	FaultBatches     uint64      `json:"fault_batches"`
	Hits             uint64      `json:"hits"`
	ZeroFills        uint64      `json:"zero_fills"`
	FaultLatencyUS   Latency     `json:"fault_latency_us"`
	RawRTTUS         RTT         `json:"raw_rtt_us"`
	FaultToRTTP50    float64     `json:"fault_to_rtt_p50"`
	BytesFetched     uint64      `json:"bytes_fetched"`
	BytesWrittenBack uint64      `json:"bytes_written_back"`
	Evictions        uint64      `json:"evictions"`
	Memory           Memory      `json:"memory"`
	Errors           BenchErrors `json:"errors"`
	Baseline         *Baseline   `json:"baseline,omitempty"`
	// C1 (resilient remote memory).
	Failover             *Failover           `json:"failover,omitempty"`
	FaultLatencyDuringUS *FaultWindowLatency `json:"fault_latency_us_during_faults,omitempty"`
	Resilience           *Resilience         `json:"resilience,omitempty"`
}

func runBench(ctx context.Context, f benchFlags, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if f.spinRead < 0 {
		return fmt.Errorf("--spin-read %v: must not be negative", f.spinRead)
	}
	release, err := holdPMQoS("--pm-qos", f.pmQoS)
	if err != nil {
		return err
	}
	defer release()
	switch f.mode {
	case "explicit":
	case "transparent":
		if f.backup != "" || f.faults != "" || f.deadline != 0 {
			return fmt.Errorf("--backup, --faults and --deadline are for --mode explicit")
		}
		if f.spinRead != farmem.DefaultSpinRead {
			return fmt.Errorf("--spin-read is for --mode explicit (the pager has --spin: --pager-spin)")
		}
		return runTransparentBench(ctx, f, out)
	default:
		return fmt.Errorf("--mode %q: want explicit or transparent", f.mode)
	}
	sz, err := size.Parse(f.size)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	if f.pageSize < 4096 || f.pageSize&(f.pageSize-1) != 0 {
		return fmt.Errorf("--page-size %d: not a power of two of at least 4096", f.pageSize)
	}
	regionSize := int64(sz) / int64(f.pageSize) * int64(f.pageSize)
	if regionSize < 64*int64(f.pageSize) {
		return fmt.Errorf("--size %s: at least 64 pages are needed", f.size)
	}
	local, err := parseLocal(f.local, regionSize)
	if err != nil {
		return fmt.Errorf("--local: %w", err)
	}
	var baseLocal int64
	if f.baselineLocal != "" {
		if baseLocal, err = parseLocal(f.baselineLocal, regionSize); err != nil {
			return fmt.Errorf("--baseline-local: %w", err)
		}
	}
	if f.duration <= 0 {
		return fmt.Errorf("--duration %v: must be positive", f.duration)
	}
	if f.rttSamples < 10 {
		return fmt.Errorf("--rtt-samples %d: at least 10", f.rttSamples)
	}
	wcfg := workload.Config{
		Name: f.workload, Size: regionSize, PageSize: f.pageSize, Pattern: f.pattern,
		Seed: f.seed, Mix: f.mix, TracePath: f.trace,
	}
	// Validate the workload before any process starts.
	if w, err := workload.New(wcfg); err != nil {
		return err
	} else {
		w.Close()
	}
	var sched faultproxy.Schedule
	if f.faults != "" {
		if sched, err = faultproxy.Parse(f.faults); err != nil {
			return fmt.Errorf("--faults: %w", err)
		}
		if len(f.nodes) > 0 && sched.Count(faultproxy.Kill) > 0 {
			return fmt.Errorf("--faults: kill needs the embedded memnode (leave out --nodes)")
		}
	}
	if f.deadline < 0 {
		return fmt.Errorf("--deadline %v: must not be negative", f.deadline)
	}
	var token []byte
	if f.tokenFile != "" {
		if token, err = readTokenFile("--token-file", f.tokenFile); err != nil {
			return err
		}
	}

	res := &BenchResult{Workload: f.workload, Mode: "explicit"}
	res.Config = BenchConfig{
		SizeBytes: regionSize, LocalBytes: local, LocalPct: pct(local, regionSize), PageSize: f.pageSize,
		Nodes: f.nodes, Pattern: f.pattern, Mix: f.mix, Seed: f.seed, DurationS: f.duration.Seconds(),
		Trace: f.trace, GOMAXPROCS: gomaxprocs(),
		SpinReadUS: float64(f.spinRead) / float64(time.Microsecond), PMQoS: f.pmQoS,
	}
	nodes := f.nodes
	var embedded *nodeproc.Proc
	if len(nodes) == 0 {
		// Room for the region twice over (the baseline run uses a second
		// namespace) and for the RTT probe.
		capacity := uint64(regionSize)*2 + 16<<20
		p, err := nodeproc.Start(nodeproc.Config{Capacity: capacity, PageSize: f.pageSize, Token: token, Stderr: os.Stderr})
		if err != nil {
			return fmt.Errorf("starting the embedded memnode: %w", err)
		}
		defer p.Stop(5 * time.Second)
		embedded = p
		nodes = []string{p.Addr()}
		res.Config.Nodes = nodes
		res.Config.EmbeddedNode = true
	}

	// The physical reference: a bare 4 KiB request/response on one TCP
	// connection to the same memnode, with the least code possible.
	rtt, err := remote.RawRTT(ctx, nodes[0], "farmem-bench-rtt-"+randomName(), token, f.rttSamples)
	if err != nil {
		return fmt.Errorf("raw RTT to %s: %w", nodes[0], err)
	}
	res.RawRTTUS = summarizeRTT(rtt)

	// C1: every run keeps a backup of its remote pages; with --faults the
	// client reaches the memnodes through fault-injecting proxies.
	tmpDir, err := os.MkdirTemp("", "farmem-bench-")
	if err != nil {
		return fmt.Errorf("bench: temporary backup directory: %w", err)
	}
	defer os.RemoveAll(tmpDir)
	env := &benchEnv{backup: filepath.Join(tmpDir, "backup"), deadline: f.deadline, clientNodes: nodes}
	switch f.backup {
	case "":
	case "none":
		// No C1: the plain remote store, for comparison.
		env.backup = ""
	default:
		if err := prepareBackup(f.backup); err != nil {
			return err
		}
		env.backup = f.backup
	}
	if f.faults != "" {
		var inj multiInjector
		env.clientNodes = nil
		for _, n := range nodes {
			p, err := faultproxy.New(n)
			if err != nil {
				return fmt.Errorf("--faults: %w", err)
			}
			defer p.Close()
			inj = append(inj, p)
			env.clientNodes = append(env.clientNodes, p.Addr())
		}
		var hooks faultproxy.Hooks
		if embedded != nil {
			hooks = faultproxy.Hooks{Kill: embedded.Kill, Restart: embedded.Restart}
		}
		if env.runner, err = faultproxy.NewRunner(sched, inj, hooks); err != nil {
			return fmt.Errorf("--faults: %w", err)
		}
		env.sched = sched
	}

	run, err := benchRun(ctx, f, wcfg, env, token, regionSize, local, true)
	if err != nil {
		return err
	}
	run.fill(res)
	if env.backup != "" {
		res.Failover, res.FaultLatencyDuringUS, res.Resilience = run.resilience(f, env)
	}
	// The peak RSS of the main run, before a baseline run with a larger
	// budget raises it.
	res.Memory.PeakRSSBytes = peakRSS()
	if res.RawRTTUS.P50 > 0 {
		res.FaultToRTTP50 = res.FaultLatencyUS.P50 / res.RawRTTUS.P50
	}
	if baseLocal > 0 {
		benv := &benchEnv{backup: filepath.Join(tmpDir, "baseline-backup"), deadline: f.deadline, clientNodes: nodes}
		if env.backup == "" {
			benv.backup = ""
		}
		b, err := benchRun(ctx, f, wcfg, benv, token, regionSize, baseLocal, false)
		if err != nil {
			return fmt.Errorf("baseline run: %w", err)
		}
		res.Baseline = &Baseline{
			LocalBytes: baseLocal, LocalPct: pct(baseLocal, regionSize),
			Ops: b.ws.Ops, OpsPerSec: float64(b.ws.Ops) / b.elapsed.Seconds(), Faults: b.es.Faults,
		}
		if res.OpsPerSec > 0 {
			res.Baseline.Slowdown = res.Baseline.OpsPerSec / res.OpsPerSec
		}
	}
	printBenchTable(out, res)
	if f.json != "" {
		if err := writeJSONTo(f.json, out, res); err != nil {
			return err
		}
	}
	return res.Errors.err()
}

// runOutcome is what one measured run produced.
type runOutcome struct {
	ws       workload.Stats
	es       farmem.Stats
	elapsed  time.Duration
	setup    time.Duration
	verify   time.Duration
	lat      *hist.Histogram
	batches  uint64
	errs     BenchErrors
	metadata int64
	shadow   int64
	local    int64

	// C1: latencies of faults while injected faults were in force (any,
	// and blackholes), of backup reads; the deadline; the store's counters.
	during, duringBH, whileDown, backupLat *hist.Histogram
	deadlineMax, deadlineBH                float64
	counters                               resilient.Counters
	injected                               faultproxy.Counts
}

// benchEnv is what a measured run needs beyond the flags: where the backup
// goes, the addresses the client dials (proxies under --faults) and the
// fault runner.
type benchEnv struct {
	backup      string
	deadline    time.Duration
	clientNodes []string
	runner      *faultproxy.Runner
	sched       faultproxy.Schedule
}

func (r *runOutcome) fill(res *BenchResult) {
	res.Ops, res.Reads, res.Writes = r.ws.Ops, r.ws.Reads, r.ws.Writes
	res.DurationS = r.elapsed.Seconds()
	res.SetupS = r.setup.Seconds()
	if r.elapsed > 0 {
		res.OpsPerSec = float64(r.ws.Ops) / r.elapsed.Seconds()
	}
	res.Faults = r.es.Faults
	res.FaultBatches = r.batches
	res.Hits = r.es.Hits
	res.ZeroFills = r.es.ZeroFills
	res.FaultLatencyUS = summarize(r.lat)
	res.BytesFetched = r.es.FetchedBytes
	res.BytesWrittenBack = r.es.WrittenBackBytes
	res.Evictions = r.es.Evictions
	res.Errors = r.errs
	res.VerifyS = r.verify.Seconds()
	res.Memory = Memory{
		BudgetBytes: r.local, MetadataBytes: r.metadata, ShadowBytes: r.shadow,
		LimitBytes: r.local + r.metadata + 64<<20,
	}
}

// benchRun opens a fresh region, sets the workload up, and runs the measured
// phase for f.duration.
func benchRun(ctx context.Context, f benchFlags, wcfg workload.Config, env *benchEnv, token []byte, regionSize, local int64, progress bool) (*runOutcome, error) {
	out := &runOutcome{lat: new(hist.Histogram), local: local,
		during: new(hist.Histogram), duringBH: new(hist.Histogram), whileDown: new(hist.Histogram), backupLat: new(hist.Histogram)}
	var measuring atomic.Bool
	var batches atomic.Uint64
	var measureStart atomic.Int64
	// faultNow says whether injected faults are in force (or a node has
	// not recovered from one yet), as the sampler last saw it: 1 any, 2 a
	// blackhole.
	var faultNow atomic.Int32
	// downSince is when the sampler first saw a node down (Unix ns; 0:
	// none is): a fault that began after it ran entirely while down.
	var downSince atomic.Int64
	r, err := farmem.Open(ctx, farmem.Config{
		Size: regionSize, Local: local, PageSize: f.pageSize, Nodes: env.clientNodes, Token: token,
		Namespace: "farmem-bench-" + randomName(),
		FaultObserver: func(pages int, d time.Duration) {
			if measuring.Load() {
				out.lat.RecordDuration(d)
				batches.Add(1)
				if env.runner != nil {
					switch faultNow.Load() {
					case 2:
						out.duringBH.RecordDuration(d)
						fallthrough
					case 1:
						out.during.RecordDuration(d)
					}
					if ds := downSince.Load(); ds != 0 && time.Now().Add(-d).UnixNano() > ds {
						out.whileDown.RecordDuration(d)
					}
				}
			}
		},
		Backup: env.backup, CreateBackup: env.backup != "", ReadDeadline: env.deadline,
		SpinRead: spinReadConfig(f.spinRead),
		BackupReadObserver: func(pages int, d time.Duration) {
			if measuring.Load() {
				out.backupLat.RecordDuration(d)
			}
		},
	})
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// Give the memnodes their capacity back: the namespace is this run's
	// alone and nobody opens it again.
	defer r.Discard(context.WithoutCancel(ctx))
	w, err := workload.New(wcfg)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	t0 := time.Now()
	if err := w.Setup(ctx, r); err != nil {
		return nil, fmt.Errorf("workload setup: %w", err)
	}
	out.setup = time.Since(t0)
	out.shadow = w.ShadowBytes() // the shadow is sized by Setup
	before := r.Stats()

	var bar *progressbar.ProgressBar
	if progress && !f.noProgress && f.duration > 2*time.Second && term.IsTerminal(int(os.Stderr.Fd())) {
		bar = progressbar.NewOptions64(f.duration.Milliseconds(),
			progressbar.OptionSetWriter(os.Stderr),
			progressbar.OptionSetDescription(fmt.Sprintf("%s %s", wcfg.Name, size.Format(uint64(regionSize)))),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionClearOnFinish(),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
	}
	measuring.Store(true)
	measureStart.Store(time.Now().UnixNano())
	stopFaults := func() {}
	if env.runner != nil {
		fctx, cancel := context.WithCancel(ctx)
		runDone := make(chan struct{})
		go func() {
			defer close(runDone)
			env.runner.Run(fctx, nil)
		}()
		sampDone := make(chan struct{})
		go func() {
			defer close(sampDone)
			tk := time.NewTicker(2 * time.Millisecond)
			defer tk.Stop()
			for {
				select {
				case <-fctx.Done():
					return
				case <-tk.C:
				}
				at := time.Since(time.Unix(0, measureStart.Load()))
				st := env.sched.At(at)
				c, _ := r.Resilience()
				unhealthy, down := false, false
				for _, n := range c.Nodes {
					unhealthy = unhealthy || n.State != "healthy"
					down = down || n.State == "down"
					out.deadlineMax = max(out.deadlineMax, n.DeadlineMS)
					if st.Blackhole {
						out.deadlineBH = max(out.deadlineBH, n.DeadlineMS)
					}
				}
				if !down {
					downSince.Store(0)
				} else if downSince.Load() == 0 {
					downSince.Store(time.Now().UnixNano())
				}
				switch {
				case st.Blackhole:
					faultNow.Store(2)
				case st.Cut || st.Killed || st.Delay > 0 || unhealthy:
					faultNow.Store(1)
				default:
					faultNow.Store(0)
				}
			}
		}()
		stopFaults = func() {
			cancel()
			<-runDone
			<-sampDone
			env.runner.Heal()
			out.injected = env.runner.Counts()
		}
	}
	res, runErr := workload.Run(ctx, w, r, workload.RunOptions{
		Duration:  f.duration,
		MaxErrors: 1000,
		Progress: func(p workload.Result) {
			if bar != nil {
				bar.Set64(p.Elapsed.Milliseconds())
			}
		},
		ProgressInterval: 200 * time.Millisecond,
	})
	measuring.Store(false)
	stopFaults()
	if bar != nil {
		bar.Finish()
	}
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return nil, fmt.Errorf("bench: %w", runErr)
	}
	out.elapsed = res.Elapsed
	out.ws = res.Stats
	after := r.Stats()
	out.es = diffStats(before, after)
	out.metadata = after.MetadataBytes
	out.batches = batches.Load()
	out.finish(ctx, f.verify, res, w, r)
	out.counters, _ = r.Resilience()
	if out.deadlineMax == 0 {
		// No fault sampler ran: report the deadline in force at the end.
		for _, n := range out.counters.Nodes {
			out.deadlineMax = max(out.deadlineMax, n.DeadlineMS)
		}
	}
	return out, nil
}

// resilience makes the C1 parts of the result.
func (r *runOutcome) resilience(f benchFlags, env *benchEnv) (*Failover, *FaultWindowLatency, *Resilience) {
	c := r.counters
	fo := &Failover{Count: c.Failovers, BackupReads: c.BackupReads, OutagePages: c.OutageAdded, ResyncedPages: c.ResyncedPages}
	window := func(h *hist.Histogram) FaultWindowLatency {
		l := summarize(h)
		return FaultWindowLatency{Count: l.Count, P50: l.P50, P99: l.P99, Max: l.Max}
	}
	res := &Resilience{
		Faults: f.faults, BackupFile: f.backup, Store: c,
		BackupReadLatencyUS: window(r.backupLat),
		DeadlineMSMax:       r.deadlineMax, DeadlineMSBlackhole: r.deadlineBH,
	}
	if f.backup == "" {
		res.BackupFile = "(temporary)"
	}
	var during *FaultWindowLatency
	if env.runner != nil {
		d := window(r.during)
		during = &d
		res.DuringBlackholeUS = window(r.duringBH)
		res.WhileDownUS = window(r.whileDown)
		res.FaultsInjected = map[string]uint64{}
		for k := faultproxy.Kind(0); k < faultproxy.NumKinds; k++ {
			res.FaultsInjected[k.String()] = r.injected[k]
		}
	}
	return fo, during, res
}

// prepareBackup makes way for a fresh backup at path: nothing there, or a
// farmem backup (of an earlier bench region, which nobody can reopen) that
// is removed. Anything else is refused.
func prepareBackup(path string) error {
	b := make([]byte, 8)
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("--backup: %w", err)
	}
	n, _ := io.ReadFull(fh, b)
	fh.Close()
	if string(b[:n]) != "FARMNVM1" {
		return fmt.Errorf("--backup %s: the file exists and is not a farmem backup; remove it or name another", path)
	}
	os.Remove(path + ".outage")
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("--backup: %w", err)
	}
	return nil
}

// multiInjector applies link faults to every proxy (one per memnode).
type multiInjector []*faultproxy.Proxy

func (m multiInjector) SetBlackhole(on bool) {
	for _, p := range m {
		p.SetBlackhole(on)
	}
}

func (m multiInjector) SetDelay(d time.Duration) {
	for _, p := range m {
		p.SetDelay(d)
	}
}

func (m multiInjector) SetCut(on bool) {
	for _, p := range m {
		p.SetCut(on)
	}
}

func (m multiInjector) ResetAll() {
	for _, p := range m {
		p.ResetAll()
	}
}

// finish counts the run's errors and mismatches and, with verify, sweeps
// the whole region against the shadow model.
func (r *runOutcome) finish(ctx context.Context, verify bool, res workload.Result, w workload.Workload, mem workload.Memory) {
	for _, e := range res.FirstErrors {
		r.errs.count(e)
	}
	// Errors beyond the ones kept in detail count as "other".
	if n := uint64(len(res.FirstErrors)); res.Errors > n {
		r.errs.Other += res.Errors - n
	}
	r.addMismatches(res.Stats, "run")
	if verify && ctx.Err() == nil {
		t1 := time.Now()
		vs, err := w.Verify(ctx, mem)
		if err != nil {
			r.errs.count(fmt.Errorf("verify sweep: %w", err))
		}
		r.addMismatches(vs, "verify")
		r.verify = time.Since(t1)
	}
}

// addMismatches adds the shadow model's findings: reads of all zeros where
// data was expected are lost pages, other wrong bytes checksum mismatches
// that reached the application.
func (r *runOutcome) addMismatches(s workload.Stats, phase string) {
	r.errs.LostPages += s.Lost
	r.errs.ChecksumMismatches += s.Mismatches - s.Lost
	for _, m := range s.FirstMismatches() {
		if len(r.errs.FirstErrors) < 8 {
			r.errs.FirstErrors = append(r.errs.FirstErrors, phase+" mismatch: "+m.String())
		}
	}
}

// err is the bench's failure when any error was counted: the run's exit
// status is non-zero then.
func (e BenchErrors) err() error {
	if n := e.LostPages + e.ChecksumMismatches + e.Other; n > 0 {
		return fmt.Errorf("bench: %d errors (lost pages %d, checksum mismatches %d, other %d)",
			n, e.LostPages, e.ChecksumMismatches, e.Other)
	}
	return nil
}

func (e *BenchErrors) count(err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		e.LostPages++
	case errors.Is(err, store.ErrCorrupt):
		e.ChecksumMismatches++
	default:
		e.Other++
	}
	if len(e.FirstErrors) < 8 {
		e.FirstErrors = append(e.FirstErrors, err.Error())
	}
}

func diffStats(a, b farmem.Stats) farmem.Stats {
	return farmem.Stats{
		Hits: b.Hits - a.Hits, Faults: b.Faults - a.Faults, ZeroFills: b.ZeroFills - a.ZeroFills,
		FetchedBytes: b.FetchedBytes - a.FetchedBytes, WrittenBackBytes: b.WrittenBackBytes - a.WrittenBackBytes,
		Evictions: b.Evictions - a.Evictions, WriteBacks: b.WriteBacks - a.WriteBacks,
		FetchErrors: b.FetchErrors - a.FetchErrors, WriteBackErrors: b.WriteBackErrors - a.WriteBackErrors,
		DirectReclaims: b.DirectReclaims - a.DirectReclaims, Waits: b.Waits - a.Waits,
		Frames: b.Frames, MetadataBytes: b.MetadataBytes,
	}
}

// parseLocal reads a budget given as a size or as a percentage of the region.
func parseLocal(s string, regionSize int64) (int64, error) {
	if p, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
		v, err := strconv.ParseFloat(p, 64)
		if err != nil || v <= 0 || v > 100 {
			return 0, fmt.Errorf("%q: a percentage must be in (0, 100]", s)
		}
		return int64(float64(regionSize) * v / 100), nil
	}
	n, err := size.Parse(s)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, fmt.Errorf("%q: must be positive", s)
	}
	return int64(min(n, uint64(regionSize))), nil
}

func pct(a, b int64) float64 { return 100 * float64(a) / float64(b) }

func randomName() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func summarize(h *hist.Histogram) Latency {
	m := h.Summary().Micros()
	return Latency{Count: m.Count, P50: m.P50, P90: m.P90, P99: m.P99, P999: m.P999, Max: m.Max}
}

func summarizeRTT(samples []time.Duration) RTT {
	h := new(hist.Histogram)
	for _, d := range samples {
		h.RecordDuration(d)
	}
	l := summarize(h)
	return RTT{Samples: len(samples), P50: l.P50, P99: l.P99}
}

func printBenchTable(w io.Writer, r *BenchResult) {
	fmt.Fprintf(w, "workload            %s %s (%s)\n", r.Workload, r.Config.Pattern, r.Mode)
	fmt.Fprintf(w, "region / local      %s / %s (%.1f%%), page %d B, nodes %s\n",
		human(uint64(r.Config.SizeBytes)), human(uint64(r.Config.LocalBytes)), r.Config.LocalPct, r.Config.PageSize, strings.Join(r.Config.Nodes, ","))
	fmt.Fprintf(w, "ops                 %d in %.2f s = %.0f ops/s (%d reads, %d writes; setup %.2f s)\n", r.Ops, r.DurationS, r.OpsPerSec, r.Reads, r.Writes, r.SetupS)
	fmt.Fprintf(w, "faults              %d pages in %d fetches, %d hits, %d zero fills\n", r.Faults, r.FaultBatches, r.Hits, r.ZeroFills)
	l := r.FaultLatencyUS
	fmt.Fprintf(w, "fault latency µs    p50 %.1f  p90 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", l.P50, l.P90, l.P99, l.P999, l.Max)
	fmt.Fprintf(w, "raw TCP RTT µs      p50 %.1f  p99 %.1f  (%d samples)\n", r.RawRTTUS.P50, r.RawRTTUS.P99, r.RawRTTUS.Samples)
	fmt.Fprintf(w, "fault / RTT (p50)   %.2f\n", r.FaultToRTTP50)
	fmt.Fprintf(w, "paging              fetched %s, written back %s, %d evictions\n",
		human(r.BytesFetched), human(r.BytesWrittenBack), r.Evictions)
	fmt.Fprintf(w, "client memory       peak RSS %s; budget %s + metadata %s + 64 MiB = %s\n",
		human(uint64(r.Memory.PeakRSSBytes)), human(uint64(r.Memory.BudgetBytes)), human(uint64(r.Memory.MetadataBytes)), human(uint64(r.Memory.LimitBytes)))
	if b := r.Baseline; b != nil {
		fmt.Fprintf(w, "baseline            local %s (%.0f%%): %.0f ops/s; slowdown %.2fx\n", human(uint64(b.LocalBytes)), b.LocalPct, b.OpsPerSec, b.Slowdown)
	}
	if fo := r.Failover; fo != nil {
		fmt.Fprintf(w, "failover            %d failovers, %d backup reads, %d outage pages, %d resynced pages\n", fo.Count, fo.BackupReads, fo.OutagePages, fo.ResyncedPages)
	}
	if rs := r.Resilience; rs != nil {
		b := rs.BackupReadLatencyUS
		fmt.Fprintf(w, "backup read µs      p50 %.1f  p99 %.1f  max %.1f  (%d reads); deadline max %.2f ms\n", b.P50, b.P99, b.Max, b.Count, rs.DeadlineMSMax)
		if rs.Faults != "" {
			fmt.Fprintf(w, "faults injected     %s\n", formatInjected(rs.FaultsInjected))
		}
	}
	if d := r.FaultLatencyDuringUS; d != nil {
		fmt.Fprintf(w, "during faults µs    p50 %.1f  p99 %.1f  max %.1f  (%d faults)\n", d.P50, d.P99, d.Max, d.Count)
		bh := r.Resilience.DuringBlackholeUS
		fmt.Fprintf(w, "during blackhole µs p50 %.1f  p99 %.1f  max %.1f  (%d faults; deadline max %.2f ms)\n", bh.P50, bh.P99, bh.Max, bh.Count, r.Resilience.DeadlineMSBlackhole)
		wd := r.Resilience.WhileDownUS
		fmt.Fprintf(w, "node down µs        p50 %.1f  p99 %.1f  max %.1f  (%d faults begun and ended while a node was down)\n", wd.P50, wd.P99, wd.Max, wd.Count)
	}
	fmt.Fprintf(w, "errors              lost pages %d, checksum mismatches %d, other %d\n", r.Errors.LostPages, r.Errors.ChecksumMismatches, r.Errors.Other)
	for _, e := range r.Errors.FirstErrors {
		fmt.Fprintf(w, "  %s\n", e)
	}
}

func formatInjected(m map[string]uint64) string {
	var parts []string
	for k := faultproxy.Kind(0); k < faultproxy.NumKinds; k++ {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k.String()]))
	}
	return strings.Join(parts, ", ")
}

// human formats a byte count for people, with one decimal.
func human(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

func writeJSONTo(dest string, stdout io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if dest == "-" {
		_, err = stdout.Write(b)
		return err
	}
	if err := os.WriteFile(dest, b, 0o644); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	return nil
}

// spinReadConfig maps --spin-read to farmem.Config.SpinRead, where 0 means
// the default and a negative value off.
func spinReadConfig(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
