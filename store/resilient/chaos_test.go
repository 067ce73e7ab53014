package resilient_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/farmem/farmem/engine"
	"github.com/farmem/farmem/faultproxy"
	"github.com/farmem/farmem/internal/nodeproc"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/health"
	"github.com/farmem/farmem/store/remote"
	"github.com/farmem/farmem/store/resilient"
	"github.com/farmem/farmem/store/storetest"
)

var (
	chaosSeed    = flag.Int64("chaos.seed", 0, "seed of TestChaos (0: from the clock)")
	chaosPerKind = flag.Int("chaos.faults", 0, "faults of each kind in TestChaos (0: 100, or 10 with -short)")
)

// stallLimit is how long one application operation may take before the
// watchdog declares a hang.
const stallLimit = 5 * time.Second

// TestChaos is C1's headline test: a checksummed randomized workload runs
// through the engine over a resilient store whose primary is a memnode in a
// child process behind a fault-injecting proxy, while a random schedule
// injects at least 100 faults of every kind (blackhole, delay, reset, cut,
// and kill -9 plus restart of the memnode). Every page read is checked
// against a shadow of what was written: no page may be lost, no checksum
// mismatch may reach the application, no operation may fail, and a
// watchdog fails the run (dumping every goroutine's stack) if any operation
// stalls for more than 5 s. After the faults, every page must be back on
// the memnode, current.
func TestChaos(t *testing.T) {
	perKind := *chaosPerKind
	if perKind == 0 {
		perKind = 100
		if testing.Short() {
			perKind = 10
		}
	}
	runChaos(t, 1, perKind)
}

// TestChaosTwoNodes runs the same workload over two memnodes, with the
// faults on the first one only: the second must stay healthy and keep
// serving its pages while the first fails over, and both end up current.
func TestChaosTwoNodes(t *testing.T) {
	perKind := 20
	if testing.Short() {
		perKind = 5
	}
	runChaos(t, 2, perKind)
}

