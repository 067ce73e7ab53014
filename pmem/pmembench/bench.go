// Package pmembench measures transaction throughput, latency and fences per
// transaction of package journal on a KV-update workload: each committer
// owns a disjoint range of fixed-size value slots and, in a loop, rewrites a
// random one of them (an 8-byte version and the value) in one transaction.
// The same workload is written in C against libpmemobj in
// bench/peers/pmdk, so the two can be compared side by side.
package pmembench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/farmem/farmem/pmem"
	"github.com/farmem/farmem/pmem/journal"
)

var le = binary.LittleEndian

// ErrBadConfig is returned for an invalid benchmark configuration.
var ErrBadConfig = errors.New("pmembench: invalid configuration")

// Config describes a benchmark run: one row per combination of Committers,
// ValueBytes and Coalescing.
type Config struct {
	Path          string // pool file; created (and removed afterwards) if missing
	Mode          pmem.Mode
	TxMode        journal.Mode
	Committers    []int
	ValueBytes    []int
	Coalescing    []bool
	Duration      time.Duration // per row
	KeysPerWorker int
	MaxWait       time.Duration
	Rounds        int // journal.Options.Rounds (0: its default)
	Shards        int // journal.Options.Shards (0: its default)
	Journals      uint32
	JournalSize   uint32
	Seed          uint64
	// LatencyEvery times one transaction in LatencyEvery, chosen at random
	// (0 and 1: every one). The two clock reads of a timed transaction cost
	// ~65 ns on this guest (kvm-clock), a seventh of a coalesced
	// transaction; the C peer takes the same option.
	LatencyEvery int
	// Progress, if set, is called after each row.
	Progress func(Row)
}

