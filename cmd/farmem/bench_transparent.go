package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/spf13/cobra"

	"github.com/farmem/farmem"
	"github.com/farmem/farmem/internal/nodeproc"
	"github.com/farmem/farmem/internal/size"
	"github.com/farmem/farmem/pager"
	"github.com/farmem/farmem/store/remote"
	"github.com/farmem/farmem/uffd"
	"github.com/farmem/farmem/workload"
	"github.com/farmem/farmem/workload/hist"
)

// Flags of farmem bench that only transparent mode reads. bench.go builds
// the command; the init below adds these to it, so that this mode's flags
// live with this mode.
var transparentFlags struct {
	socket       string
	prefetch     int
	faultSamples int
	spin         time.Duration
	sample       time.Duration
	pagerLost    time.Duration
	dirty        string
}

func init() {
	// This file's init runs after bench.go's (files are initialized in name
	// order), so the bench constructor is registered already; wrap it.
	for i, mk := range subcommands {
		subcommands[i] = func() *cobra.Command {
			c := mk()
			if c.Name() == "bench" && c.Flags().Lookup("socket") == nil {
				fl := c.Flags()
				fl.StringVar(&transparentFlags.socket, "socket", "", "--mode transparent: attach to the pager on this socket (default: start one, with --local as its budget)")
				fl.IntVar(&transparentFlags.prefetch, "prefetch", 0, "--mode transparent: the started pager's --prefetch")
				fl.DurationVar(&transparentFlags.spin, "pager-spin", 0, "--mode transparent: the started pager's --spin")
				fl.DurationVar(&transparentFlags.sample, "pager-sample-interval", 0, "--mode transparent: the started pager's --sample-interval (access sampling; 0: off)")
				fl.IntVar(&transparentFlags.faultSamples, "fault-samples", 2000, "--mode transparent: timed first touches of non-resident pages, and bare userfaultfd faults")
				fl.StringVar(&transparentFlags.dirty, "pager-dirty-tracking", pager.DirtyWP, "--mode transparent: the started pager's --dirty-tracking (wp or async)")
				fl.DurationVar(&transparentFlags.pagerLost, "pager-lost-timeout", 30*time.Second, "--mode transparent: exit with an error when the pager is gone this long (accesses to absent pages block until a pager re-attaches)")
			}
			return c
		}
	}
}

// Transparent is the transparent-mode block of farmem bench --json.
type Transparent struct {
	// FaultP50US is the median time of the application's first touch of a
	// page that is not resident (mincore says so), in a random order after
	// the workload: a fault served by the pager from the far tier.
	FaultP50US float64 `json:"fault_p50_us"`
	FaultP99US float64 `json:"fault_p99_us"`
	// FaultSamples is how many such touches were timed.
	FaultSamples int `json:"fault_samples"`
	// BareUffdP50US is uffd.MeasureBareFault's median: a minimal handler in
	// another process serving local data.
	BareUffdP50US float64 `json:"bare_uffd_p50_us"`
	// RawRTTP50US is the raw TCP round trip of a 4 KiB read to the memnode.
	RawRTTP50US float64 `json:"raw_rtt_p50_us"`
	// Ratio is FaultP50US / (BareUffdP50US + RawRTTP50US); the target is
	// at most 1.25.
	Ratio float64 `json:"ratio"`
	// Socket is the pager's socket; EmbeddedPager says bench started it.
	Socket        string `json:"socket"`
	EmbeddedPager bool   `json:"embedded_pager"`
	// Pager holds the started pager's counters (absent with --socket).
	Pager *pager.Stats `json:"pager,omitempty"`
	// DirtyTracking compares the two ways to learn which pages were
	// written (uffd.MeasureDirtyTracking, after the workload); absent when
	// the measurement failed (DirtyTrackingError says why).
	DirtyTracking      *DirtyTracking `json:"dirty_tracking,omitempty"`
	DirtyTrackingError string         `json:"dirty_tracking_error,omitempty"`
}

// DirtyTracking is the dirty-tracking block of the transparent result: the
// first store to a write-protected page resolved by a handler in another
// process (what the pager pays today, once per page written between two
// evictions) against the same store under UFFD_FEATURE_WP_ASYNC, plus the
// PAGEMAP_SCAN pass that then collects and re-protects the written pages.
type DirtyTracking struct {
	Pages             int          `json:"pages"`
	Rounds            int          `json:"rounds"`
	SyncWPStoreP50US  float64      `json:"sync_wp_store_p50_us"`
	SyncWPStoreP99US  float64      `json:"sync_wp_store_p99_us"`
	AsyncWPStoreP50US float64      `json:"async_wp_store_p50_us"`
	AsyncWPStoreP99US float64      `json:"async_wp_store_p99_us"`
	Scan              []ScanCostUS `json:"scan"`
}

