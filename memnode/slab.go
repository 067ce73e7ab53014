package memnode

import (
	"sync"
	"sync/atomic"

	"github.com/farmem/farmem/internal/wire"
)

// chunkPages is how many page slots a slab chunk holds; chunks are allocated
// lazily so that a large capacity costs nothing until it is used.
const chunkPages = 256

// chunk is one contiguous allocation of page slots and their checksums.
type chunk struct {
	data []byte
	sums [chunkPages]uint32
}

// slab holds every page of the memnode in slots of fixed-size chunks, shared
// by all namespaces. A slot is a uint32; the Go heap holds one object per
// chunk, never one per page. The slab does not lock slot contents: a slot
// belongs to exactly one (namespace, page) key at a time and every access to
// it happens under that key's shard lock.
type slab struct {
	pageSize int
	capacity uint32 // slots
	chunks   []atomic.Pointer[chunk]

	mu   sync.Mutex
	free []uint32 // freed slots, reused first
	next uint32   // slots [next, capacity) were never used
	used atomic.Int64
}

func newSlab(pageSize int, capacity uint32) *slab {
	return &slab{
		pageSize: pageSize,
		capacity: capacity,
		chunks:   make([]atomic.Pointer[chunk], (int(capacity)+chunkPages-1)/chunkPages),
	}
}

// alloc returns a free slot, or false when the slab is full.
func (s *slab) alloc() (uint32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var slot uint32
	switch {
	case len(s.free) > 0:
		slot = s.free[len(s.free)-1]
		s.free = s.free[:len(s.free)-1]
	case s.next < s.capacity:
		slot = s.next
		s.next++
		if slot%chunkPages == 0 {
			n := min(chunkPages, int(s.capacity-slot))
			s.chunks[slot/chunkPages].Store(&chunk{data: make([]byte, n*s.pageSize)})
		}
	default:
		return 0, false
	}
	s.used.Add(1)
	return slot, true
}

// release returns a slot to the free list.
func (s *slab) release(slot uint32) {
	s.mu.Lock()
	s.free = append(s.free, slot)
	s.mu.Unlock()
	s.used.Add(-1)
}

// page returns the data and checksum cell of a slot.
func (s *slab) page(slot uint32) ([]byte, *uint32) {
	c := s.chunks[slot/chunkPages].Load()
	i := int(slot % chunkPages)
	return c.data[i*s.pageSize : (i+1)*s.pageSize : (i+1)*s.pageSize], &c.sums[i]
}

// nshards spreads a namespace's index over this many locks so that
// connections of one namespace rarely contend.
const nshards = 32

// namespace is one client-named region: an index from page id to slot.
type namespace struct {
	name   string
	pages  atomic.Int64
	shards [nshards]shard
}

type shard struct {
	mu sync.RWMutex
	m  map[uint64]uint32
	_  [32]byte // keep neighbouring locks off one cache line
}

func newNamespace(name string) *namespace {
	ns := &namespace{name: name}
	for i := range ns.shards {
		ns.shards[i].m = make(map[uint64]uint32)
	}
	return ns
}

func (ns *namespace) shard(id uint64) *shard {
	// Fibonacci hashing: sequential ids land on different shards.
	return &ns.shards[(id*0x9E3779B97F4A7C15)>>(64-5)]
}

// put stores one page whose checksum the caller has verified. Overwriting a
// present page never needs room, so a full memnode still accepts it.
func (s *slab) put(ns *namespace, id uint64, sum uint32, data []byte) wire.Code {
	sh := ns.shard(id)
	sh.mu.Lock()
	slot, ok := sh.m[id]
	if !ok {
		if slot, ok = s.alloc(); !ok {
			sh.mu.Unlock()
			return wire.CodeFull
		}
		sh.m[id] = slot
		ns.pages.Add(1)
	}
	d, cell := s.page(slot)
	copy(d, data)
	*cell = sum
	sh.mu.Unlock()
	return wire.OK
}

// appendPage appends the ReadReply entry of page id to dst: the data when the
// page is present and its copy verifies, else a status without data.
func (s *slab) appendPage(dst []byte, ns *namespace, id uint64) ([]byte, wire.Code) {
	sh := ns.shard(id)
	sh.mu.RLock()
	slot, ok := sh.m[id]
	if !ok {
		sh.mu.RUnlock()
		return wire.AppendReadEntry(dst, id, wire.CodeNotFound, 0, nil), wire.CodeNotFound
	}
	d, cell := s.page(slot)
	start := len(dst)
	dst = wire.AppendReadEntry(dst, id, wire.OK, *cell, d)
	sum := *cell
	sh.mu.RUnlock()
	// Verify the very bytes that will be sent, outside the lock.
	if wire.Checksum(dst[len(dst)-s.pageSize:]) != sum {
		return wire.AppendReadEntry(dst[:start], id, wire.CodeCorrupt, 0, nil), wire.CodeCorrupt
	}
	return dst, wire.OK
}

// drop frees page id; it reports whether the page was present.
func (s *slab) drop(ns *namespace, id uint64) bool {
	sh := ns.shard(id)
	sh.mu.Lock()
	slot, ok := sh.m[id]
	if ok {
		delete(sh.m, id)
		ns.pages.Add(-1)
	}
	sh.mu.Unlock()
	if ok {
		s.release(slot)
	}
	return ok
}

// corrupt flips one stored byte of page id, for tests of checksum
// verification. It reports whether the page was present.
func (s *slab) corrupt(ns *namespace, id uint64) bool {
	sh := ns.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	slot, ok := sh.m[id]
	if ok {
		d, _ := s.page(slot)
		d[len(d)/2] ^= 0x40
	}
	return ok
}
