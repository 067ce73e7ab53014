package pmem

import "sync/atomic"

// CacheLine is the flush granularity assumed everywhere: 64 bytes on every
// x86-64 part that has CLWB, and the unit at which the crash simulator tears.
const CacheLine = 64

// Domain is a persistence domain: it decides when stores to a pool's memory
// become durable. A pool writes with ordinary stores, then calls Flush for
// the ranges it changed and Fence to wait for them.
//
// Contract: lines covered by a Flush become durable no later than the return
// of a Fence on the same Domain that happens after the Flush in the Go
// memory model, whichever goroutine issues it. Committers flush their own
// journal bodies and home ranges on their own processors and a group-commit
// leader fences for all of them. On x86 this is sound because CLWB and
// CLFLUSHOPT are ordered not only by SFENCE but also by locked
// read-modify-write instructions (Intel SDM vol. 2, CLWB), and every
// happens-before edge between goroutines (mutex, channel, atomic) passes
// through one; msync and the simulator are global by construction.
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

// counting wraps a Domain and counts flushes and fences for Stats.
type counting struct {
	d       Domain
	fences  atomic.Uint64
	flushes atomic.Uint64
}

func (c *counting) Flush(off, n int) {
	c.flushes.Add(1)
	c.d.Flush(off, n)
}

func (c *counting) Fence() error {
	c.fences.Add(1)
	return c.d.Fence()
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
