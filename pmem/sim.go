package pmem

import (
	"bytes"
	"math/rand/v2"
	"sync"
)

// Sim is the crash-simulating persistence domain. The pool's memory is a
// plain byte slice; Sim keeps a second image holding what is durable, and it
// learns what was written by comparing the two, so writers need no
// instrumentation. Flush snapshots the covered lines as they are at that
// moment (a CLWB writes back the line's content at the time of the flush);
// Fence makes the snapshots durable.
//
// CrashClone returns a post-crash image in the spirit of pebble's
// vfs.CrashClone: the durable image, plus, when given a random source, a
// random subset of the lines that were written but not yet made durable —
// each such line independently keeps its durable content, takes its flushed
// snapshot, or takes its current content. Tearing is modelled at cache-line
// granularity (x86 guarantees only 8-byte failure atomicity; every on-media
// structure here is checksummed or fits in 8 bytes, so this is no weaker in
// practice); a line written twice between fences can only be seen with its
// first or last value, not an intermediate one.
//
// Sim is safe for concurrent use, but CrashClone reads the live memory
// without synchronisation with writers, so crash enumeration (a fence hook
// calling CrashClone) is for single-goroutine workloads.
type Sim struct {
	mu      sync.Mutex
	mem     []byte
	durable []byte
	pending map[int][]byte
	fences  int
	hook    func(fence int)
}

// NewSim returns a simulator over mem; the current content of mem is taken as
// durable.
func NewSim(mem []byte) *Sim {
	return &Sim{mem: mem, durable: bytes.Clone(mem), pending: map[int][]byte{}}
}

// SetFenceHook installs fn, called at the start of every Fence (before the
// fence takes effect) with the number of the fence, counting from 1. The hook
// may call CrashClone: without a random source it yields the image as of the
// previous fence boundary; with one, that image plus a random subset of the
// lines this fence is about to persist and of unflushed lines.
func (s *Sim) SetFenceHook(fn func(fence int)) {
	s.mu.Lock()
	s.hook = fn
	s.mu.Unlock()
}

// Flush snapshots the lines covering [off, off+n).
func (s *Sim) Flush(off, n int) {
	start, end := lineSpan(off, n)
	if start < 0 {
		start = 0
	}
	if end > len(s.mem) {
		end = len(s.mem)
	}
	s.mu.Lock()
	for l := start; l < end; l += CacheLine {
		snap := s.pending[l]
		if snap == nil {
			snap = make([]byte, CacheLine)
			s.pending[l] = snap
		}
		copy(snap, s.mem[l:l+CacheLine])
	}
	s.mu.Unlock()
}

// Fence makes every flushed snapshot durable.
func (s *Sim) Fence() error {
	s.mu.Lock()
	s.fences++
	k, hook := s.fences, s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(k)
	}
	s.mu.Lock()
	for l, snap := range s.pending {
		copy(s.durable[l:l+CacheLine], snap)
		delete(s.pending, l)
	}
	s.mu.Unlock()
	return nil
}

// Name returns "sim".
func (s *Sim) Name() string { return "sim" }

// Fences returns the number of fences issued so far.
func (s *Sim) Fences() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fences
}

// CrashClone returns a new image of the memory as a crash at this instant
// could leave it. With rng nil it is exactly the durable image; otherwise
// every line whose durable content differs from its flushed snapshot or its
// current content independently keeps the durable content, or takes one of
// the others, uniformly. The second result counts the lines that were
// candidates (written but not durable).
func (s *Sim) CrashClone(rng *rand.Rand) ([]byte, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	img := bytes.Clone(s.durable)
	if rng == nil {
		return img, 0
	}
	cands := 0
	for l := 0; l+CacheLine <= len(s.mem); l += CacheLine {
		live := s.mem[l : l+CacheLine]
		dur := s.durable[l : l+CacheLine]
		snap := s.pending[l]
		liveDiff := !bytes.Equal(live, dur)
		if !liveDiff && snap == nil {
			continue
		}
		cands++
		opts := 1 // keep durable
		if liveDiff {
			opts++
		}
		if snap != nil {
			opts++
		}
		switch c := rng.IntN(opts); {
		case c == 0:
		case c == 1 && liveDiff:
			copy(img[l:l+CacheLine], live)
		default:
			copy(img[l:l+CacheLine], snap)
		}
	}
	return img, cands
}
