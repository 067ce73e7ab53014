package remote

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/farmem/farmem/store"
)

// LoadConfig describes a throughput run against memnodes (see Load).
type LoadConfig struct {
	// Workers is the number of goroutines issuing calls, each one call at a
	// time (default 64).
	Workers int
	// Batch is the number of pages per call (default 1).
	Batch int
	// ReadPct is the share of calls that read, 0 to 100; the rest write.
	ReadPct int
	// PagesPerWorker is each worker's working set, written once before the
	// clock starts (default 64; at least Batch).
	PagesPerWorker int
	// Duration of the measured phase (default 5 s).
	Duration time.Duration
	// Seed makes the choice of pages and operations repeatable.
	Seed uint64
}

// LoadResult is what Load measured.
type LoadResult struct {
	Workers, Batch, ReadPct int
	// Calls and PageOps count completed calls and the pages they moved;
	// Errors counts failed calls.
	Calls, PageOps, Errors uint64
	Elapsed                time.Duration
	// CallP50 and CallP99 are call latencies over a sample of calls.
	CallP50, CallP99 time.Duration
}

// PageOpsPerSec is the throughput in pages read or written per second.
func (r LoadResult) PageOpsPerSec() float64 { return float64(r.PageOps) / r.Elapsed.Seconds() }

// Load drives s with cfg.Workers concurrent callers for cfg.Duration: each
// repeatedly reads or writes a batch of pages of its own working set and,
// on reads, checks the bytes. It is the memnode throughput measurement of
// farmem nodebench and BenchmarkNodeThroughput. It stops early, returning
// what it measured so far, when ctx ends, and fails on the first data error.
func Load(ctx context.Context, s *Store, cfg LoadConfig) (LoadResult, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = 64
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 1
	}
	if cfg.PagesPerWorker < cfg.Batch {
		cfg.PagesPerWorker = max(64, cfg.Batch)
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 5 * time.Second
	}
	if cfg.ReadPct < 0 || cfg.ReadPct > 100 {
		return LoadResult{}, fmt.Errorf("%w: read percentage %d is not 0..100", ErrConfig, cfg.ReadPct)
	}
	ps := s.PageSize()
	res := LoadResult{Workers: cfg.Workers, Batch: cfg.Batch, ReadPct: cfg.ReadPct}

	// Fill every working set first, so that reads find their pages.
	// A page is stamped with its id and version in its first and last 8
	// bytes; the rest is checked by the end-to-end CRC32C. Stamping and
	// checking whole pages would measure this loop, not the memnode.
	stamp := func(dst []byte, id store.PageID, version uint32) {
		v := uint64(id)<<32 | uint64(version)
		binary.LittleEndian.PutUint64(dst, v)
		binary.LittleEndian.PutUint64(dst[len(dst)-8:], v)
	}
	stamped := func(b []byte, id store.PageID, version uint32) bool {
		v := uint64(id)<<32 | uint64(version)
		return binary.LittleEndian.Uint64(b) == v && binary.LittleEndian.Uint64(b[len(b)-8:]) == v
	}
	type worker struct {
		base     store.PageID
		versions []uint32
		samples  []time.Duration
		calls    uint64
		pages    uint64
		errs     uint64
		err      error
	}
	ws := make([]*worker, cfg.Workers)
	for w := range ws {
		ws[w] = &worker{base: store.PageID(w * cfg.PagesPerWorker), versions: make([]uint32, cfg.PagesPerWorker)}
		pg := make([]store.Page, cfg.PagesPerWorker)
		for i := range pg {
			d := make([]byte, ps)
			stamp(d, ws[w].base+store.PageID(i), 0)
			pg[i] = store.Page{ID: ws[w].base + store.PageID(i), Data: d, Sum: store.Checksum(d)}
		}
		if err := store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: pg}); err != nil {
			return res, fmt.Errorf("remote: load: filling the working set: %w", err)
		}
	}

	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for wi, w := range ws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(wi)))
			bufs := make([][]byte, cfg.Batch)
			for i := range bufs {
				bufs[i] = make([]byte, ps)
			}
			c := &store.Call{Pages: make([]store.Page, cfg.Batch), Done: make(chan *store.Call, 1)}
			for n := 0; runCtx.Err() == nil; n++ {
				first := rng.IntN(cfg.PagesPerWorker - cfg.Batch + 1)
				c.Op = store.OpWrite
				if rng.IntN(100) < cfg.ReadPct {
					c.Op = store.OpRead
				}
				c.Reset()
				for i := range c.Pages {
					id := w.base + store.PageID(first+i)
					c.Pages[i] = store.Page{ID: id, Data: bufs[i]}
					if c.Op == store.OpWrite {
						w.versions[first+i]++
						stamp(bufs[i], id, w.versions[first+i])
						c.Pages[i].Sum = store.Checksum(bufs[i])
					}
				}
				t0 := time.Now()
				s.Submit(context.Background(), c)
				<-c.Done
				d := time.Since(t0)
				if n%16 == 0 && len(w.samples) < 1<<16 {
					w.samples = append(w.samples, d)
				}
				if err := c.FirstErr(); err != nil {
					w.errs++
					if errors.Is(err, store.ErrCorrupt) || errors.Is(err, store.ErrNotFound) {
						w.err = err
						return
					}
					continue
				}
				w.calls++
				w.pages += uint64(cfg.Batch)
				if c.Op == store.OpRead {
					for i, p := range c.Pages {
						if !stamped(p.Data, p.ID, w.versions[first+i]) {
							w.err = fmt.Errorf("remote: load: page %d does not hold version %d", p.ID, w.versions[first+i])
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	var all []time.Duration
	var errs []error
	for _, w := range ws {
		res.Calls += w.calls
		res.PageOps += w.pages
		res.Errors += w.errs
		all = append(all, w.samples...)
		if w.err != nil {
			errs = append(errs, w.err)
		}
	}
	if len(all) > 0 {
		slices.Sort(all)
		res.CallP50 = all[len(all)/2]
		res.CallP99 = all[len(all)*99/100]
	}
	// Leave the memnodes as they were.
	for _, w := range ws {
		pg := make([]store.Page, cfg.PagesPerWorker)
		for i := range pg {
			pg[i].ID = w.base + store.PageID(i)
		}
		store.Do(context.Background(), s, &store.Call{Op: store.OpFree, Pages: pg})
	}
	return res, errors.Join(errs...)
}
