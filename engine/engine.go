package engine

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/farmem/farmem/store"
)

// Engine runs one region: its page table, frames and fault path.
type Engine struct {
	cfg      Config
	pageSize int
	shift    uint // log2(pageSize)
	npages   uint64

	mu   sync.Mutex
	cond sync.Cond // signalled on every state change others may wait for

	pt     []pte
	frames []frameMeta
	arena  []byte
	free   []uint32 // stack of free frames
	hand   int      // CLOCK hand

	reclaiming bool // a reclaim round is in flight
	waiters    int  // goroutines waiting in cond.Wait
	viewPins   int  // frames pinned by Views
	closed     bool

	batches sync.Pool // *batch
	kick    chan struct{}
	stop    chan struct{}
	bgDone  chan struct{}

	st counters
}

type counters struct {
	hits, faults, zeroFills, fetchedPages  atomic.Uint64
	evictions, writebacks, writebackErrors atomic.Uint64
	fetchErrors, directReclaims, waits     atomic.Uint64
}

// batch is the reusable scratch of one fetch or write-back round.
type batch struct {
	frames []uint32
	call   store.Call
}

// New creates an engine over cfg.Store. The store is not closed by Close.
func New(cfg Config) (*Engine, error) {
	if err := cfg.normalize(); err != nil {
		return nil, err
	}
	nframes := int(cfg.Budget / int64(cfg.PageSize))
	arena, err := newArena(nframes * cfg.PageSize)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		cfg:      cfg,
		pageSize: cfg.PageSize,
		npages:   uint64(cfg.Size / int64(cfg.PageSize)),
		pt:       make([]pte, cfg.Size/int64(cfg.PageSize)),
		frames:   make([]frameMeta, nframes),
		arena:    arena,
		free:     make([]uint32, nframes),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		bgDone:   make(chan struct{}),
	}
	for ps := cfg.PageSize; ps > 1; ps >>= 1 {
		e.shift++
	}
	e.cond.L = &e.mu
	for i := range e.free {
		// Pop order 0, 1, 2, ...: frames fill the arena from its start.
		e.free[i] = uint32(nframes - 1 - i)
	}
	e.batches.New = func() any {
		b := &batch{frames: make([]uint32, 0, MaxBatch)}
		b.call.Pages = make([]store.Page, 0, MaxBatch)
		b.call.Done = make(chan *store.Call, 1)
		return b
	}
	go e.background()
	return e, nil
}

// PageSize returns the region's page size.
func (e *Engine) PageSize() int { return e.pageSize }

// Size returns the region's size in bytes.
func (e *Engine) Size() int64 { return e.cfg.Size }

// Frames returns the number of DRAM frames (the budget in pages).
func (e *Engine) Frames() int { return len(e.frames) }

func (e *Engine) frameData(f uint32) []byte {
	off := int(f) << e.shift
	return e.arena[off : off+e.pageSize : off+e.pageSize]
}

// Stats is a snapshot of the engine's counters.
type Stats struct {
	// Hits: page accesses that found the page resident.
	Hits uint64
	// Faults: pages fetched from the store (each is a miss).
	Faults uint64
	// ZeroFills: first touches of never-written pages, served with a zeroed
	// frame and no I/O.
	ZeroFills uint64
	// FetchedBytes and WrittenBackBytes: page bytes moved from and to the store.
	FetchedBytes, WrittenBackBytes uint64
	// Evictions: frames reclaimed; WriteBacks: dirty pages written back.
	Evictions, WriteBacks uint64
	// FetchErrors and WriteBackErrors: failed store calls (pages stay safe).
	FetchErrors, WriteBackErrors uint64
	// DirectReclaims: eviction rounds run by a faulting goroutine because no
	// frame was free.
	DirectReclaims uint64
	// Waits: times a goroutine waited for another's fetch, write-back or
	// frames.
	Waits uint64
	// Resident, Dirty and FreeFrames describe the frames now.
	Resident, Dirty, FreeFrames int
	// Frames is the DRAM budget in pages; MetadataBytes the DRAM used by the
	// page table and frame table.
	Frames        int
	MetadataBytes int64
}

// Stats returns a snapshot of the engine's counters.
func (e *Engine) Stats() Stats {
	s := Stats{
		Hits:             e.st.hits.Load(),
		Faults:           e.st.faults.Load(),
		ZeroFills:        e.st.zeroFills.Load(),
		FetchedBytes:     e.st.fetchedPages.Load() * uint64(e.pageSize),
		WrittenBackBytes: e.st.writebacks.Load() * uint64(e.pageSize),
		Evictions:        e.st.evictions.Load(),
		WriteBacks:       e.st.writebacks.Load(),
		FetchErrors:      e.st.fetchErrors.Load(),
		WriteBackErrors:  e.st.writebackErrors.Load(),
		DirectReclaims:   e.st.directReclaims.Load(),
		Waits:            e.st.waits.Load(),
		Frames:           len(e.frames),
		MetadataBytes:    int64(len(e.pt))*8 + int64(len(e.frames))*int64(sizeofFrameMeta),
	}
	e.mu.Lock()
	s.FreeFrames = len(e.free)
	for i := range e.frames {
		if e.frames[i].used {
			s.Resident++
			if e.frames[i].dirty {
				s.Dirty++
			}
		}
	}
	e.mu.Unlock()
	return s
}

const sizeofFrameMeta = 16

// Close stops the background reclaimer and releases the frames. Dirty pages
// are not written back: call Sync first to keep them. Close must not race
// with other calls.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	close(e.stop)
	<-e.bgDone
	e.mu.Lock()
	defer e.mu.Unlock()
	e.cond.Broadcast()
	err := freeArena(e.arena)
	e.arena = nil
	return err
}

// wait blocks on the condition; the caller holds e.mu.
func (e *Engine) wait() {
	e.waiters++
	e.st.waits.Add(1)
	e.cond.Wait()
	e.waiters--
}

func (e *Engine) wakeLocked() {
	if e.waiters > 0 {
		e.cond.Broadcast()
	}
}

// background is the kswapd-like reclaimer: it refills the free list when it
// drops below the low watermark.
func (e *Engine) background() {
	defer close(e.bgDone)
	for {
		select {
		case <-e.stop:
			return
		case <-e.kick:
		}
		e.mu.Lock()
		for !e.closed && len(e.free) < e.cfg.HighWater {
			progressed, err := e.reclaimLocked(context.Background(), false)
			if err != nil || !progressed {
				break
			}
		}
		e.mu.Unlock()
	}
}
