package sched

import (
	"runtime"
	"sync"
	"testing"
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
