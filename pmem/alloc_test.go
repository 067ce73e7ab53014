package pmem

import (
	"errors"
	"testing"
)

// fakeTx applies writes directly and runs callbacks on demand: enough to
// test the allocator's DRAM bookkeeping without the journal package.
type fakeTx struct {
	p              *Pool
	commit, abortF []func()
}

func (f *fakeTx) Write(off uint64, b []byte) error { copy(f.p.mem[off:], b); return nil }
func (f *fakeTx) OnCommit(fn func())               { f.commit = append(f.commit, fn) }
func (f *fakeTx) OnAbort(fn func())                { f.abortF = append(f.abortF, fn) }
func (f *fakeTx) done() {
	for _, fn := range f.commit {
		fn()
	}
}

func newMemPool(t *testing.T, size uint64) *Pool {
	t.Helper()
	mem := make([]byte, size)
	if _, err := Format(mem, "t", 2, 512); err != nil {
		t.Fatal(err)
	}
	p, err := OpenMem(mem, NewSim(mem), "t")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAllocator(t *testing.T) {
	p := newMemPool(t, 64<<10)
	a, err := NewAllocator(p)
	if err != nil {
		t.Fatal(err)
	}
	tx := &fakeTx{p: p}
	x, err := a.Alloc(tx, 100)
	if err != nil {
		t.Fatal(err)
	}
	y, err := a.Alloc(tx, 1)
	if err != nil || y != x+2*Unit {
		t.Fatalf("second block at %d (%v), want %d", y, err, x+2*Unit)
	}
	if _, err := a.Size(x); !errors.Is(err, ErrBadFree) {
		t.Fatalf("uncommitted block has a size: %v", err)
	}
	tx.done()
	if sz, err := a.Size(x); err != nil || sz != 2*Unit {
		t.Fatalf("Size = %d, %v", sz, err)
	}
	tx2 := &fakeTx{p: p}
	if err := a.Free(tx2, x); err != nil {
		t.Fatal(err)
	}
	if err := a.Free(tx2, x); !errors.Is(err, ErrBadFree) {
		t.Fatalf("double free: %v", err)
	}
	if err := a.Free(tx2, x+1); !errors.Is(err, ErrBadFree) {
		t.Fatalf("free of a non-block: %v", err)
	}
	tx2.done()
	if a.InUse() != Unit {
		t.Fatalf("InUse = %d, want %d", a.InUse(), Unit)
	}
	// Reload from the persistent map: the same state.
	b, err := NewAllocator(p)
	if err != nil || len(b.Blocks()) != 1 || b.Blocks()[0] != y {
		t.Fatalf("reloaded: %v %v", b.Blocks(), err)
	}
	if _, err := a.Alloc(tx, 1<<30); !errors.Is(err, ErrOutOfSpace) {
		t.Fatalf("huge alloc: %v", err)
	}
	// A malformed map is corruption.
	p.mem[p.hdr.MapOff+40] = unitCont
	if _, err := NewAllocator(p); !errors.Is(err, ErrBadAllocMap) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad map: %v", err)
	}
}

func TestAllocatorAbortReleases(t *testing.T) {
	p := newMemPool(t, 64<<10)
	a, _ := NewAllocator(p)
	tx := &fakeTx{p: p}
	x, _ := a.Alloc(tx, 64)
	for _, fn := range tx.abortF {
		fn()
	}
	tx2 := &fakeTx{p: p}
	y, _ := a.Alloc(tx2, 64)
	if x != y {
		t.Fatalf("aborted block %d not reused (got %d)", x, y)
	}
}