// ScanCostUS is one PAGEMAP_SCAN pass over DirtyTracking.Pages pages that
// finds WrittenPages written pages and re-protects them.
type ScanCostUS struct {
	WrittenPages   int     `json:"written_pages"`
	PerCallP50US   float64 `json:"per_call_p50_us"`
	PerCallP99US   float64 `json:"per_call_p99_us"`
	PerWrittenPage float64 `json:"per_written_page_p50_us"`
}

// dirtyTrackingPages and dirtyTrackingRounds size the measurement: about
// 0.1-0.3 s on the 2-vCPU machines.
const dirtyTrackingPages, dirtyTrackingRounds = 1024, 20

func measureDirtyTracking(t *Transparent) {
	r, err := uffd.MeasureDirtyTracking(dirtyTrackingPages, dirtyTrackingRounds)
	if err != nil {
		t.DirtyTrackingError = err.Error()
		return
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	dt := &DirtyTracking{
		Pages: r.Pages, Rounds: r.Rounds,
		SyncWPStoreP50US: us(r.SyncWP.P50), SyncWPStoreP99US: us(r.SyncWP.P99),
		AsyncWPStoreP50US: us(r.AsyncWP.P50), AsyncWPStoreP99US: us(r.AsyncWP.P99),
	}
	for _, c := range r.Scan {
		dt.Scan = append(dt.Scan, ScanCostUS{
			WrittenPages: c.Pages, PerCallP50US: us(c.PerCall.P50), PerCallP99US: us(c.PerCall.P99),
			PerWrittenPage: us(c.PerPage.P50),
		})
	}
	t.DirtyTracking = dt
}

// transparentResult is BenchResult with the transparent block.
type transparentResult struct {
	BenchResult
	Transparent Transparent `json:"transparent"`
}

// runTransparentBench runs farmem bench --mode transparent: the workload on
// a farmem.Map mapping (workload.SliceMemory over its bytes, so every access
// is a plain load or store), served by a pager process that it starts
// unless --socket names one, over the memnodes of --nodes or an embedded
// memnode child. In the same run it measures the bare userfaultfd fault and
// the raw TCP round trip, and times first touches of non-resident pages.
func runTransparentBench(ctx context.Context, f benchFlags, out io.Writer) error {
	ps := os.Getpagesize()
	if f.pageSize != ps {
		return fmt.Errorf("--mode transparent: --page-size %d: the pager serves the system page size %d", f.pageSize, ps)
	}
	sz, err := size.Parse(f.size)
	if err != nil {
		return fmt.Errorf("--size: %w", err)
	}
	regionSize := int64(sz) / int64(ps) * int64(ps)
	if regionSize < 64*int64(ps) {
		return fmt.Errorf("--size %s: at least 64 pages are needed", f.size)
	}
	local, err := parseLocal(f.local, regionSize)
	if err != nil {
		return fmt.Errorf("--local: %w", err)
	}
	if f.baselineLocal != "" {
		return errors.New("--mode transparent: --baseline-local is not supported (run twice with different --local)")
	}
	if f.duration <= 0 {
		return fmt.Errorf("--duration %v: must be positive", f.duration)
	}
	if f.rttSamples < 10 {
		return fmt.Errorf("--rtt-samples %d: at least 10", f.rttSamples)
	}
	tf := transparentFlags
	if tf.pagerLost <= 0 {
		return fmt.Errorf("--pager-lost-timeout %v: must be positive", tf.pagerLost)
	}
	if tf.faultSamples < 10 {
		return fmt.Errorf("--fault-samples %d: at least 10", tf.faultSamples)
	}
	if err := checkDirtyTracking("--pager-dirty-tracking", tf.dirty); err != nil {
		return err
	}
	wcfg := workload.Config{
		Name: f.workload, Size: regionSize, PageSize: ps, Pattern: f.pattern,
		Seed: f.seed, Mix: f.mix, TracePath: f.trace,
	}
	if w, err := workload.New(wcfg); err != nil {
		return err
	} else {
		w.Close()
	}
	var token []byte
	if f.tokenFile != "" {
		if token, err = readTokenFile("--token-file", f.tokenFile); err != nil {
			return err
		}
	}
	res := &transparentResult{BenchResult: BenchResult{Workload: f.workload, Mode: "transparent"}}
	res.Config = BenchConfig{
		SizeBytes: regionSize, LocalBytes: local, LocalPct: pct(local, regionSize), PageSize: ps,
		Nodes: f.nodes, Pattern: f.pattern, Mix: f.mix, Seed: f.seed, DurationS: f.duration.Seconds(),
		Trace: f.trace, GOMAXPROCS: gomaxprocs(), PMQoS: f.pmQoS,
	}
	nodes := f.nodes
	if len(nodes) == 0 && tf.socket == "" {
		capacity := uint64(regionSize) + 16<<20
		p, err := nodeproc.Start(nodeproc.Config{Capacity: capacity, PageSize: ps, Token: token, Stderr: os.Stderr})
		if err != nil {
			return fmt.Errorf("starting the embedded memnode: %w", err)
		}
		defer p.Stop(5 * time.Second)
		nodes = []string{p.Addr()}
		res.Config.Nodes = nodes
		res.Config.EmbeddedNode = true
	}

	sock := tf.socket
	var pg *pagerProc
	if sock == "" {
		if pg, err = startPagerProc(ctx, local, nodes, f.tokenFile, tf.prefetch, tf.spin, tf.sample, f.backup, tf.dirty); err != nil {
			return err
		}
		defer pg.stop()
		sock = pg.socket
	}
	res.Transparent.Socket, res.Transparent.EmbeddedPager = sock, pg != nil

	m, err := farmem.Map(ctx, sock, int(regionSize))
	if err != nil {
		return err
	}
	stopWatch := watchPager(m, sock, tf.pagerLost, func() {
		if pg != nil {
			pg.kill()
		}
	})
	defer stopWatch()
	mem := workload.SliceMemory(m.Bytes())
	refs := references{bare: new(hist.Histogram), rtt: new(hist.Histogram)}
	if len(nodes) > 0 {
		refs.node, refs.token = nodes[0], token
	}
	run, err := transparentRun(ctx, f, wcfg, mem, tf.faultSamples, m.Bytes(), ps, &refs)
	if run != nil {
		run.outcome.local = local
	}
	if cerr := m.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	run.outcome.fill(&res.BenchResult)
	res.FaultLatencyUS = summarize(run.faults)
	res.Memory.PeakRSSBytes = peakRSS()
	if pg != nil {
		st, err := pg.stop()
		if err != nil {
			fmt.Fprintf(os.Stderr, "bench: pager stats: %v\n", err)
		} else {
			res.Transparent.Pager = &st
			res.Faults, res.FaultBatches, res.ZeroFills = st.InstalledPages, st.Faults, st.ZeroFills
			res.BytesFetched = st.FetchedPages * uint64(ps)
			res.BytesWrittenBack = st.WriteBacks * uint64(ps)
			res.Evictions = st.Evictions
		}
	}
	res.RawRTTUS = summarizeRTTHist(refs.rtt)
	bareSum := summarizeRTTHist(refs.bare)
	t := &res.Transparent
	t.FaultP50US, t.FaultP99US, t.FaultSamples = res.FaultLatencyUS.P50, res.FaultLatencyUS.P99, int(res.FaultLatencyUS.Count)
	t.BareUffdP50US, t.RawRTTP50US = bareSum.P50, res.RawRTTUS.P50
	if d := t.BareUffdP50US + t.RawRTTP50US; d > 0 {
		t.Ratio = t.FaultP50US / d
	}
	if res.RawRTTUS.P50 > 0 {
		res.FaultToRTTP50 = res.FaultLatencyUS.P50 / res.RawRTTUS.P50
	}
	if ctx.Err() == nil {
		measureDirtyTracking(t)
	}
	printBenchTable(out, &res.BenchResult)
	fmt.Fprintf(out, "transparent fault   p50 %.1f µs (%d first touches of non-resident pages); bare uffd p50 %.1f µs + raw RTT p50 %.1f µs; ratio %.2f (target <= 1.25)\n",
		t.FaultP50US, t.FaultSamples, t.BareUffdP50US, t.RawRTTP50US, t.Ratio)
	if dt := t.DirtyTracking; dt != nil {
		fmt.Fprintf(out, "dirty tracking      first store to a write-protected page p50 %.2f µs (sync WP fault) vs %.2f µs (WP_ASYNC)", dt.SyncWPStoreP50US, dt.AsyncWPStoreP50US)
		if n := len(dt.Scan); n > 0 {
			c := dt.Scan[n-1]
			fmt.Fprintf(out, " + PAGEMAP_SCAN %.3f µs per written page (%d written)", c.PerWrittenPage, c.WrittenPages)
		}
		fmt.Fprintln(out)
	} else if t.DirtyTrackingError != "" {
		fmt.Fprintf(out, "dirty tracking      not measured: %s\n", t.DirtyTrackingError)
	}
	if f.json != "" {
		if err := writeJSONTo(f.json, out, res); err != nil {
			return err
		}
	}
	return res.Errors.err()
}

type transparentOutcome struct {
	outcome runOutcome
	faults  *hist.Histogram
}

// transparentRun sets the workload up on the mapping, runs it, verifies it,
// and then times first touches of non-resident pages.
func transparentRun(ctx context.Context, f benchFlags, wcfg workload.Config, mem workload.Memory, samples int, b []byte, ps int, refs *references) (*transparentOutcome, error) {
	w, err := workload.New(wcfg)
	if err != nil {
		return nil, err
	}
	defer w.Close()
	out := &transparentOutcome{faults: new(hist.Histogram)}
	o := &out.outcome
	o.lat, o.shadow, o.local = new(hist.Histogram), w.ShadowBytes(), 0
	t0 := time.Now()
	if err := w.Setup(ctx, mem); err != nil {
		return nil, fmt.Errorf("workload setup: %w", err)
	}
	o.setup = time.Since(t0)
	res, runErr := workload.Run(ctx, w, mem, workload.RunOptions{Duration: f.duration, MaxErrors: 1000})
	if runErr != nil && !errors.Is(runErr, context.Canceled) {
		return nil, fmt.Errorf("bench: %w", runErr)
	}
	o.elapsed, o.ws = res.Elapsed, res.Stats
	o.finish(ctx, f.verify, res, w, mem)
	if ctx.Err() == nil {
		if err := refs.interleave(ctx, b, ps, samples, f.rttSamples, f.seed, out.faults); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// references are the bare userfaultfd fault and the raw RTT, measured in
// the same run as the pager's faults.
type references struct {
	node      string // memnode for the raw RTT; empty: not measured
	token     []byte
	bare, rtt *hist.Histogram
}

// probeRounds is how many rounds interleave the three measurements.
const probeRounds = 8

// interleave measures, in probeRounds rounds, a share of the bare faults,
// of the raw round trips and of the pager's faults each, so that the load
// of a shared machine weighs on the three alike (a run's p50s are then
// comparable even when the machine's load changes during the run).
func (r *references) interleave(ctx context.Context, b []byte, ps, faults, rtts int, seed uint64, h *hist.Histogram) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	for i := range probeRounds {
		bare, err := uffd.BareFaultSamples(share(faults, i))
		if err != nil {
			return fmt.Errorf("bare userfaultfd fault: %w", err)
		}
		for _, d := range bare {
			r.bare.RecordDuration(d)
		}
		if r.node != "" {
			rtt, err := remote.RawRTT(ctx, r.node, "farmem-bench-rtt-"+randomName(), r.token, share(rtts, i))
			if err != nil {
				return fmt.Errorf("raw RTT to %s: %w", r.node, err)
			}
			for _, d := range rtt {
				r.rtt.RecordDuration(d)
			}
		}
		if err := probeFaults(b, ps, share(faults, i), rng, h); err != nil {
			return err
		}
	}
	return nil
}

// share is round i's part of n samples.
func share(n, i int) int { return n/probeRounds + btoi(i < n%probeRounds) }

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func summarizeRTTHist(h *hist.Histogram) RTT {
	l := summarize(h)
	return RTT{Samples: int(l.Count), P50: l.P50, P99: l.P99}
}

// probeFaults times first touches (one-byte loads) of up to n pages that
// mincore(2) reports not resident, in a random order: each is a fault that
// the pager serves from the far tier. After the verify sweep the resident
// pages are the last ones swept, so most of the region qualifies.
func probeFaults(b []byte, ps, n int, rng *rand.Rand, h *hist.Histogram) error {
	pages := len(b) / ps
	var vec [1]byte
	tried := 0
	for taken := 0; taken < n && tried < 8*n && tried < 4*pages; tried++ {
		pg := rng.IntN(pages)
		p := unsafe.Pointer(&b[pg*ps])
		if _, _, errno := syscall.Syscall(syscall.SYS_MINCORE, uintptr(p), uintptr(ps), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
			return fmt.Errorf("fault probe: mincore: %w", errno)
		}
		if vec[0]&1 != 0 {
			continue
		}
		t := time.Now()
		probeSink += b[pg*ps]
		h.RecordDuration(time.Since(t))
		taken++
	}
	return nil
}

// probeSink keeps the probe's loads from being optimized away.
var probeSink byte

// pagerProc is a farmem pager child process started by the bench.
type pagerProc struct {
	cmd    *exec.Cmd
	dir    string
	socket string
	done   chan error
	stats  pager.Stats
	err    error
	once   bool
}

// startPagerProc starts this binary as "farmem pager" on a socket in a
// fresh temporary directory and waits until it listens.
func startPagerProc(ctx context.Context, local int64, nodes []string, tokenFile string, prefetch int, spin, sample time.Duration, backup, dirty string) (*pagerProc, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("starting the pager: %w", err)
	}
	dir, err := os.MkdirTemp("", "farmem-bench-pager-")
	if err != nil {
		return nil, fmt.Errorf("starting the pager: %w", err)
	}
	p := &pagerProc{dir: dir, socket: filepath.Join(dir, "pager.sock"), done: make(chan error, 1)}
	args := []string{"pager", "--socket", p.socket, "--local", fmt.Sprint(local),
		"--namespace", "farmem-bench-pager-" + randomName(), "--stats-json", filepath.Join(dir, "stats.json"),
		"--prefetch", fmt.Sprint(prefetch), "--spin", spin.String(), "--sample-interval", sample.String(),
		"--dirty-tracking", dirty}
	if len(nodes) > 0 {
		// As in explicit mode, every remote page is backed up locally: by
		// default in a file in the pager's temporary directory.
		if backup == "" {
			backup = filepath.Join(dir, "backup")
		}
		args = append(args, "--nodes", strings.Join(nodes, ","), "--backup", backup)
	}
	if tokenFile != "" {
		args = append(args, "--token-file", tokenFile)
	}
	p.cmd = exec.Command(exe, args...)
	p.cmd.Stderr = os.Stderr
	// The pager dies with the bench, so a crashed bench leaves none.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting the pager: %w", err)
	}
	ready := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() && strings.HasPrefix(sc.Text(), "pager listening") {
			ready <- nil
		} else {
			ready <- errors.New("the pager exited before it listened")
		}
		io.Copy(io.Discard, stdout)
		p.done <- p.cmd.Wait()
	}()
	select {
	case err = <-ready:
	case <-ctx.Done():
		err = ctx.Err()
	case <-time.After(30 * time.Second):
		err = errors.New("the pager did not listen within 30 s")
	}
	if err != nil {
		p.stop()
		return nil, fmt.Errorf("starting the pager: %w", err)
	}
	return p, nil
}

