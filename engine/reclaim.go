package engine

import (
	"context"
	"fmt"

	"github.com/farmem/farmem/store"
)

// reclaimLocked runs one CLOCK eviction round: it picks up to ReclaimBatch
// unpinned, unreferenced resident pages, writes the dirty ones back in one
// batched store Call, and frees their frames. The caller holds e.mu; it is
// released during the write.
//
// It reports retry=true when the caller should try to allocate again: frames
// were freed, or (direct reclaim) another round was in flight and has been
// waited for. retry=false with a nil error means nothing was evictable.
func (e *Engine) reclaimLocked(ctx context.Context, direct bool) (retry bool, err error) {
	if e.reclaiming {
		if direct {
			e.wait()
			return true, nil
		}
		return false, nil
	}
	b := e.getBatch(store.OpWrite)
	n := len(e.frames)
	for scanned := 0; scanned < 2*n && len(b.frames) < e.cfg.ReclaimBatch; scanned++ {
		f, ok := e.clockStepLocked()
		if !ok {
			continue
		}
		fm := &e.frames[f]
		e.pt[fm.page] = makePTE(stEvicting, f)
		b.frames = append(b.frames, f)
		if fm.dirty {
			b.call.Pages = append(b.call.Pages, store.Page{ID: store.PageID(fm.page), Data: e.frameData(f)})
		}
	}
	if len(b.frames) == 0 {
		e.putBatch(b)
		return false, nil
	}
	if direct {
		e.st.directReclaims.Add(1)
	}
	werr := e.writeLocked(ctx, b)
	freed := 0
	j := 0
	for _, f := range b.frames {
		fm := &e.frames[f]
		if fm.dirty {
			pg := &b.call.Pages[j]
			j++
			if werr != nil || pg.Err != nil {
				// Not durable in the store: the page stays resident and dirty.
				e.pt[fm.page] = makePTE(stResident, f)
				fm.ref = true
				continue
			}
			fm.inStore = true
			e.st.writebacks.Add(1)
		}
		e.dropLocked(f)
		freed++
	}
	e.st.evictions.Add(uint64(freed))
	if freed == 0 {
		err = b.call.FirstErr()
		if werr != nil {
			err = werr
		}
		e.putBatch(b)
		return false, fmt.Errorf("engine: writing back evicted pages: %w", err)
	}
	e.putBatch(b)
	return true, nil
}

// clockStepLocked advances the CLOCK hand by one frame and returns that
// frame if it is a victim: resident, unpinned and unreferenced. A referenced
// frame loses its reference bit (its second chance) and is passed over.
func (e *Engine) clockStepLocked() (uint32, bool) {
	f := uint32(e.hand)
	if e.hand++; e.hand == len(e.frames) {
		e.hand = 0
	}
	fm := &e.frames[f]
	if !fm.used || fm.pins > 0 || e.pt[fm.page].state() != stResident {
		return 0, false
	}
	if fm.ref {
		fm.ref = false
		return 0, false
	}
	return f, true
}

// dropLocked frees frame f, whose page is clean (or was just written back):
// the page goes back to the stored state, or to zero if it never reached
// the store.
func (e *Engine) dropLocked(f uint32) {
	fm := &e.frames[f]
	if fm.inStore {
		e.pt[fm.page] = makePTE(stStored, 0)
	} else {
		e.pt[fm.page] = makePTE(stZero, 0)
	}
	*fm = frameMeta{}
	e.free = append(e.free, f)
}

// reclaimCleanLocked runs a short CLOCK pass that frees clean, unreferenced
// pages at once (they need no I/O). It scans at most 4 × ReclaimBatch frames
// and frees at most ReclaimBatch. It reports whether it passed over
// unreferenced dirty pages, which only a write-back round can free.
func (e *Engine) reclaimCleanLocked() (sawDirty bool) {
	n := len(e.frames)
	freed := 0
	for scanned := 0; scanned < 4*e.cfg.ReclaimBatch && scanned < n && freed < e.cfg.ReclaimBatch; scanned++ {
		f, ok := e.clockStepLocked()
		if !ok {
			continue
		}
		if e.frames[f].dirty {
			sawDirty = true
			continue
		}
		e.dropLocked(f)
		freed++
	}
	e.st.evictions.Add(uint64(freed))
	return sawDirty
}

// writeLocked writes b's pages to the store with e.mu released and the
// reclaiming flag set, so that one write-back round runs at a time. The frames
// being written are in the evicting state: nobody can pin or change them.
func (e *Engine) writeLocked(ctx context.Context, b *batch) error {
	if len(b.call.Pages) == 0 {
		return nil
	}
	e.reclaiming = true
	e.mu.Unlock()
	for i := range b.call.Pages {
		b.call.Pages[i].Sum = store.Checksum(b.call.Pages[i].Data)
	}
	err := store.Do(ctx, e.cfg.Store, &b.call)
	e.mu.Lock()
	e.reclaiming = false
	if err != nil {
		e.st.writebackErrors.Add(1)
	}
	e.wakeLocked()
	return err
}

// Sync writes every dirty resident page back to the store and keeps it
// resident and clean. Pages written before Sync is called are durable in the
// store when it returns nil. A page pinned by a View is written once the view
// is released, so Sync waits for views. ctx is checked between batches.
func (e *Engine) Sync(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	next := 0
	sawPinned := false
	for {
		if e.closed {
			return ErrClosed
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.reclaiming {
			e.wait()
			continue
		}
		b := e.getBatch(store.OpWrite)
		for ; next < len(e.frames) && len(b.frames) < MaxBatch; next++ {
			fm := &e.frames[next]
			if !fm.used || !fm.dirty || e.pt[fm.page].state() != stResident {
				continue
			}
			if fm.pins > 0 {
				sawPinned = true
				continue
			}
			e.pt[fm.page] = makePTE(stEvicting, uint32(next))
			b.frames = append(b.frames, uint32(next))
			b.call.Pages = append(b.call.Pages, store.Page{ID: store.PageID(fm.page), Data: e.frameData(uint32(next))})
		}
		if len(b.frames) == 0 {
			e.putBatch(b)
			if next < len(e.frames) {
				continue
			}
			if !sawPinned {
				return nil
			}
			// Another pass once pinned pages are released.
			e.wait()
			next, sawPinned = 0, false
			continue
		}
		werr := e.writeLocked(ctx, b)
		for j, f := range b.frames {
			fm := &e.frames[f]
			e.pt[fm.page] = makePTE(stResident, f)
			if werr == nil && b.call.Pages[j].Err == nil {
				fm.dirty = false
				fm.inStore = true
				e.st.writebacks.Add(1)
			}
		}
		e.wakeLocked()
		if werr == nil {
			werr = b.call.FirstErr()
		}
		e.putBatch(b)
		if werr != nil {
			return fmt.Errorf("engine: sync: %w", werr)
		}
	}
}
