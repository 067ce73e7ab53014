//go:build linux

package pager

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/uffd"
)

// evictor is the reclaimer's reusable state.
type evictor struct {
	victims []victim
	buf     []byte
	call    store.Call
	written []int // pages written back by the batch, for Config.Meta
}

type victim struct {
	pg    int
	dirty bool
	v     uint8 // the entry before eviction
}

func (p *Pager) newEvictor() *evictor {
	b := p.cfg.ReclaimBatch
	return &evictor{
		victims: make([]victim, 0, b), buf: make([]byte, b*p.pageSize), written: make([]int, 0, b),
		call: store.Call{Op: store.OpWrite, Pages: make([]store.Page, 0, b), Done: make(chan *store.Call, 1)},
	}
}

// evictBatch evicts up to ReclaimBatch pages of r chosen by CLOCK and
// returns how many it freed. For each victim, in this order:
//
//  1. mark it evicting (faults on it wait, the reclaimer skips it);
//  2. if dirty, write-protect it in the application's mapping, so that no
//     write can land from here on (a write now raises a write-protect
//     fault, which waits for the eviction to end and then finds the page
//     absent); clean pages are protected already;
//  3. copy the dirty pages out through the pager's view and write them to
//     the far tier in one store call;
//  4. with Config.Meta, set their bits "written to the far tier" in one
//     transaction of the metadata pool, durable when it returns;
//  5. punch them out of the memfd (FALLOC_FL_PUNCH_HOLE): the next access
//     faults as missing;
//  6. mark them absent, and wake waiters.
//
// A failed write-back (or bit transaction) leaves the pages resident and
// dirty (protected; the next write unprotects them as usual): nothing is
// punched before it is durable in the far tier and, with Meta, recorded
// there. So a pager crash at any point leaves each page resident in the
// memfd, or recorded as in the far tier (or clean: its bit was set when it
// was written back earlier, or it is zero).
func (r *region) evictBatch(ev *evictor) (int, error) {
	t0 := time.Now()
	r.mu.Lock()
	if r.stopping.Load() {
		r.mu.Unlock()
		return 0, errStopping
	}
	r.inflight.Add(1)
	defer r.inflight.Done()
	ev.victims = ev.victims[:0]
	want := cap(ev.victims)
	// Staged pages were not used since they were sampled: they go first,
	// and for free (they are clean and out of the mapping already).
	if n := r.dropStagedLocked(want); n > 0 {
		r.mu.Unlock()
		r.p.stats.stagedDrops.Add(uint64(n))
		r.p.stats.evictions.Add(uint64(n))
		return n, nil
	}
	for scanned := 0; len(ev.victims) < want && scanned < 2*r.n && scanned < 64*want; scanned++ {
		pg := r.hand
		if r.hand++; r.hand == r.n {
			r.hand = 0
		}
		v := r.pages[pg]
		s := v & stateMask
		if s != stClean && s != stDirty {
			continue
		}
		if v&fRef != 0 {
			r.pages[pg] = v &^ fRef
			continue
		}
		r.pages[pg] = v&^stateMask | stEvicting
		ev.victims = append(ev.victims, victim{pg: pg, dirty: s == stDirty, v: v})
	}
	r.mu.Unlock()
	if len(ev.victims) == 0 {
		return 0, nil
	}
	if r.async != nil {
		return r.evictPinned(ev, t0)
	}

	if err := r.writeBack(ev); err != nil {
		r.restore(ev)
		return 0, err
	}
	if err := r.recordWritten(ev); err != nil {
		r.restore(ev)
		return 0, err
	}
	for i := 0; i < len(ev.victims); {
		j := i + 1
		for j < len(ev.victims) && ev.victims[j].pg == ev.victims[j-1].pg+1 {
			j++
		}
		off := int64(ev.victims[i].pg) * int64(r.ps)
		if err := uffd.PunchHole(r.a.Memfd, off, int64(j-i)*int64(r.ps)); err != nil {
			// Nothing was lost (the pages are written back), but the
			// memfd may still hold them: keep them resident.
			r.restore(ev)
			return 0, err
		}
		i = j
	}
	r.mu.Lock()
	for _, vc := range ev.victims {
		v := vc.v &^ (stateMask | fRef)
		if vc.dirty {
			v = v&^fUnknown | fStored
		}
		r.pages[vc.pg] = v | stAbsent
	}
	r.resident -= len(ev.victims)
	r.cond.Broadcast()
	r.mu.Unlock()
	c := &r.p.stats
	c.evictions.Add(uint64(len(ev.victims)))
	c.evictBatches.Add(1)
	c.evictNS.Add(uint64(time.Since(t0)))
	return len(ev.victims), nil
}