// stop ends the pager (SIGTERM, then SIGKILL after 10 s), reads the stats
// it wrote, and removes its directory. It is idempotent.
// kill kills the pager child and removes its directory, for an exit
// that cannot wait for stop.
func (p *pagerProc) kill() {
	_ = p.cmd.Process.Kill()
	os.RemoveAll(p.dir)
}

func (p *pagerProc) stop() (pager.Stats, error) {
	if p.once {
		return p.stats, p.err
	}
	p.once = true
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
	defer os.RemoveAll(p.dir)
	b, err := os.ReadFile(filepath.Join(p.dir, "stats.json"))
	if err != nil {
		p.err = err
		return p.stats, err
	}
	p.err = json.Unmarshal(b, &p.stats)
	return p.stats, p.err
}

// watchPager ends the process when the pager serving m has been gone for
// longer than grace and no pager took the region back: the workload's
// goroutines are then blocked in page faults that nothing can serve or
// interrupt (a mapping never reads zeros), so bench would hang. cleanup
// runs first (the nodeproc memnode child dies with the process). The
// returned function stops the watch.
func watchPager(m *farmem.Mapping, sock string, grace time.Duration, cleanup func()) (stop func()) {
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		var since time.Time
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			err := m.Err()
			switch {
			case err == nil || errors.Is(err, farmem.ErrMappingClosed):
				since = time.Time{}
			case since.IsZero():
				since = time.Now()
				fmt.Fprintf(os.Stderr, "bench: the pager on %s is gone (%v); waiting up to %v for one to take the region back\n", sock, err, grace)
			case time.Since(since) > grace:
				cleanup()
				fmt.Fprintf(os.Stderr, "farmem: bench: the pager on %s has been gone for %v (%v): accesses to absent pages cannot be served; giving up\n", sock, grace, err)
				os.Exit(1)
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done) }) }
}
