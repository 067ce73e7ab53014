// Package sched holds the scheduler-level helpers of the pmem packages:
// the id of the processor a goroutine runs on, a yield through the
// processor's own run queue, a spinning lock for very short critical
// sections, and a counter striped per processor.
//
// ProcID and Yield reach two functions of the Go runtime with go:linkname.
// Both are on the runtime's list of symbols that outside packages may link
// to (go.dev/issue/67401), and widely used that way.
package sched

import (
	"sync/atomic"
	_ "unsafe" // go:linkname
)

//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

//go:linkname goyield runtime.goyield
func goyield()

// ProcID returns the id of the processor (P) the caller runs on, in
// [0, GOMAXPROCS). It is a hint: the goroutine may move right after.
func ProcID() int {
	id := procPin()
	procUnpin()
	return id
}

// Yield lets the other goroutines of this processor run. It is
// runtime.Gosched through the processor's own run queue: Gosched puts the
// goroutine on the global run queue, under the scheduler's global lock,
// which goroutines on the other processors then contend for; Yield puts
// it at the tail of its processor's queue.
func Yield() { goyield() }

// SpinMutex is a lock for critical sections of a few hundred nanoseconds.
// sync.Mutex parks a contending goroutine at once whenever other
// goroutines are runnable on its processor (the runtime spins only with an
// empty run queue), which is always the case with more busy goroutines
// than processors, and a parked goroutine can leave its core idle.
// SpinMutex polls the holder on the other core briefly, then yields (the
// holder may be descheduled on this processor), and never parks. The zero
// value is unlocked.
type SpinMutex struct{ v Word32 }

// spinLoads is how many loads a contending Lock polls before it yields.
const spinLoads = 64

// Lock takes the lock.
func (m *SpinMutex) Lock() {
	for !m.v.CompareAndSwap(0, 1) {
		for k := 0; m.v.Load() != 0; k++ {
			if k >= spinLoads {
				Yield()
				k = 0
			}
		}
	}
}

// TryLock takes the lock if it is free.
func (m *SpinMutex) TryLock() bool { return m.v.CompareAndSwap(0, 1) }

// Unlock releases the lock, with a release store (see Word32).
func (m *SpinMutex) Unlock() { m.v.Store(0) }

// Counter is a counter striped per processor, so that goroutines on
// different cores counting at once do not pass one cache line back and
// forth (each add is a locked instruction on a line the other core just
// wrote). Load sums the stripes. The zero value is ready.
//
// The stripes are inline, on lines of their own: a pointer to stripes made
// on first use sat in a small heap object whose line it shared with
// whatever the allocator put beside it, and a profile of four committers
// showed its load missing in cache on every fence (2.6% of the CPU time).
// Processors beyond len(s) share stripes (the adds stay atomic).
type Counter struct {
	_ [128]byte // off the line of whatever precedes the counter
	s [counterStripes]stripe
}

// counterStripes is a power of two, so that Add picks a stripe with a mask.
const counterStripes = 16

type stripe struct {
	n atomic.Uint64
	_ [120]byte // one stripe per 128 bytes (adjacent-line prefetch)
}

// Add adds n.
func (c *Counter) Add(n uint64) {
	c.s[ProcID()&(counterStripes-1)].n.Add(n)
}

// Load returns the sum of every Add so far (exact once the adders are
// done; a concurrent Load may miss adds in flight).
func (c *Counter) Load() uint64 {
	var t uint64
	for k := range c.s {
		t += c.s[k].n.Load()
	}
	return t
}