func runChaos(t *testing.T, nodes, perKind int) {
	seed := *chaosSeed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -chaos.seed=%d), %d faults of each kind on node 0 of %d", seed, seed, perKind, nodes)
	rng := rand.New(rand.NewPCG(uint64(seed), 2))

	const (
		pageSize = 4096
		pages    = 512
		budget   = 48 // pages of DRAM
		workers  = 4
	)
	// Node 0 is reached through a fault-injecting proxy; the others
	// directly.
	var addrs []string
	var node *nodeproc.Proc
	var proxy *faultproxy.Proxy
	for i := range nodes {
		p, err := nodeproc.Start(nodeproc.Config{Capacity: 64 << 20, PageSize: pageSize, Stderr: os.Stderr})
		if err != nil {
			t.Fatal(err)
		}
		defer p.Stop(5 * time.Second)
		if i > 0 {
			addrs = append(addrs, p.Addr())
			continue
		}
		node = p
		if proxy, err = faultproxy.New(p.Addr()); err != nil {
			t.Fatal(err)
		}
		defer proxy.Close()
		addrs = append(addrs, proxy.Addr())
	}

	ctx := context.Background()
	var rsp atomic.Pointer[resilient.Store]
	prim, err := remote.New(ctx, remote.Config{
		Nodes: addrs, Namespace: "chaos", PageSize: pageSize,
		DialTimeout: 500 * time.Millisecond, IOTimeout: 2 * time.Second,
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		OnEpochChange: func(i int, _, e uint64) {
			if s := rsp.Load(); s != nil {
				s.EpochChanged(i, e)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rs, err := resilient.Open(ctx, resilient.Config{
		Primary: prim, Pages: pages, OwnPrimary: true,
		Health: health.Config{ProbeInterval: 20 * time.Millisecond, SuspectTimeout: 200 * time.Millisecond},
		Tick:   10 * time.Millisecond,
	}, resilient.BackupFile{Path: filepath.Join(t.TempDir(), "backup"), Create: true, RegionID: [16]byte{'c', 'h', 'a', 'o', 's'}})
	if err != nil {
		t.Fatal(err)
	}
	rsp.Store(rs)
	defer rs.Close()
	eng, err := engine.New(engine.Config{Size: pages * pageSize, PageSize: pageSize, Budget: budget * pageSize, Store: rs})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()

	// The schedule: perKind faults of each kind over a span that gives
	// each fault about 400 ms.
	total := time.Duration(perKind) * 400 * time.Millisecond
	sched := faultproxy.RandomSchedule(seed, total, perKind)
	runner, err := faultproxy.NewRunner(sched, proxy, faultproxy.Hooks{
		Kill:    node.Kill,
		Restart: node.Restart,
	})
	if err != nil {
		t.Fatal(err)
	}

	// Shadow: version[p] is the version last written to page p; page p
	// belongs to worker p % workers, so a page has one writer and reader.
	version := make([]uint64, pages)
	var ops, reads, writes, lost, mismatches, failures atomic.Uint64
	var firstErr sync.Once
	report := func(format string, args ...any) {
		firstErr.Do(func() { t.Errorf(format, args...) })
	}
	check := func(p int, buf []byte) {
		if err := storetest.Check(buf, uint64(p), version[p]); err != nil {
			if allZero(buf) {
				lost.Add(1)
			} else {
				mismatches.Add(1)
			}
			report("page %d (version %d): %v", p, version[p], err)
		}
	}
	// Setup: every page written once.
	for p := range pages {
		buf := make([]byte, pageSize)
		version[p] = 1
		storetest.Fill(buf, uint64(p), 1)
		if _, err := eng.WriteAt(ctx, buf, int64(p)*pageSize); err != nil {
			t.Fatal(err)
		}
	}

	// The watchdog: each worker stamps the start of its current operation.
	started := make([]atomic.Int64, workers)
	stop := make(chan struct{})
	var wdWG sync.WaitGroup
	wdWG.Add(1)
	go func() {
		defer wdWG.Done()
		tk := time.NewTicker(250 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			for w := range started {
				if s := started[w].Load(); s != 0 && time.Since(time.Unix(0, s)) > stallLimit {
					buf := make([]byte, 8<<20)
					n := runtime.Stack(buf, true)
					fmt.Fprintf(os.Stderr, "watchdog: worker %d stalled for over %v (seed %d); goroutines:\n%s\n", w, stallLimit, seed, buf[:n])
					panic(fmt.Sprintf("TestChaos watchdog: worker %d stalled for over %v (seed %d)", w, stallLimit, seed))
				}
			}
		}
	}()

	runCtx, cancel := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- runner.Run(runCtx, nil) }()
	var wg sync.WaitGroup
	for w := range workers {
		wseed := rng.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(wseed, uint64(w)))
			buf := make([]byte, pageSize)
			for {
				select {
				case <-runDone2(runCtx):
					return
				default:
				}
				p := r.IntN(pages/workers)*workers + w
				off := int64(p) * pageSize
				started[w].Store(time.Now().UnixNano())
				if r.IntN(3) == 0 {
					v := version[p] + 1
					storetest.Fill(buf, uint64(p), v)
					if _, err := eng.WriteAt(ctx, buf, off); err != nil {
						failures.Add(1)
						report("write of page %d: %v", p, err)
					} else {
						version[p] = v
					}
					writes.Add(1)
				} else {
					if _, err := eng.ReadAt(ctx, buf, off); err != nil {
						failures.Add(1)
						report("read of page %d: %v", p, err)
					} else {
						check(p, buf)
					}
					reads.Add(1)
				}
				started[w].Store(0)
				ops.Add(1)
			}
		}()
	}
	if err := <-runDone; err != nil {
		t.Errorf("fault runner: %v", err)
	}
	cancel()
	wg.Wait()
	runner.Heal()
	counts := runner.Counts()
	t.Logf("faults injected: %v", counts)
	for k := faultproxy.Kind(0); k < faultproxy.NumKinds; k++ {
		if counts[k] < uint64(perKind) {
			t.Errorf("only %d %v faults injected, want %d", counts[k], k, perKind)
		}
	}

	// After the faults: the node comes back healthy with nothing left in
	// the outage set, and a sweep through the application sees every page.
	if err := eng.Sync(ctx); err != nil {
		t.Errorf("sync after the faults: %v", err)
	}
	buf := make([]byte, pageSize)
	for p := range pages {
		started[0].Store(time.Now().UnixNano())
		if _, err := eng.ReadAt(ctx, buf, int64(p)*pageSize); err != nil {
			t.Errorf("final read of page %d: %v", p, err)
			continue
		}
		check(p, buf)
	}
	started[0].Store(0)
	// A read of every page through the resilient store itself finds any
	// remote copy left stale by a write that a fault delayed past a newer
	// one, and queues it for rewriting.
	for p := range pages {
		c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: store.PageID(p), Data: buf}}}
		if err := store.Do(ctx, rs, c); err != nil {
			t.Errorf("store read of page %d: %v", p, err)
			continue
		}
		check(p, buf)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		c := rs.Counters()
		healthy := true
		for _, n := range c.Nodes {
			healthy = healthy && n.State == "healthy"
		}
		if healthy && c.OutagePages == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not back in sync a minute after the faults: %+v", c)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The memnode itself holds every page, current.
	for p := range pages {
		c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: store.PageID(p), Data: buf}}}
		if err := store.Do(ctx, prim, c); err != nil {
			t.Errorf("page %d not on the memnode after resync: %v", p, err)
			continue
		}
		if err := storetest.Check(buf, uint64(p), version[p]); err != nil {
			t.Errorf("page %d on the memnode after resync: %v", p, err)
		}
	}
	close(stop)
	wdWG.Wait()
	c := rs.Counters()
	t.Logf("%d ops (%d reads, %d writes); store: %+v", ops.Load(), reads.Load(), writes.Load(), c)
	if lost.Load()+mismatches.Load()+failures.Load() > 0 {
		t.Fatalf("lost pages %d, checksum mismatches %d, failed operations %d", lost.Load(), mismatches.Load(), failures.Load())
	}
	if c.Failovers == 0 || c.ResyncedPages == 0 || c.FullResyncs == 0 {
		t.Fatalf("the faults were not felt: %+v", c)
	}
}

func runDone2(ctx context.Context) <-chan struct{} { return ctx.Done() }

func allZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}
