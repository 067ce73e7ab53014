package engine

import (
	"context"
	"errors"
	"fmt"

	"github.com/farmem/farmem/store"
)

// ErrPinned is returned by Discard while views are pinned.
var ErrPinned = errors.New("engine: pages are pinned by views")

// Discard frees every page of the region in the store and drops the local
// copies: afterwards the region reads as zeros and the store holds none of
// its pages. A long-running memnode gets its capacity back only this way;
// Close leaves the pages where they are, so that a later Open of the same
// namespace finds them.
//
// Pages in the middle of a free wait as pages in the middle of a fetch do,
// so a concurrent access sees either the old contents or zeros, never a
// page freed after it was written. Discard waits for ReadAt and WriteAt
// calls in progress and fails with ErrPinned while views are pinned. On a
// store error the pages not yet freed keep their contents.
func (e *Engine) Discard(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for e.reclaiming && !e.closed {
		e.wait()
	}
	if e.closed {
		return ErrClosed
	}
	if e.viewPins > 0 {
		return ErrPinned
	}
	ids := make([]store.PageID, 0, MaxBatch)
	call := store.Call{Op: store.OpFree, Pages: make([]store.Page, 0, MaxBatch), Done: make(chan *store.Call, 1)}
	for p := uint64(0); p < uint64(len(e.pt)); {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Take a run of pages that are settled (not in flight elsewhere)
		// and that the store may hold.
		ids = ids[:0]
		for ; p < uint64(len(e.pt)) && len(ids) < MaxBatch; p++ {
			ent := e.pt[p]
			switch ent.state() {
			case stStored:
			case stResident:
				f := ent.frame()
				fm := &e.frames[f]
				if fm.pins > 0 {
					if e.viewPins > 0 {
						return ErrPinned // a view raced Discard
					}
					// A ReadAt or WriteAt is copying: wait for it.
					e.wait()
					p--
					continue
				}
				inStore := fm.inStore
				*fm = frameMeta{}
				e.free = append(e.free, f)
				if !inStore {
					e.pt[p] = makePTE(stZero, 0)
					continue
				}
			case stZero:
				continue
			default:
				// Loading or evicting on behalf of another goroutine: wait
				// for it to settle and look again.
				e.wait()
				p--
				continue
			}
			e.pt[p] = makePTE(stEvicting, 0)
			ids = append(ids, store.PageID(p))
		}
		if len(ids) == 0 {
			continue
		}
		call.Pages = call.Pages[:0]
		for _, id := range ids {
			call.Pages = append(call.Pages, store.Page{ID: id})
		}
		call.Err = nil
		e.mu.Unlock()
		err := store.Do(ctx, e.cfg.Store, &call)
		e.mu.Lock()
		for i, id := range ids {
			if err != nil && (call.Err != nil || call.Pages[i].Err != nil) {
				e.pt[id] = makePTE(stStored, 0)
			} else {
				e.pt[id] = makePTE(stZero, 0)
			}
		}
		e.wakeLocked()
		if err != nil {
			return fmt.Errorf("engine: discarding pages from %d: %w", ids[0], err)
		}
	}
	return nil
}
