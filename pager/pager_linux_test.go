//go:build linux

package pager_test

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/farmem/farmem/pager"
	"github.com/farmem/farmem/uffd"
)

// gcStressDuration is the length of each GC stress run: the 60 s,
// or FARMEM_GCSTRESS_DURATION, or 5 s with -short.
func gcStressDuration(t *testing.T) time.Duration {
	if v := os.Getenv("FARMEM_GCSTRESS_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("FARMEM_GCSTRESS_DURATION: %v", err)
		}
		return d
	}
	if testing.Short() {
		return 5 * time.Second
	}
	return 60 * time.Second
}

type appRun struct {
	pages, workers int
	duration       time.Duration
	mode           string
	seed           uint64
	env            []string
}

// runApp runs the application child against the pager at socket and
// returns its final line.
func runApp(t *testing.T, socket string, a appRun) string {
	t.Helper()
	if a.seed == 0 {
		a.seed = uint64(time.Now().UnixNano())
	}
	t.Logf("application: %d pages, %d workers, mode %s, %v, seed %d %v", a.pages, a.workers, a.mode, a.duration, a.seed, a.env)
	env := append([]string{
		envSocket + "=" + socket,
		envPages + "=" + strconv.Itoa(a.pages),
		envWorkers + "=" + strconv.Itoa(a.workers),
		envDuration + "=" + a.duration.String(),
		envSeed + "=" + strconv.FormatUint(a.seed, 10),
		envMode + "=" + a.mode,
	}, a.env...)
	c := startChild(t, "app", env...)
	final := c.watch(t)
	if !strings.HasPrefix(final, "ok ") {
		t.Fatalf("application ended with %q\n%s", final, c.stderr.String())
	}
	return final
}

// TestRoundTrip: a short mixed run on a region eight times the budget, with
// each dirty tracking. With "async" no write-protect fault reaches the
// pager, and the victims the uffd-wp marker proves unwritten are evicted
// without a write-back (the application's checks show none was written).
func TestRoundTrip(t *testing.T) {
	t.Run("wp", func(t *testing.T) {
		tp := startPager(t, pager.Config{Local: 64 * 4096 * 2, Prefetch: 3, SampleInterval: 5 * time.Millisecond, SamplePages: 16})
		final := runApp(t, tp.Socket, appRun{pages: 1024, workers: 3, duration: 2 * time.Second, mode: "mixed"})
		s := tp.P.Stats()
		t.Logf("%s; pager %+v", final, s)
		if s.Evictions == 0 || s.WriteBacks == 0 || s.WPFaults == 0 || s.FetchedPages == 0 || s.HintFaults == 0 || s.StagedDrops == 0 {
			t.Fatalf("the run did not exercise eviction, write-back, dirty tracking, fetch and sampling: %+v", s)
		}
		if s.AsyncRegions != 0 || s.CleanEvictions != 0 {
			t.Fatalf("wp mode served a region asynchronously: %+v", s)
		}
		waitRegions(t, tp.P, 0)
	})
	t.Run("async", func(t *testing.T) {
		tp := startAsyncPager(t, pager.Config{Local: 64 * 4096 * 2, Prefetch: 3})
		final := runApp(t, tp.Socket, appRun{pages: 1024, workers: 3, duration: 2 * time.Second, mode: "mixed"})
		s := tp.P.Stats()
		t.Logf("%s; pager %+v", final, s)
		checkAsyncStats(t, s)
		waitRegions(t, tp.P, 0)
	})
}

// startAsyncPager starts a pager with Config.DirtyTracking "async", or
// skips the test where the kernel or its shmem settings do not allow it.
func startAsyncPager(t *testing.T, cfg pager.Config) *testPager {
	t.Helper()
	skipWithoutAsync(t)
	cfg.DirtyTracking = pager.DirtyAsync
	return startPager(t, cfg)
}

