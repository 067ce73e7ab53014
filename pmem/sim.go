package pmem

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"strconv"
	"sync"
	"unsafe"
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
	pending map[int][]byte // latest unfenced snapshot of each flushed line
	fences  int
	hook    func(fence int)

	// Strict mode (NewStrictSim): a fence persists only the flushes of the
	// goroutine that issues it.
	strict bool
	seq    uint64
	byLine map[int][]flushRec // unfenced flushes of each line, oldest first
	durSeq map[int]uint64     // seq of the snapshot last made durable
}

// flushRec is one strict-mode flush of one line.
type flushRec struct {
	gid, seq uint64
	snap     []byte
}

// NewSim returns a simulator over mem; the current content of mem is taken as
// durable. Its fences are global: a Fence persists every line flushed before
// it, by any goroutine.
func NewSim(mem []byte) *Sim {
	return &Sim{mem: mem, durable: bytes.Clone(mem), pending: map[int][]byte{}}
}

// NewStrictSim returns a simulator whose Fence persists only the lines
// flushed by the goroutine that calls it, which is the x86 rule (SFENCE
// orders the CLWBs of its own core) and the pmem.Domain contract. A design
// that lets one goroutine fence for lines another flushed passes NewSim and
// fails here. A line flushed by several goroutines becomes durable with the
// newest snapshot whose flusher has fenced; an older snapshot never
// replaces a newer durable one.
func NewStrictSim(mem []byte) *Sim {
	s := NewSim(mem)
	s.strict, s.byLine, s.durSeq = true, map[int][]flushRec{}, map[int]uint64{}
	return s
}

// goid returns the calling goroutine's id, parsed from its stack header
// ("goroutine 18 [running]:"); strict mode only, so its cost does not matter.
func goid() uint64 {
	var buf [40]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, err := strconv.ParseUint(string(b), 10, 64)
	if err != nil {
		panic("pmem: invariant: cannot parse the goroutine id from " + strconv.Quote(string(buf[:])))
	}
	return id
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
	var gid uint64
	if s.strict {
		gid = goid()
	}
	s.mu.Lock()
	for l := start; l < end; l += CacheLine {
		if s.strict {
			snap := make([]byte, CacheLine)
			loadLine(snap, s.mem[l:l+CacheLine])
			s.seq++
			s.byLine[l] = append(s.byLine[l], flushRec{gid: gid, seq: s.seq, snap: snap})
			s.pending[l] = snap
			continue
		}
		snap := s.pending[l]
		if snap == nil {
			snap = make([]byte, CacheLine)
			s.pending[l] = snap
		}
		loadLine(snap, s.mem[l:l+CacheLine])
	}
	s.mu.Unlock()
}

// loadLine copies one cache line of live memory into dst, a word at a time.
//
// It is what a CLWB reads, and like the real one it may run while other
// goroutines store to the line: a round's leader flushes the homes of
// transactions whose owners may already be applying their next transaction
// to the same line, and overlapping rounds flush the watermark word while
// another round writes it. Those stores belong to transactions that are
// already durable in their journals (recovery replays them), or to a
// watermark that only ever grows, so whichever value the write-back
// carries is correct. The race detector cannot see the real CLWB (it is
// assembly) and is told to ignore this one; aligned 8-byte loads keep each
// word whole, as the hardware does.
//
//go:norace
func loadLine(dst, src []byte) {
	if len(dst) < CacheLine || len(src) < CacheLine {
		panic("pmem: invariant: loadLine needs a whole cache line")
	}
	d, s := unsafe.Pointer(unsafe.SliceData(dst)), unsafe.Pointer(unsafe.SliceData(src))
	for i := uintptr(0); i < CacheLine; i += 8 {
		*(*uint64)(unsafe.Add(d, i)) = *(*uint64)(unsafe.Add(s, i))
	}
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
	if s.strict {
		s.strictFence(goid())
		return nil
	}
	s.mu.Lock()
	for l, snap := range s.pending {
		copy(s.durable[l:l+CacheLine], snap)
		delete(s.pending, l)
	}
	s.mu.Unlock()
	return nil
}

// strictFence persists the lines goroutine gid flushed: for each, its
// newest snapshot unless a newer one is durable already.
func (s *Sim) strictFence(gid uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for l, recs := range s.byLine {
		keep := recs[:0] // filters in place: copy the record out, not a pointer
		var mine flushRec
		found := false
		for _, r := range recs {
			if r.gid == gid {
				mine, found = r, true
			} else {
				keep = append(keep, r)
			}
		}
		if !found {
			continue
		}
		if mine.seq > s.durSeq[l] {
			copy(s.durable[l:l+CacheLine], mine.snap)
			s.durSeq[l] = mine.seq
		}
		if len(keep) == 0 {
			delete(s.byLine, l)
			delete(s.pending, l)
		} else {
			s.byLine[l] = keep
			s.pending[l] = keep[len(keep)-1].snap
		}
	}
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
