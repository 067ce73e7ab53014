package sched

import "sync/atomic"

// Word32 and Word64 are atomic words whose Store is a release store: every
// load and store that precedes it in program order is visible to another
// goroutine before the stored value is, which is what publishing a flag or
// unlocking needs. sync/atomic's Store is sequentially consistent, an XCHG
// on amd64: a locked instruction that waits for the store buffer to drain
// and, after a CLWB+SFENCE, for the write-backs to complete. On amd64
// (total store order) a release store is a plain MOV, which runs on while
// the write-backs drain; it is made in assembly so that the compiler
// cannot move it or merge it with another store. Elsewhere, and under the
// race detector (which must see the store as a synchronising operation),
// Store is atomic.Store. Loads, CompareAndSwap and Add are sync/atomic's.
// The zero value is 0.
//
// A release store is not a full barrier: a load after it may be
// performed before the store is visible (x86 reorders a store with a
// later load). A handshake in which each side stores and then loads what
// the other stored (announce a sleep, then look at the flag; publish the
// flag, then look for sleepers) needs a locked instruction, such as Add
// or CompareAndSwap, between the store and the load (journal.leadRound
// frees its round slot with an Add for that reason).
type Word32 struct{ v uint32 }

// Load returns the value.
func (w *Word32) Load() uint32 { return atomic.LoadUint32(&w.v) }

// Store stores v with release ordering.
func (w *Word32) Store(v uint32) { storeRelease32(&w.v, v) }

// CompareAndSwap is atomic.CompareAndSwapUint32.
func (w *Word32) CompareAndSwap(old, new uint32) bool {
	return atomic.CompareAndSwapUint32(&w.v, old, new)
}

// Add is atomic.AddUint32.
func (w *Word32) Add(d uint32) uint32 { return atomic.AddUint32(&w.v, d) }

// Word64 is Word32's 64-bit twin.
type Word64 struct{ v uint64 }

// Load returns the value.
func (w *Word64) Load() uint64 { return atomic.LoadUint64(&w.v) }

// Store stores v with release ordering.
func (w *Word64) Store(v uint64) { storeRelease64(&w.v, v) }