// skipWithoutAsync skips the test where async dirty tracking is impossible:
// no PAGEMAP_SCAN, or shmem huge pages on (pager.ErrShmemHuge).
func skipWithoutAsync(t *testing.T) {
	t.Helper()
	if err := uffd.ScanSupported(); err != nil {
		t.Skipf("no PAGEMAP_SCAN: %v", err)
	}
	p, err := pager.New(pager.Config{Local: 1 << 20, NewStore: (&memStores{}).factory, DirtyTracking: pager.DirtyAsync})
	if errors.Is(err, pager.ErrShmemHuge) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
}

// checkAsyncStats checks the counters of an async run: the region was
// served asynchronously, no write-protect fault came (first writes were
// resolved by the kernel), it evicted and wrote back, some victims were
// proved clean and not written back, and every eviction is either.
func checkAsyncStats(t *testing.T, s pager.Stats) {
	t.Helper()
	if s.AsyncRegions == 0 {
		t.Fatalf("no region was served with WP_ASYNC (a kernel without it?): %+v", s)
	}
	if s.WPFaults != 0 {
		t.Fatalf("%d synchronous write-protect faults in async mode: %+v", s.WPFaults, s)
	}
	if s.Evictions == 0 || s.WriteBacks == 0 || s.CleanEvictions == 0 {
		t.Fatalf("the run did not exercise eviction, write-back and clean eviction: %+v", s)
	}
	if s.WriteBackErrors == 0 && s.CleanEvictions+s.WriteBacks != s.Evictions {
		t.Fatalf("%d clean evictions + %d write-backs != %d evictions: %+v", s.CleanEvictions, s.WriteBacks, s.Evictions, s)
	}
}

