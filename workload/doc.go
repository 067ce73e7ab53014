// Package workload generates the memory workloads of farmem bench and of the
// tests: operations over a region seen through a two-method Memory
// interface, each of them checked byte for byte against a compact shadow
// model.
//
// # Memory
//
// A workload touches its region only through Memory — ReadAt and WriteAt,
// the io.ReaderAt / io.WriterAt contract. The explicit farmem Region is a
// Memory as it is; a transparent mapping is one through SliceMemory, whose
// copy() turns every access into plain loads and stores that page-fault. A
// caller measures latency, records traces (Recorder) or injects faults by
// wrapping the Memory; the workloads need none of that.
//
// # Workloads
//
// New builds a workload from a Config by name:
//
//   - seq, uniform, zipf read or write one whole page per operation, chosen
//     in order, uniformly, or with YCSB's zipfian skew θ = 0.99. The zipf
//     generator is that of Gray, Sundaresan, Englert, Baclawski and
//     Weinberger, "Quickly Generating Billion-Record Synthetic Databases"
//     (SIGMOD 1994), which YCSB uses; the standard library's rand.Zipf
//     needs s > 1. As in YCSB's ScrambledZipfianGenerator the ranks are
//     scattered over the region (here by a keyed permutation rather than
//     FNV modulo n, so no two ranks merge).
//   - kv is a hash table in the region: fixed 16-byte keys and values,
//     open addressing with linear probing, loaded in Setup and then driven
//     with the YCSB core workloads A (50% reads, 50% updates), B (95/5) and
//     C (read only) of Cooper et al., "Benchmarking Cloud Serving Systems
//     with YCSB" (SoCC 2010), keys chosen by zipf.
//   - pagewalk stores a four-level radix page table shaped like x86-64's in
//     the region and translates virtual pages through it — four dependent
//     8-byte reads — before touching the data page. Tables and data pages
//     are scattered over the region, so one line of a leaf table names eight
//     unrelated pages: the case for page-table-directed prefetch (C2).
//     PageTable exposes the layout so a prefetcher can recognize table
//     pages and decode their entries.
//   - trace replays a recorded or hand-written trace in the text or the
//     binary format (trace.go).
//
// # Shadow model
//
// A workload never keeps a copy of the region. What it writes is a
// deterministic function of (seed, unit, version) — a unit being a page, a
// trace grain or a kv key — and the byte at each absolute offset differs,
// so the shadow is a version number per unit: 4 bytes per 4 KiB page
// (0.1%), 1 byte per 128-byte kv slot (0.8% at most), 4 bytes per trace
// grain. Never-written bytes must read as zero. Every byte read is checked;
// a mismatch is counted (accesses and bytes) and the first few are kept in
// detail, and the run goes on. A write that fails leaves its unit unknown
// until it is written again, so a Memory error is never reported as a
// mismatch as well.
//
// # Running
//
// Setup (populating the region, loading kv, building the page table) is
// separate from the measured phase: Run resets the counters, then calls Step
// until a duration, an op limit, the context or the workload ends. Step
// does not allocate. Workloads that split naturally over disjoint parts of
// the region (seq, uniform, zipf, pagewalk) implement Partitioner and run
// on several goroutines with RunOptions.Workers. Verify sweeps the whole
// region against the shadow after a run — the check that no page was lost,
// also among those the run never read. Package hist offers a fixed-memory
// latency histogram for the caller that times the Memory.
//
// # Determinism
//
// Every random choice — operations, kv placement, table layout, contents —
// comes from Config.Seed through counter-based generators, so a seed
// reproduces a run exactly; the tests print theirs and take FARMEM_SEED.
package workload
