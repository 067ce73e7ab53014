package sched

import (
	"runtime"
	"sync"
	"testing"
	"unsafe"
)

func TestProcID(t *testing.T) {
	if id := ProcID(); id < 0 || id >= runtime.GOMAXPROCS(0) {
		t.Fatalf("ProcID %d outside [0, %d)", id, runtime.GOMAXPROCS(0))
	}
}

// TestSpinMutexCounter has goroutines (more than processors) increment a
// plain counter under SpinMutex and a striped Counter; both must be exact.
func TestSpinMutexCounter(t *testing.T) {
	var (
		mu    SpinMutex
		plain int
		c     Counter
		wg    sync.WaitGroup
	)
	const workers, each = 8, 5000
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				mu.Lock()
				plain++
				mu.Unlock()
				c.Add(1)
				if i%100 == 0 {
					Yield()
				}
			}
		}()
	}
	wg.Wait()
	if plain != workers*each || c.Load() != workers*each {
		t.Fatalf("plain %d, counter %d, want %d", plain, c.Load(), workers*each)
	}
	if !mu.TryLock() {
		t.Fatal("TryLock of a free lock failed")
	}
	if mu.TryLock() {
		t.Fatal("TryLock of a held lock succeeded")
	}
	mu.Unlock()
}

// TestWords checks that a release store writes exactly the word (all 64
// bits, nothing beside it) and that it publishes the stores before it:
// a reader that sees the flag must see the payload.
func TestWords(t *testing.T) {
	var pair struct {
		a, b Word64
		c, d Word32
	}
	pair.b.Store(0xdeadbeefcafef00d)
	pair.d.Store(0x89abcdef)
	if pair.a.Load() != 0 || pair.b.Load() != 0xdeadbeefcafef00d || pair.c.Load() != 0 || pair.d.Load() != 0x89abcdef {
		t.Fatalf("stores spilled or were lost: %+v", pair)
	}
	if !pair.c.CompareAndSwap(0, 7) || pair.c.Add(1) != 8 {
		t.Fatalf("CompareAndSwap/Add: %d", pair.c.Load())
	}
	const rounds = 20000
	var (
		payload [rounds]uint64
		flag    Word32
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= rounds; i++ {
			for flag.Load() != uint32(i-1)*2 {
				Yield()
			}
			payload[i-1] = uint64(i)
			flag.Store(uint32(i)*2 - 1)
		}
	}()
	for i := 1; i <= rounds; i++ {
		for flag.Load() != uint32(i)*2-1 {
			Yield()
		}
		if payload[i-1] != uint64(i) {
			t.Fatalf("round %d: flag seen before the payload (%d)", i, payload[i-1])
		}
		flag.Store(uint32(i) * 2)
	}
	wg.Wait()
}

// TestPrefetchW runs the hand-encoded instruction: a wrong encoding would
// fault or write to the word, which must keep its value and take a store.
func TestPrefetchW(t *testing.T) {
	var w [3]Word64
	for k := range w {
		w[k].Store(0x0123456789abcdef)
	}
	PrefetchW(unsafe.Pointer(&w[1]))
	for k := range w {
		if v := w[k].Load(); v != 0x0123456789abcdef {
			t.Fatalf("word %d changed to %#x by PrefetchW", k, v)
		}
	}
	w[1].Store(1)
	if w[1].Load() != 1 {
		t.Fatal("store after prefetch lost")
	}
}