// recordWritten sets, in Config.Meta, the bits of the victims just written
// back: one transaction for the whole batch (none if there is no record,
// no dirty victim, or every bit is set already).
func (r *region) recordWritten(ev *evictor) error {
	if r.meta == nil {
		return nil
	}
	ev.written = ev.written[:0]
	for _, vc := range ev.victims {
		if vc.dirty {
			ev.written = append(ev.written, vc.pg)
		}
	}
	if len(ev.written) == 0 {
		return nil
	}
	slices.Sort(ev.written) // the CLOCK hand may have wrapped
	t := time.Now()
	committed, err := r.p.cfg.Meta.setBits(r.meta, ev.written)
	if committed {
		c := &r.p.stats
		c.metaTxs.Add(1)
		c.metaNS.Add(uint64(time.Since(t)))
	}
	if err != nil {
		return fmt.Errorf("recording %d written-back pages in the metadata pool: %w", len(ev.written), err)
	}
	return nil
}

// writeBack protects the dirty victims and writes them to the far tier.
func (r *region) writeBack(ev *evictor) error {
	ps := r.ps
	ev.call.Pages = ev.call.Pages[:0]
	for i := 0; i < len(ev.victims); {
		if !ev.victims[i].dirty {
			i++
			continue
		}
		j := i + 1
		for j < len(ev.victims) && ev.victims[j].dirty && ev.victims[j].pg == ev.victims[j-1].pg+1 {
			j++
		}
		if err := r.a.Uffd.WriteProtect(r.addr(ev.victims[i].pg), (j-i)*ps, true, false); err != nil {
			return fmt.Errorf("write-protect before eviction: %w", err)
		}
		i = j
	}
	for _, vc := range ev.victims {
		if !vc.dirty {
			continue
		}
		k := len(ev.call.Pages)
		data := ev.buf[k*ps : (k+1)*ps]
		copy(data, r.view[vc.pg*ps:(vc.pg+1)*ps])
		ev.call.Pages = append(ev.call.Pages, store.Page{ID: store.PageID(vc.pg), Data: data, Sum: store.Checksum(data)})
	}
	return r.storePages(ev)
}

// storePages writes ev.call.Pages to the far tier in one call and counts
// it; both eviction paths (write-protect and pinned) end with it.
func (r *region) storePages(ev *evictor) error {
	if len(ev.call.Pages) == 0 {
		return nil
	}
	ev.call.Reset()
	r.p.stats.writeBackCalls.Add(1)
	ctx, cancel := context.WithTimeout(r.ctx, 30*time.Second)
	err := store.Do(ctx, r.st, &ev.call)
	cancel()
	if err != nil {
		r.p.stats.writeBackErrors.Add(1)
		return fmt.Errorf("write-back of %d pages: %w", len(ev.call.Pages), err)
	}
	r.p.stats.writeBacks.Add(uint64(len(ev.call.Pages)))
	return nil
}

// restore puts victims back after a failed eviction: each stays resident,
// dirty if it was (it is protected now; its next write unprotects it).
func (r *region) restore(ev *evictor) {
	r.mu.Lock()
	for _, vc := range ev.victims {
		r.pages[vc.pg] = vc.v | fRef
	}
	r.cond.Broadcast()
	r.mu.Unlock()
}

// freeFar frees the region's pages in the far tier once the application is
// gone, in store calls of up to 64 pages. Best effort: a failure is logged.
func (r *region) freeFar() {
	ctx, cancel := context.WithTimeout(r.p.ctx, 30*time.Second)
	defer cancel()
	call := store.Call{Op: store.OpFree, Pages: make([]store.Page, 0, 64), Done: make(chan *store.Call, 1)}
	flush := func() bool {
		if len(call.Pages) == 0 {
			return true
		}
		call.Reset()
		if err := store.Do(ctx, r.st, &call); err != nil {
			r.p.logf("pager: region %d: freeing far pages: %v", r.id, err)
			return false
		}
		call.Pages = call.Pages[:0]
		return true
	}
	for pg, v := range r.pages {
		if v&(fStored|fUnknown) == 0 {
			continue
		}
		call.Pages = append(call.Pages, store.Page{ID: store.PageID(pg)})
		if len(call.Pages) == cap(call.Pages) && !flush() {
			return
		}
	}
	flush()
}
