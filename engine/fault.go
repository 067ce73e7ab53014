package engine

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/farmem/farmem/store"
)

func (e *Engine) getBatch(op store.Op) *batch {
	b := e.batches.Get().(*batch)
	b.frames = b.frames[:0]
	b.call.Op = op
	b.call.Pages = b.call.Pages[:0]
	b.call.Err = nil
	return b
}

func (e *Engine) putBatch(b *batch) {
	for i := range b.call.Pages {
		b.call.Pages[i] = store.Page{} // drop references to frame memory
	}
	e.batches.Put(b)
}

// allocLocked pops a free frame and wakes the background reclaimer when the
// free list runs low.
func (e *Engine) allocLocked() (uint32, bool) {
	n := len(e.free)
	if n == 0 {
		e.kickReclaim()
		return 0, false
	}
	f := e.free[n-1]
	e.free = e.free[:n-1]
	if n-1 < e.cfg.LowWater && !e.reclaiming {
		// Clean pages are dropped right here: it costs a short scan under
		// the lock, where waking the background goroutine for them costs a
		// thread wake-up that, on a machine with few cores, delays the
		// memnode's reply to this very fault (measured: fault p50 1.13-1.27x
		// the raw RTT with inline clean reclaim, 1.32-1.70x without). Only
		// dirty victims, which need a write, go to the background.
		if dirty := e.reclaimCleanLocked(); dirty && len(e.free) < e.cfg.LowWater {
			e.kickReclaim()
		}
	}
	return f, true
}

func (e *Engine) kickReclaim() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// acquire pins pages first .. first+n-1 (n <= MaxBatch) and stores their
// frames in out. It may pin only a prefix: it returns how many pages it
// pinned, at least one unless it fails. On error nothing stays pinned.
func (e *Engine) acquire(ctx context.Context, first uint64, n int, write bool, out []uint32) (int, error) {
	e.mu.Lock()
	var (
		b      *batch
		missAt time.Time
		err    error
		i      int
	)
loop:
	for i < n {
		if e.closed {
			err = ErrClosed
			break
		}
		p := first + uint64(i)
		ent := e.pt[p]
		switch ent.state() {
		case stResident:
			f := ent.frame()
			fm := &e.frames[f]
			fm.pins++
			fm.ref = true
			if write {
				fm.dirty = true
			}
			out[i] = f
			i++
			e.st.hits.Add(1)
		case stZero, stStored:
			if ent.state() == stStored && missAt.IsZero() {
				// A fault's latency includes any reclaim it has to wait for.
				missAt = time.Now()
			}
			f, ok := e.allocLocked()
			if !ok {
				if i > 0 {
					break loop // use what we have; the caller comes back
				}
				// Holding nothing, so waiting here cannot deadlock.
				retry, rerr := e.reclaimLocked(ctx, true)
				switch {
				case rerr != nil:
					err = rerr
					break loop
				case !retry:
					if cerr := ctx.Err(); cerr != nil {
						err = cerr
						break loop
					}
					e.wait() // every frame is pinned or busy: wait for a release
				}
				continue
			}
			fm := &e.frames[f]
			*fm = frameMeta{page: p, pins: 1, ref: true, used: true, dirty: write}
			if ent.state() == stZero {
				clear(e.frameData(f))
				e.pt[p] = makePTE(stResident, f)
				e.st.zeroFills.Add(1)
			} else {
				fm.inStore = true
				e.pt[p] = makePTE(stLoading, f)
				if b == nil {
					b = e.getBatch(store.OpRead)
				}
				b.call.Pages = append(b.call.Pages, store.Page{ID: store.PageID(p), Data: e.frameData(f)})
				b.frames = append(b.frames, f)
			}
			out[i] = f
			i++
		default: // loading or evicting on behalf of another goroutine
			if i > 0 {
				break loop
			}
			e.wait()
		}
	}
	if b != nil {
		e.mu.Unlock()
		ferr := store.Do(ctx, e.cfg.Store, &b.call)
		d := time.Since(missAt)
		e.mu.Lock()
		if ferr != nil {
			e.st.fetchErrors.Add(1)
			// Every page of the batch goes back to the store state; its frame
			// is freed. The store still holds the pages.
			for _, f := range b.frames {
				fm := &e.frames[f]
				e.pt[fm.page] = makePTE(stStored, 0)
				*fm = frameMeta{}
				e.free = append(e.free, f)
			}
			if err == nil {
				err = fmt.Errorf("engine: fetching %d pages from page %d: %w", len(b.frames), b.call.Pages[0].ID, ferr)
			}
		} else {
			for _, f := range b.frames {
				e.pt[e.frames[f].page] = makePTE(stResident, f)
			}
			e.st.faults.Add(uint64(len(b.frames)))
			e.st.fetchedPages.Add(uint64(len(b.frames)))
		}
		e.wakeLocked()
		npages := len(b.frames)
		e.putBatch(b)
		if ferr == nil && e.cfg.FaultObserver != nil {
			e.cfg.FaultObserver(npages, d)
		}
	}
	if err != nil {
		for _, f := range out[:i] {
			if fm := &e.frames[f]; fm.used && fm.pins > 0 {
				fm.pins--
			}
		}
		e.wakeLocked()
		e.mu.Unlock()
		return 0, err
	}
	e.mu.Unlock()
	return i, nil
}