// waitRegions waits until the pager has n regions (a detach is
// asynchronous).
func waitRegions(t *testing.T, p *pager.Pager, n int) {
	t.Helper()
	deadline := time.Now().Add(hangGuard)
	for p.Stats().Regions != n {
		if time.Now().After(deadline) {
			t.Fatalf("pager has %d regions, want %d", p.Stats().Regions, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if s := p.Stats(); n == 0 && s.ResidentPages != 0 {
		t.Fatalf("no regions but %d resident pages accounted", s.ResidentPages)
	}
}

// TestGCStress is the garbage-collector stress test: an
// application allocating heavily under GOGC=10 touches a mapping with plain
// loads, plain stores and copy(), at GOMAXPROCS 1, 2 and 4, while the pager
// evicts (the region is 8x the budget); every byte is checked, and a
// watchdog dumps all stacks on a stall beyond 5 s.
func TestGCStress(t *testing.T) {
	d := gcStressDuration(t)
	for _, procs := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("GOMAXPROCS=%d", procs), func(t *testing.T) {
			tp := startPager(t, pager.Config{Local: 512 * 4096, Prefetch: 3, SampleInterval: 10 * time.Millisecond})
			final := runApp(t, tp.Socket, appRun{
				pages: 4096, workers: 4, duration: d, mode: "mixed",
				env: []string{"GOGC=10", "GOMAXPROCS=" + strconv.Itoa(procs)},
			})
			s := tp.P.Stats()
			t.Logf("%s; pager %+v", final, s)
			if s.Evictions == 0 || s.WPFaults == 0 {
				t.Fatalf("no eviction or dirty tracking happened: %+v", s)
			}
		})
	}
	// Async dirty tracking, one run of the -short length.
	t.Run("async/GOMAXPROCS=2", func(t *testing.T) {
		tp := startAsyncPager(t, pager.Config{Local: 512 * 4096, Prefetch: 3})
		final := runApp(t, tp.Socket, appRun{
			pages: 4096, workers: 4, duration: min(d, 5*time.Second), mode: "mixed",
			env: []string{"GOGC=10", "GOMAXPROCS=2"},
		})
		s := tp.P.Stats()
		t.Logf("%s; pager %+v", final, s)
		checkAsyncStats(t, s)
	})
}

// TestWritesRaceEviction races writes (whole pages with stores and copy(),
// and single words) against eviction with the smallest budget, so that the
// reclaimer keeps choosing pages the application is writing; the final
// sweep shows that no write was lost.
func TestWritesRaceEviction(t *testing.T) {
	d := 5 * time.Second
	if testing.Short() {
		d = 2 * time.Second
	}
	for _, mode := range []string{pager.DirtyWP, pager.DirtyAsync} {
		t.Run(mode, func(t *testing.T) {
			cfg := pager.Config{Local: pager.MinLocalPages * 4096, Workers: 2, ReclaimBatch: 8}
			var tp *testPager
			if mode == pager.DirtyAsync {
				tp = startAsyncPager(t, cfg)
			} else {
				tp = startPager(t, cfg)
			}
			final := runApp(t, tp.Socket, appRun{pages: 256, workers: 4, duration: d, mode: "writes",
				env: []string{"GOMAXPROCS=4"}})
			s := tp.P.Stats()
			t.Logf("%s; pager %+v", final, s)
			if s.Evictions < 1000 || s.WriteBacks == 0 {
				t.Fatalf("too little eviction to race anything: %+v", s)
			}
			if mode == pager.DirtyAsync && (s.AsyncRegions == 0 || s.WPFaults != 0) {
				t.Fatalf("async: region not served asynchronously, or write-protect faults came: %+v", s)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	ok := (&memStores{}).factory
	for _, tc := range []struct {
		name string
		cfg  pager.Config
	}{
		{"no store", pager.Config{Local: 1 << 20}},
		{"tiny budget", pager.Config{Local: 4096 * 10, NewStore: ok}},
		{"negative workers", pager.Config{Local: 1 << 20, NewStore: ok, Workers: -1}},
		{"prefetch too large", pager.Config{Local: 1 << 20, NewStore: ok, Prefetch: pager.MaxPrefetch + 1}},
		{"unknown dirty tracking", pager.Config{Local: 1 << 20, NewStore: ok, DirtyTracking: "sync"}},
		{"async with sampling", pager.Config{Local: 1 << 20, NewStore: ok, DirtyTracking: pager.DirtyAsync, SampleInterval: time.Millisecond}},
		{"budget too small for the prefetch", pager.Config{Local: 64 * 4096, NewStore: ok, Workers: 16, Prefetch: 8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := pager.New(tc.cfg)
			if !errors.Is(err, pager.ErrConfig) {
				if p != nil {
					p.Close()
				}
				t.Fatalf("New: %v, want ErrConfig", err)
			}
		})
	}
}

// TestManyRegions: one pager serves three applications at once from one
// budget, each region larger than the whole budget.
func TestManyRegions(t *testing.T) {
	tp := startPager(t, pager.Config{Local: 256 * 4096, Prefetch: 1, SampleInterval: 5 * time.Millisecond})
	done := make(chan string, 3)
	for i := range 3 {
		go func() {
			c := startChild(t, "app",
				envSocket+"="+tp.Socket, envPages+"=512", envWorkers+"=2", envDuration+"=2s",
				envSeed+"="+strconv.Itoa(1000+i), envMode+"=mixed")
			for line := range c.lines {
				if strings.HasPrefix(line, "ok ") || !strings.HasPrefix(line, "progress ") {
					done <- line
				}
			}
			if err := <-c.done; err != nil {
				done <- fmt.Sprintf("child %d: %v\n%s", i, err, c.stderr.String())
			}
			c.done <- nil
		}()
	}
	for range 3 {
		if line := <-done; !strings.HasPrefix(line, "ok ") {
			t.Fatal(line)
		}
	}
	waitRegions(t, tp.P, 0)
	t.Logf("pager %+v", tp.P.Stats())
}

// TestAppKilled: an application killed mid-run (SIGKILL, faults and
// evictions in flight) is detached, and its budget returned.
func TestAppKilled(t *testing.T) {
	tp := startPager(t, pager.Config{Local: 128 * 4096})
	c := startChild(t, "app",
		envSocket+"="+tp.Socket, envPages+"=1024", envWorkers+"=4", envDuration+"=1m",
		envSeed+"=7", envMode+"=mixed")
	readLine(t, c, "progress ")
	readLine(t, c, "progress ")
	if err := c.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitRegions(t, tp.P, 0)
	// The pager still serves newcomers.
	final := runApp(t, tp.Socket, appRun{pages: 256, workers: 2, duration: time.Second, mode: "mixed"})
	t.Logf("%s; pager %+v", final, tp.P.Stats())
}
