package pmem

import "github.com/farmem/farmem/pmem/internal/sched"

// CacheLine is the flush granularity assumed everywhere: 64 bytes on every
// x86-64 part that has CLWB, and the unit at which the crash simulator tears.
const CacheLine = 64

// Domain is a persistence domain: it decides when stores to a pool's memory
// become durable. A pool writes with ordinary stores, then calls Flush for
// the ranges it changed and Fence to wait for them.
//
// Contract: lines covered by a Flush become durable no later than the return
// of a later Fence issued by the same goroutine. A Fence is not promised to
// cover lines that other goroutines flushed: on x86, SFENCE orders only the
// CLWB/CLFLUSHOPT instructions of the core that executes it, so a
// group-commit leader must itself flush every line its fence is meant to
// cover. It may flush lines that other goroutines stored to, once their
// stores happen before its Flush in the Go memory model: CLWB writes a line
// back from whichever cache in the coherence domain holds it. (A goroutine
// that moves to another thread between its Flush and its Fence passes
// through the Go scheduler's locked instructions and the kernel's context
// switch, which order its flushes as they do for a migrated thread in C.)
// msync and the simulator happen to be global, but callers must not rely
// on that.
// Stores that are not flushed may become durable at any time, in any order, at
// cache-line granularity, or never. Flush and Fence are safe for concurrent
// use. Offsets are relative to the start of the pool's memory.
type Domain interface {
	// Flush starts write-back of the cache lines covering [off, off+n).
	Flush(off, n int)
	// Fence returns when every line flushed before it is durable.
	Fence() error
	// Name names the domain for reports ("dax-clwb", "msync", "sim", ...).
	Name() string
}

// counting wraps a Domain and counts flushes and fences for Stats. The
// counters are bumped before a batch of flushes and after a fence, never
// between a flush and the fence that follows it: an atomic add is a locked
// instruction, and on x86 a locked instruction waits for the core's
// outstanding CLWBs as SFENCE does, so a count between them would cost a
// second write-back wait. They are striped per processor: commit rounds
// fence on every core at once, and one shared counter line passed between
// the cores cost 3-7% of a four-committer benchmark (docs/PMEM.md).
type counting struct {
	d       Domain
	fences  sched.Counter
	flushes sched.Counter
}

func (c *counting) Flush(off, n int) {
	c.flushes.Add(1)
	c.d.Flush(off, n)
}

func (c *counting) Fence() error {
	err := c.d.Fence()
	c.fences.Add(1)
	return err
}

// Stats counts the persistence operations a pool issued since it was opened.
type Stats struct {
	Fences  uint64 // Fence calls (persist barriers)
	Flushes uint64 // Flush calls (ranges, not lines)
}

// lineSpan returns the first line offset and the end offset (exclusive,
// line-aligned) of the lines covering [off, off+n).
func lineSpan(off, n int) (int, int) {
	start := off &^ (CacheLine - 1)
	end := (off + n + CacheLine - 1) &^ (CacheLine - 1)
	return start, end
}