// release unpins frames.
func (e *Engine) release(frames []uint32) {
	e.mu.Lock()
	for _, f := range frames {
		fm := &e.frames[f]
		if fm.pins <= 0 {
			e.mu.Unlock()
			panic("engine: invariant broken: release of an unpinned frame")
		}
		fm.pins--
	}
	e.wakeLocked()
	e.mu.Unlock()
}

// access runs fn over the bytes of [off, off+n), page run by page run, with
// the pages pinned.
func (e *Engine) access(ctx context.Context, off int64, n int, write bool, fn func(data []byte, done int) int) (int, error) {
	var frames [MaxBatch]uint32
	done := 0
	mask := int64(e.pageSize - 1)
	for done < n {
		pos := off + int64(done)
		first := uint64(pos >> e.shift)
		last := uint64((off + int64(n) - 1) >> e.shift)
		cnt := int(min(last-first+1, MaxBatch))
		got, err := e.acquire(ctx, first, cnt, write, frames[:cnt])
		if err != nil {
			return done, err
		}
		for k := 0; k < got; k++ {
			data := e.frameData(frames[k])
			c := fn(data[pos&mask:], done)
			done += c
			pos += int64(c)
		}
		e.release(frames[:got])
	}
	return done, nil
}

// ReadAt reads len(p) bytes at off, as io.ReaderAt does: a read that reaches
// past the end of the region returns the bytes before it and io.EOF.
func (e *Engine) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%w: offset %d", ErrOutOfRange, off)
	}
	if off >= e.cfg.Size {
		return 0, io.EOF
	}
	n := len(p)
	var eof error
	if int64(n) > e.cfg.Size-off {
		n = int(e.cfg.Size - off)
		eof = io.EOF
	}
	got, err := e.access(ctx, off, n, false, func(data []byte, done int) int {
		return copy(p[done:n], data)
	})
	if err != nil {
		return got, err
	}
	return got, eof
}

// WriteAt writes p at off. A write that does not fit the region fails with
// ErrOutOfRange and writes nothing.
func (e *Engine) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if off < 0 || int64(len(p)) > e.cfg.Size-off {
		return 0, fmt.Errorf("%w: %d bytes at offset %d in a region of %d", ErrOutOfRange, len(p), off, e.cfg.Size)
	}
	return e.access(ctx, off, len(p), true, func(data []byte, done int) int {
		return copy(data, p[done:])
	})
}

// View is a pinned page: its bytes stay in DRAM, at the same address, until
// Release. It is the zero-copy access path.
type View struct {
	e     *Engine
	frame uint32
	page  uint64
}

// Pin pins one page and returns a view of it. With write set the page is
// marked dirty, so changes made through Bytes are written back. A view must
// be released; while it is held its frame cannot be evicted, and Sync waits
// for it. At most half of the frames may be pinned by views at once; beyond
// that Pin returns ErrNoFrames.
func (e *Engine) Pin(ctx context.Context, page uint64, write bool) (View, error) {
	if page >= e.npages {
		return View{}, fmt.Errorf("%w: page %d of %d", ErrOutOfRange, page, e.npages)
	}
	e.mu.Lock()
	if 2*(e.viewPins+1) > len(e.frames) {
		e.mu.Unlock()
		return View{}, fmt.Errorf("%w: %d views are pinned already", ErrNoFrames, e.viewPins)
	}
	e.viewPins++
	e.mu.Unlock()
	var f [1]uint32
	if _, err := e.acquire(ctx, page, 1, write, f[:]); err != nil {
		e.mu.Lock()
		e.viewPins--
		e.mu.Unlock()
		return View{}, err
	}
	return View{e: e, frame: f[0], page: page}, nil
}

// Bytes returns the page's memory. It is valid until Release.
func (v View) Bytes() []byte { return v.e.frameData(v.frame) }

// Page returns the page's index in the region.
func (v View) Page() uint64 { return v.page }

// Release unpins the page. A view must be released exactly once.
func (v View) Release() {
	f := [1]uint32{v.frame}
	v.e.mu.Lock()
	v.e.viewPins--
	v.e.mu.Unlock()
	v.e.release(f[:])
}
