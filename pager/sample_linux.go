//go:build linux

package pager

import (
	"time"

	"github.com/farmem/farmem/uffd"
)

// Access sampling (TPP's hint faults). A resident page that the
// application reads or writes without faulting is invisible to the pager,
// so CLOCK alone is second-chance FIFO. Every SampleInterval the sampler
// takes up to SamplePages clean pages of each region out of the mapping:
// it copies each into a staging slot (pager memory), then punches it out of
// the memfd. A page re-accessed while staged raises a missing fault that is
// served from its slot, with no far-tier I/O (a hint fault), and gets its
// reference bit: it was used. A page still staged when the reclaimer comes
// by was not used since it was sampled: it is the first victim, and its
// eviction costs nothing (it is clean: its far copy, or zero, is valid).
//
// Only clean pages are sampled, so a pager death loses nothing: a staged
// page's content is also in the far tier (or is zero), where the next
// pager finds it. Staged pages count against the budget like resident ones.

// stage is a region's staging buffer.
type stage struct {
	buf  []byte
	free []int32       // free slots
	slot map[int]int32 // staged page -> slot
	at   []time.Time   // per slot: when its page was staged
}

func (r *region) initStage(pages int) {
	r.stg = &stage{buf: make([]byte, pages*r.ps), free: make([]int32, pages), slot: make(map[int]int32, pages),
		at: make([]time.Time, pages)}
	for i := range r.stg.free {
		r.stg.free[i] = int32(pages - 1 - i)
	}
}

func (s *stage) data(slot int32, ps int) []byte {
	return s.buf[int(slot)*ps : (int(slot)+1)*ps]
}

// sample stages up to the free slots' worth of clean, resident pages,
// scanning from the sample hand. It returns how many it staged.
func (r *region) sample() int {
	if r.stg == nil {
		return 0
	}
	r.mu.Lock()
	if r.stopping.Load() {
		r.mu.Unlock()
		return 0
	}
	r.inflight.Add(1)
	defer r.inflight.Done()
	var picked []int
	for scanned := 0; len(picked) < len(r.stg.free) && scanned < r.n; scanned++ {
		pg := r.sampleHand
		if r.sampleHand++; r.sampleHand == r.n {
			r.sampleHand = 0
		}
		if r.pages[pg]&stateMask != stClean {
			continue
		}
		// Faults on it wait while it is copied out and punched.
		r.pages[pg] = r.pages[pg]&^stateMask | stEvicting
		picked = append(picked, pg)
	}
	slots := make([]int32, len(picked))
	for i := range picked {
		n := len(r.stg.free) - 1
		slots[i] = r.stg.free[n]
		r.stg.free = r.stg.free[:n]
	}
	r.mu.Unlock()

	staged := 0
	for i, pg := range picked {
		// The page is clean, hence write-protected: no write can land
		// while it is copied (a writer waits for the evicting state).
		copy(r.stg.data(slots[i], r.ps), r.view[pg*r.ps:(pg+1)*r.ps])
		ok := true
		if err := uffd.PunchHole(r.a.Memfd, int64(pg)*int64(r.ps), int64(r.ps)); err != nil {
			r.p.logf("pager: region %d: sampling page %d: %v", r.id, pg, err)
			ok = false
		}
		r.mu.Lock()
		v := r.pages[pg] &^ (stateMask | fRef)
		if ok {
			r.pages[pg] = v | stStaged
			r.stg.slot[pg] = slots[i]
			r.stg.at[slots[i]] = time.Now()
			staged++
		} else {
			r.pages[pg] = v | stClean
			r.stg.free = append(r.stg.free, slots[i])
		}
		r.cond.Broadcast()
		r.mu.Unlock()
	}
	r.p.stats.sampled.Add(uint64(staged))
	return staged
}

// hintFault serves a missing fault on a staged page from its slot: the
// page was used, so it gets its reference bit. Called with r.mu held and
// the page staged; returns with r.mu released.
func (r *region) hintFault(pg int, write bool, t0 time.Time) {
	slot := r.stg.slot[pg]
	delete(r.stg.slot, pg)
	v := r.pages[pg] &^ stateMask
	r.pages[pg] = v | stLoading
	r.mu.Unlock()
	mode := uffd.CopyWP
	st := stClean
	if write {
		mode, st = 0, stDirty
	}
	r.p.stats.installs.Add(1)
	_, err := r.a.Uffd.Copy(r.addr(pg), r.stg.data(slot, r.ps), mode)
	r.mu.Lock()
	if err != nil {
		// The application is gone or the range is changing: keep the page
		// staged; a later fault or the reclaimer takes it from there.
		r.pages[pg] = v | stStaged
		r.stg.slot[pg] = slot
		r.mu.Unlock()
		if !gone(err) && !r.stopping.Load() {
			r.p.logf("pager: region %d: hint fault on page %d: %v", r.id, pg, err)
			r.wake(pg, 1)
		}
		return
	}
	r.pages[pg] = v | st | fRef
	r.stg.free = append(r.stg.free, slot)
	r.mu.Unlock()
	c := &r.p.stats
	c.hintFaults.Add(1)
	r.p.recordService(t0)
}

// dropStagedLocked evicts up to max staged pages that were not used for at
// least one sample interval after they were staged, for free, and returns
// how many. (A page dropped sooner would carry no signal: it had no time to
// be re-accessed.) Called with r.mu held.
func (r *region) dropStagedLocked(max int) int {
	if r.stg == nil || len(r.stg.slot) == 0 {
		return 0
	}
	n := 0
	cut := time.Now().Add(-r.p.cfg.SampleInterval)
	for pg, slot := range r.stg.slot {
		if n == max {
			break
		}
		if r.stg.at[slot].After(cut) {
			continue
		}
		delete(r.stg.slot, pg)
		r.stg.free = append(r.stg.free, slot)
		r.pages[pg] = r.pages[pg]&^stateMask | stAbsent
		n++
	}
	r.resident -= n
	return n
}

// sampler runs the access sampling of every region.
func (p *Pager) sampler() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.SampleInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-p.ctx.Done():
			return
		}
		p.mu.Lock()
		regions := append([]*region(nil), p.order...)
		p.mu.Unlock()
		for _, r := range regions {
			r.sample()
		}
	}
}