// Row is one measured configuration. The JSON field names are the ones
// `farmem pmem bench --json` documents.
type Row struct {
	Committers  int     `json:"committers"`
	Coalescing  bool    `json:"coalescing"`
	ValueBytes  int     `json:"value_bytes"`
	TxPerSec    float64 `json:"tx_per_sec"`
	FencesPerTx float64 `json:"fences_per_tx"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	Txs         uint64  `json:"txs"`
	TxMode      string  `json:"tx_mode"`
	// LatencyEvery is Config.LatencyEvery (1: every transaction timed);
	// TimedTxs is how many transactions p50_us and p99_us come from.
	LatencyEvery int    `json:"latency_every"`
	TimedTxs     uint64 `json:"timed_txs"`
	Domain       string `json:"domain"`
}

// Default returns the default configuration: 1, 2, 4 and 8 committers,
// values of 64, 256 and 1024 bytes, with and without coalescing, redo
// transactions, CLWB+SFENCE on the given file treated as pmem, 1024
// journals of 4 KiB (as many as a PMDK pool has lanes). With 64 journals
// the watermark must advance every 16 transactions of a core, and each
// advance passes cache lines between the cores: 4 committers ran at
// 3.9 M tx/s against 4.4 M with 1024, and 2.1 M against 2.7 M while the
// host kept the vCPUs far apart (docs/PMEM.md).
func Default(path string) Config {
	return Config{
		Path: path, Mode: pmem.ModeForcePmem, TxMode: journal.Redo,
		Committers: []int{1, 2, 4, 8}, ValueBytes: []int{64, 256, 1024}, Coalescing: []bool{false, true},
		Duration: time.Second, KeysPerWorker: 1024, Journals: 1024, JournalSize: 4096, Seed: 1,
	}
}

func (c Config) validate() error {
	switch {
	case c.Path == "":
		return fmt.Errorf("%w: no pool path", ErrBadConfig)
	case len(c.Committers) == 0 || len(c.ValueBytes) == 0 || len(c.Coalescing) == 0:
		return fmt.Errorf("%w: empty committers, value sizes or coalescing list", ErrBadConfig)
	case c.Duration <= 0 || c.KeysPerWorker <= 0:
		return fmt.Errorf("%w: duration and keys per worker must be positive", ErrBadConfig)
	case c.LatencyEvery < 0:
		return fmt.Errorf("%w: latency sampling every %d transactions", ErrBadConfig, c.LatencyEvery)
	case c.TxMode != journal.Redo && c.TxMode != journal.Undo:
		return fmt.Errorf("%w: tx mode %v", ErrBadConfig, c.TxMode)
	}
	for _, n := range c.Committers {
		if n < 1 || n > 256 {
			return fmt.Errorf("%w: committers %d not in [1, 256]", ErrBadConfig, n)
		}
	}
	for _, v := range c.ValueBytes {
		if v < 1 || v+8+journal.EntryHeaderSize+journal.HeaderSize > int(c.JournalSize) {
			return fmt.Errorf("%w: value of %d bytes does not fit a %d-byte journal", ErrBadConfig, v, c.JournalSize)
		}
	}
	return nil
}

// Run measures every configuration and returns the rows.
func Run(c Config) ([]Row, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	maxW, maxV := slices.Max(c.Committers), slices.Max(c.ValueBytes)
	slot := uint64(8+maxV+63) &^ 63
	need := uint64(maxW*c.KeysPerWorker)*slot + uint64(c.Journals)*uint64(c.JournalSize) + 1<<20
	size := need + need/32 + (2 << 20)
	p, err := pmem.Create(c.Path, pmem.CreateOptions{Size: size, Layout: "farmem-pmembench", Journals: c.Journals, JournalSize: c.JournalSize, Mode: c.Mode})
	if err != nil {
		return nil, err
	}
	defer os.Remove(c.Path)
	defer p.Close()
	// The value table: chunks of at most 128 KiB, each allocated in its own
	// transaction (a transaction never spans journals, and a big block's
	// allocation-map bytes would not fit one), listed in a directory block
	// that is the named root "kv".
	keys := maxW * c.KeysPerWorker
	perChunk := max(1, int((128<<10)/slot))
	nchunks := (keys + perChunk - 1) / perChunk
	j, _, err := journal.Open(p, journal.Options{})
	if err != nil {
		return nil, err
	}
	chunks := make([]uint64, nchunks)
	dirBytes := make([]byte, 0, 8*nchunks)
	for i := range chunks {
		tx, err := j.Begin(journal.Redo)
		if err != nil {
			return nil, err
		}
		if chunks[i], err = j.Allocator().Alloc(tx, uint64(perChunk)*slot); err != nil {
			return nil, err
		}
		if err := tx.Commit(); err != nil {
			return nil, err
		}
		dirBytes = le.AppendUint64(dirBytes, chunks[i])
	}
	tx, err := j.Begin(journal.Redo)
	if err != nil {
		return nil, err
	}
	dir, err := j.Allocator().Alloc(tx, uint64(len(dirBytes)))
	if err != nil {
		return nil, err
	}
	if err := tx.Write(dir, dirBytes); err != nil {
		return nil, err
	}
	if err := p.SetRoot(tx, "kv", dir, uint64(len(dirBytes))); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	if err := j.Close(); err != nil {
		return nil, err
	}
	// Every key's slot offset, looked up per transaction (as the C peer
	// indexes one flat table) rather than computed with two divisions.
	slots := make([]uint64, keys)
	for k := range slots {
		slots[k] = chunks[k/perChunk] + uint64(k%perChunk)*slot
	}
	var rows []Row
	for _, v := range c.ValueBytes {
		for _, co := range c.Coalescing {
			for _, w := range c.Committers {
				r, err := runRow(p, c, slots, w, v, co)
				if err != nil {
					return rows, err
				}
				rows = append(rows, r)
				if c.Progress != nil {
					c.Progress(r)
				}
			}
		}
	}
	return rows, nil
}

// committer is one committer's private state, which its goroutine writes
// on every transaction: the generator's state, the value buffer and the
// Tx. Each lies on cache lines of its own. Allocated one by one, they are
// small heap objects that the allocator packs beside the next committer's,
// whose goroutine runs on the other core: a profile with the two vCPUs
// far apart showed 15% of the CPU time in the generator and 11% in the
// value copies, all cache misses on lines the other core had just
// written. The C peer keeps the same state on each thread's stack and in
// per-thread malloc arenas. (The value buffer is allocated with a padding
// line on each side.)
type committer struct {
	_   [128]byte
	pcg rand.PCG
	_   [128]byte
	tx  journal.Tx
	_   [128]byte
}

// runRow measures one configuration; slots holds every key's slot offset,
// committer w owning keys [w*KeysPerWorker, (w+1)*KeysPerWorker).
func runRow(p *pmem.Pool, c Config, slots []uint64, workers, vbytes int, co bool) (Row, error) {
	j, _, err := journal.Open(p, journal.Options{Coalesce: co, MaxWait: c.MaxWait, GroupSize: workers, BeginTimeout: 5 * time.Second, Rounds: c.Rounds, Shards: c.Shards})
	if err != nil {
		return Row{}, err
	}
	startFences := p.Stats().Fences
	var wg sync.WaitGroup
	lats := make([]hist, workers)
	errs := make([]error, workers)
	counts := make([]uint64, workers)
	cs := make([]committer, workers)
	start := time.Now()
	deadline := start.Add(c.Duration)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			me := &cs[w]
			me.pcg.Seed(c.Seed, uint64(w))
			rng := rand.New(&me.pcg)
			buf := make([]byte, 128+8+vbytes+128)[128 : 128+8+vbytes]
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			// Counted in a local and stored once: neighbouring committers'
			// counters share a cache line, which every increment would pass
			// between the cores (the C peer does the same).
			var txs uint64
			defer func() { counts[w] = txs }()
			lat := &lats[w]
			every := c.LatencyEvery
			tx := &me.tx // reused: BeginInto allocates nothing
			mine := slots[w*c.KeysPerWorker : (w+1)*c.KeysPerWorker]

			for n := uint64(1); ; n++ {
				if n%64 == 0 && time.Now().After(deadline) {
					break
				}
				off := mine[rng.IntN(len(mine))]
				// Latency from the monotonic clock alone (time.Since of a
				// time with a monotonic reading skips the wall clock), so
				// the harness reads the clock twice per timed transaction,
				// as the C peer does. Sampled transactions are chosen at
				// random, not every Nth, so that they do not fall in step
				// with the groups' leader/follower pattern.
				timed := every <= 1 || rng.Uint32()%uint32(every) == 0
				var t0 time.Duration
				if timed {
					t0 = time.Since(start)
				}
				if err := j.BeginInto(tx, c.TxMode); err != nil {
					errs[w] = err
					return
				}
				buf[0], buf[1], buf[2] = byte(n), byte(n>>8), byte(n>>16)
				if err := tx.Write(off, buf); err != nil {
					errs[w] = err
					return
				}
				if err := tx.Commit(); err != nil {
					errs[w] = err
					return
				}
				if timed {
					lat.record(int64(time.Since(start) - t0))
				}
				txs++
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start)
	fences := p.Stats().Fences - startFences
	for _, err := range errs {
		if err != nil {
			return Row{}, err
		}
	}
	if err := j.Close(); err != nil {
		return Row{}, err
	}
	var all hist
	var txs uint64
	for w := range lats {
		all.add(&lats[w])
		txs += counts[w]
	}
	pct := func(q float64) float64 { return float64(all.quantile(q)) / 1e3 }
	var timed uint64
	for _, n := range all {
		timed += n
	}
	r := Row{
		Committers: workers, Coalescing: co, ValueBytes: vbytes, Txs: txs,
		TxPerSec: float64(txs) / elapsed.Seconds(), P50us: pct(0.50), P99us: pct(0.99),
		TxMode: c.TxMode.String(), Domain: p.DomainName(), LatencyEvery: max(1, c.LatencyEvery), TimedTxs: timed,
	}
	if txs > 0 {
		r.FencesPerTx = float64(fences) / float64(txs)
	}
	return r, nil
}
