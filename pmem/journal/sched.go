package journal

import (
	"sync/atomic"
	_ "unsafe" // go:linkname
)

// Two scheduler hooks of the Go runtime, reached with go:linkname. Both
// are on the runtime's list of symbols that outside packages may link to
// (go.dev/issue/67401), and widely used that way.

// procPin pins the goroutine to its processor (P) and returns the P's id;
// procUnpin undoes it.
//
//go:linkname procPin runtime.procPin
func procPin() int

//go:linkname procUnpin runtime.procUnpin
func procUnpin()

// goyield is runtime.Gosched through the processor's own run queue:
// Gosched puts the goroutine on the global run queue, under the
// scheduler's global lock, which a committer and a leader on the other
// core then contend for on every commit; goyield puts it at the tail of
// its processor's queue, where a leader on the same processor finds it.
//
//go:linkname goyield runtime.goyield
func goyield()

// procID returns the id of the processor the caller runs on (a hint: the
// goroutine may move right after).
func procID() int {
	id := procPin()
	procUnpin()
	return id
}

// yield lets the other goroutines of this processor run (see goyield).
func yield() { goyield() }

// spinMutex is a lock for critical sections of a few hundred nanoseconds
// (the round bookkeeping, a free list). sync.Mutex parks a contending
// goroutine at once whenever other goroutines are runnable on its
// processor (the runtime spins only with an empty run queue), which is
// always the case with more committers than processors: the bookkeeping
// lock then parked committers on every commit and left one of two cores
// idle. spinMutex spins briefly on the other core's holder, then yields
// (the holder may be descheduled on this processor), and never parks.
type spinMutex struct{ v atomic.Int32 }

// spinLoads is how many loads a contending Lock polls before it yields.
const spinLoads = 64

func (m *spinMutex) Lock() {
	for !m.v.CompareAndSwap(0, 1) {
		for k := 0; m.v.Load() != 0; k++ {
			if k >= spinLoads {
				yield()
				k = 0
			}
		}
	}
}

// TryLock takes the lock if it is free.
func (m *spinMutex) TryLock() bool { return m.v.CompareAndSwap(0, 1) }

func (m *spinMutex) Unlock() { m.v.Store(0) }
