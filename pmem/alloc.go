package pmem

import (
	"fmt"
	"sync"
)

// Allocation map values, one byte per 64-byte heap unit.
const (
	unitFree  = 0 // free
	unitStart = 1 // first unit of a block
	unitCont  = 2 // later unit of a block
)

// Allocator hands out blocks of the heap. Its persistent state is the
// allocation map, one byte per heap unit (free, block start, block
// continuation); every change to it is written through a journal
// transaction, so an allocation or a free is atomic with the transaction that
// uses it, and a crash can neither leak a block that a committed transaction
// did not free nor hand out one twice. One byte per unit, rather than a bit,
// keeps the writes of concurrent transactions on disjoint bytes, which
// matters for redo logging: a transaction replays whole bytes, never a
// read-modify-write of a shared word.
//
// The DRAM side mirrors the committed map and marks units reserved by
// uncommitted transactions; it is rebuilt from the persistent map when the
// allocator is created, which must be after journal recovery.
type Allocator struct {
	p         *Pool
	mu        sync.Mutex
	committed []byte // mirror of the persistent map as of the last commit
	busy      []bool // allocated or reserved by an open transaction
	freeing   map[uint64]bool
	cursor    uint64
	inUse     uint64 // committed allocated units
}

// NewAllocator loads the allocation map of p. It returns ErrBadAllocMap if the
// map is malformed.
func NewAllocator(p *Pool) (*Allocator, error) {
	h := p.hdr
	m := p.mem[h.MapOff : h.MapOff+h.HeapUnits]
	if _, _, err := CheckAllocMap(m); err != nil {
		return nil, err
	}
	a := &Allocator{p: p, committed: make([]byte, len(m)), busy: make([]bool, len(m)), freeing: map[uint64]bool{}}
	copy(a.committed, m)
	for i, v := range m {
		if v != unitFree {
			a.busy[i] = true
			a.inUse++
		}
	}
	return a, nil
}

// CheckAllocMap validates an allocation map and returns its block and used
// unit counts.
func CheckAllocMap(m []byte) (blocks, units uint64, err error) {
	for i, v := range m {
		switch v {
		case unitFree:
		case unitStart:
			blocks++
			units++
		case unitCont:
			if i == 0 || m[i-1] == unitFree {
				return blocks, units, fmt.Errorf("%w: unit %d continues no block", ErrBadAllocMap, i)
			}
			units++
		default:
			return blocks, units, fmt.Errorf("%w: unit %d has value %d", ErrBadAllocMap, i, v)
		}
	}
	return blocks, units, nil
}

// Alloc reserves a block of at least n bytes and returns its pool offset.
// The block belongs to the caller once tx commits; if tx aborts it is free
// again. The block's content is whatever was there: initialise it through tx.
func (a *Allocator) Alloc(tx TxWriter, n uint64) (uint64, error) {
	if n == 0 || n > uint64(len(a.busy))*Unit {
		return 0, fmt.Errorf("%w: %d bytes", ErrOutOfSpace, n)
	}
	units := (n + Unit - 1) / Unit
	a.mu.Lock()
	start, ok := a.find(units)
	if !ok {
		a.mu.Unlock()
		return 0, fmt.Errorf("%w: no run of %d units", ErrOutOfSpace, units)
	}
	for u := start; u < start+units; u++ {
		a.busy[u] = true
	}
	a.cursor = start + units
	a.mu.Unlock()

	rec := make([]byte, units)
	rec[0] = unitStart
	for i := 1; i < len(rec); i++ {
		rec[i] = unitCont
	}
	release := func() {
		a.mu.Lock()
		for u := start; u < start+units; u++ {
			a.busy[u] = false
		}
		a.cursor = min(a.cursor, start)
		a.mu.Unlock()
	}
	if err := tx.Write(a.p.hdr.MapOff+start, rec); err != nil {
		release()
		return 0, err
	}
	tx.OnAbort(release)
	tx.OnCommit(func() {
		a.mu.Lock()
		copy(a.committed[start:], rec)
		a.inUse += units
		a.mu.Unlock()
	})
	return a.p.hdr.HeapOff + start*Unit, nil
}

// find returns the first free run of units, next-fit from the cursor.
func (a *Allocator) find(units uint64) (uint64, bool) {
	n := uint64(len(a.busy))
	for pass := 0; pass < 2; pass++ {
		from, to := a.cursor, n
		if pass == 1 {
			from, to = 0, min(a.cursor+units, n)
		}
		run := uint64(0)
		for u := from; u < to; u++ {
			if a.busy[u] {
				run = 0
				continue
			}
			run++
			if run == units {
				return u + 1 - units, true
			}
		}
	}
	return 0, false
}

// blockUnits returns the unit index and unit count of the committed block at
// off, or ErrBadFree.
func (a *Allocator) blockUnits(off uint64) (uint64, uint64, error) {
	h := a.p.hdr
	if off < h.HeapOff || (off-h.HeapOff)%Unit != 0 || (off-h.HeapOff)/Unit >= h.HeapUnits {
		return 0, 0, fmt.Errorf("%w: offset %d", ErrBadFree, off)
	}
	u := (off - h.HeapOff) / Unit
	if a.committed[u] != unitStart {
		return 0, 0, fmt.Errorf("%w: offset %d", ErrBadFree, off)
	}
	n := uint64(1)
	for u+n < uint64(len(a.committed)) && a.committed[u+n] == unitCont {
		n++
	}
	return u, n, nil
}

// Size returns the usable size in bytes of the committed block at off.
func (a *Allocator) Size(off uint64) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, n, err := a.blockUnits(off)
	return n * Unit, err
}

// Free releases the committed block at off when tx commits. Until then the
// block stays allocated (no other transaction can be handed it), and if tx
// aborts nothing changes. Freeing a block twice, or an offset that is not a
// committed block, returns ErrBadFree.
func (a *Allocator) Free(tx TxWriter, off uint64) error {
	a.mu.Lock()
	u, n, err := a.blockUnits(off)
	if err == nil && a.freeing[u] {
		err = fmt.Errorf("%w: offset %d is already being freed", ErrBadFree, off)
	}
	if err != nil {
		a.mu.Unlock()
		return err
	}
	a.freeing[u] = true
	a.mu.Unlock()
	if err := tx.Write(a.p.hdr.MapOff+u, make([]byte, n)); err != nil {
		a.mu.Lock()
		delete(a.freeing, u)
		a.mu.Unlock()
		return err
	}
	tx.OnAbort(func() {
		a.mu.Lock()
		delete(a.freeing, u)
		a.mu.Unlock()
	})
	tx.OnCommit(func() {
		a.mu.Lock()
		delete(a.freeing, u)
		for i := u; i < u+n; i++ {
			a.committed[i] = unitFree
			a.busy[i] = false
		}
		a.inUse -= n
		a.mu.Unlock()
	})
	return nil
}

// InUse returns the number of committed allocated bytes.
func (a *Allocator) InUse() uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.inUse * Unit
}

// Blocks returns the pool offsets of all committed blocks, in order.
func (a *Allocator) Blocks() []uint64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []uint64
	for u, v := range a.committed {
		if v == unitStart {
			out = append(out, a.p.hdr.HeapOff+uint64(u)*Unit)
		}
	}
	return out
}
