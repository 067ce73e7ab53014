package pmem

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestSimDurability(t *testing.T) {
	mem := make([]byte, 4*CacheLine)
	s := NewSim(mem)
	mem[0] = 1               // written, never flushed
	mem[CacheLine] = 2       // flushed, not fenced
	s.Flush(CacheLine, 1)    //
	mem[CacheLine] = 3       // rewritten after the flush
	mem[2*CacheLine] = 4     // flushed and fenced
	s.Flush(2*CacheLine, 64) //
	img, _ := s.CrashClone(nil)
	if !bytes.Equal(img, make([]byte, len(mem))) {
		t.Fatalf("durable image changed before any fence")
	}
	var seen [3]map[byte]bool
	for i := range seen {
		seen[i] = map[byte]bool{}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200; i++ {
		img, n := s.CrashClone(rng)
		if n != 3 {
			t.Fatalf("%d candidate lines, want 3", n)
		}
		for l := 0; l < 3; l++ {
			seen[l][img[l*CacheLine]] = true
		}
		if img[3*CacheLine] != 0 {
			t.Fatal("untouched line changed")
		}
	}
	// Line 1 can be old (0), its flushed snapshot (2) or its current value (3).
	for l, want := range []string{"\x00\x01", "\x00\x02\x03", "\x00\x04"} {
		for _, c := range []byte(want) {
			if !seen[l][c] {
				t.Errorf("line %d never showed %d: %v", l, c, seen[l])
			}
		}
		if len(seen[l]) != len(want) {
			t.Errorf("line %d showed %v, want exactly %q", l, seen[l], want)
		}
	}
	fired := 0
	s.SetFenceHook(func(k int) { fired = k })
	if err := s.Fence(); err != nil {
		t.Fatal(err)
	}
	img, _ = s.CrashClone(nil)
	if fired != 1 || img[0] != 0 || img[CacheLine] != 2 || img[2*CacheLine] != 4 {
		t.Fatalf("after fence: hook %d, lines %d %d %d", fired, img[0], img[CacheLine], img[2*CacheLine])
	}
}

// TestStrictSimFencesOwnFlushes: in strict mode a fence persists only the
// calling goroutine's flushes, and never replaces a newer durable snapshot
// with an older one.
func TestStrictSimFencesOwnFlushes(t *testing.T) {
	mem := make([]byte, 2*CacheLine)
	s := NewStrictSim(mem)
	mem[0] = 1
	done := make(chan struct{})
	go func() { s.Flush(0, 1); close(done) }() // another goroutine flushes line 0
	<-done
	s.Fence() // ours: must not persist it
	if img, _ := s.CrashClone(nil); img[0] != 0 {
		t.Fatalf("a fence persisted a line another goroutine flushed")
	}
	s.Flush(0, 1) // now we flush it (content 1) ...
	mem[0] = 2
	done = make(chan struct{})
	var other sync.WaitGroup
	other.Add(1)
	go func() { // ... another goroutine flushes the newer content and fences
		defer other.Done()
		<-done
		s.Flush(0, 1)
		s.Fence()
	}()
	close(done)
	other.Wait()
	if img, _ := s.CrashClone(nil); img[0] != 2 {
		t.Fatalf("line 0 = %d after the other goroutine's fence, want 2", img[0])
	}
	s.Fence() // our older snapshot (1) must not replace the durable 2
	if img, _ := s.CrashClone(nil); img[0] != 2 {
		t.Fatalf("line 0 = %d after our fence of an older snapshot, want 2", img[0])
	}
}
