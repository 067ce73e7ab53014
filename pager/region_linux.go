//go:build linux

package pager

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmem/farmem/attach"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/uffd"
	"golang.org/x/sys/unix"
)

// Page states, in the low bits of a residency map entry. Only the pager
// changes them, under region.mu; the transient states (loading, busy,
// evicting) are owned by the goroutine that set them.
const (
	stAbsent   uint8 = iota // a hole in the memfd; the content is in the far tier, or zero
	stLoading               // a fetch and install are in flight (the budget is reserved)
	stClean                 // resident, write-protected, equal to its far copy (or zero)
	stDirty                 // resident and writable: the application may have written it
	stBusy                  // resident; a worker is clearing its write protection
	stEvicting              // write-protected, being copied out, written back and punched
	stStaged                // clean, sampled out of the mapping into a staging slot (sample_linux.go)

	stateMask uint8 = 7
	// fRef is the CLOCK reference bit: set on install and on first write.
	fRef uint8 = 1 << 3
	// fStored: the far tier holds this page's last written-back content.
	fStored uint8 = 1 << 4
	// fUnknown: recovered after a pager restart; the far tier may or may
	// not hold the page (not found then means never written: zeros).
	fUnknown uint8 = 1 << 5
)

// region is one attached region as the pager serves it.
type region struct {
	p    *Pager
	a    *attach.Attachment
	st   store.Store
	meta *metaRegion // the region's record in Config.Meta; nil without one
	// async is set when the region's dirty pages are tracked with WP_ASYNC
	// (async_linux.go); nil: synchronous write-protect faults.
	async *asyncState
	id    uint64
	ps    int
	n     int // pages
	base  uintptr
	view  []byte

	ctx    context.Context // cancelled when the region stops
	cancel context.CancelFunc

	mu         sync.Mutex
	cond       *sync.Cond // waiters for the end of an eviction
	pages      []uint8    // the residency map: state | flags per page
	hand       int        // CLOCK hand
	stg        *stage     // access sampling's staging slots; nil without sampling
	sampleHand int
	resident   int // pages in states other than absent and loading

	stopping   atomic.Bool
	stopOnce   sync.Once
	readerDone chan struct{}
	inflight   sync.WaitGroup // dispatched faults and evictions
	gone       chan struct{}  // closed when detached
	lostLogged atomic.Uint64
}

func newRegion(p *Pager, a *attach.Attachment, st store.Store) *region {
	r := &region{
		p: p, a: a, st: st, id: a.RegionID, ps: a.PageSize, n: a.Size / a.PageSize,
		base: a.AppBase, view: a.PagerView, pages: make([]uint8, a.Size/a.PageSize),
		readerDone: make(chan struct{}), gone: make(chan struct{}),
	}
	r.cond = sync.NewCond(&r.mu)
	r.ctx, r.cancel = context.WithCancel(p.ctx)
	if p.cfg.SampleInterval > 0 {
		r.initStage(p.cfg.SamplePages)
	}
	return r
}

// openMeta finds or creates the region's record in Config.Meta: a new
// region gets one; a re-attached region uses the record its previous pager
// made, and one without a record (made by a pager without the table) is
// served as without it.
func (r *region) openMeta() error {
	m := r.p.cfg.Meta
	if m == nil {
		return nil
	}
	if !r.a.Reattached {
		mr, err := m.create(r.id, r.a.Size, r.ps)
		if err != nil {
			return err
		}
		r.meta = mr
		return nil
	}
	if err := m.check(r.id, r.a.Size, r.ps); err != nil {
		return fmt.Errorf("%w: %w", ErrNotRecoverable, err)
	}
	r.meta = m.lookup(r.id)
	if r.meta == nil {
		r.p.logf("pager: region %d has no record in the metadata pool %s: absent pages the far tier lacks will read as zero", r.id, m.Path())
	}
	return nil
}

// dropMeta removes the region's record, unless keep is set.
func (r *region) dropMeta(keep bool) {
	if r.meta == nil || keep {
		return
	}
	if err := r.p.cfg.Meta.remove(r.meta); err != nil {
		r.p.logf("pager: region %d: %v", r.id, err)
	}
}

// recoverResidency rebuilds the residency map of a re-attached region from
// the memfd itself: SEEK_DATA/SEEK_HOLE find the pages resident in it (they
// survived the previous pager and are authoritative), without touching any
// hole. Resident pages are treated as dirty (their write protection is
// unknown). With a record in Config.Meta, an absent page whose bit is set
// is in the far tier (if the far tier no longer has it, it is lost:
// ErrLostPage), and one whose bit is clear was never written (zero).
// Without a record, absent pages are looked up in the far tier, where a
// page not found is taken as never written and is zero.
func (r *region) recoverResidency() error {
	for i := range r.pages {
		switch {
		case r.meta == nil:
			r.pages[i] = stAbsent | fUnknown
		case r.meta.written(r.p.cfg.Meta, i):
			r.pages[i] = stAbsent | fStored
		default:
			r.pages[i] = stAbsent
		}
	}
	fd := r.a.Memfd
	size := int64(r.a.Size)
	for off := int64(0); off < size; {
		d, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break
		}
		if err != nil {
			return fmt.Errorf("pager: recovering residency: SEEK_DATA: %w", err)
		}
		h, err := unix.Seek(fd, d, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("pager: recovering residency: SEEK_HOLE: %w", err)
		}
		for pg := d / int64(r.ps); pg*int64(r.ps) < h && pg < int64(r.n); pg++ {
			r.pages[pg] = r.pages[pg]&(fStored|fUnknown) | stDirty | fRef
			r.resident++
		}
		off = h
	}
	return nil
}

// start launches the event reader.
func (r *region) start() { go r.readLoop() }

// readLoop reads the region's userfaultfd on a thread blocked in poll(2)
// (uffd.Read; never through Go's netpoller). Of each batch of events it
// dispatches all but the last to idle workers and serves the last itself,
// so a lone fault is served without a goroutine hand-off and a burst is
// served concurrently.
func (r *region) readLoop() {
	defer close(r.readerDone)
	w := r.p.newWorker()
	var msgs [32]uffd.Msg
	spin := r.p.cfg.SpinPoll
	var lastFault time.Time
	for {
		n, err := 0, error(nil)
		// While faults come often, poll without blocking for a short
		// while after each one: the next fault is then read without a
		// wake-up of this thread.
		for spin > 0 && time.Since(lastFault) < spin {
			if n, err = r.a.Uffd.TryRead(msgs[:]); n > 0 || err != nil {
				break
			}
		}
		if n == 0 && err == nil {
			n, err = r.a.Uffd.Read(msgs[:])
		}
		if err != nil {
			if !errors.Is(err, uffd.ErrClosed) {
				// Nothing more can be served: detach the region (the
				// application is told, and may re-attach it).
				r.p.logf("pager: region %d: reading faults: %v; detaching it", r.id, err)
				go r.p.detach(r, false)
			}
			return
		}
		t := time.Now()
		for i := 0; i < n-1; i++ {
			if !r.p.dispatch(r, &msgs[i], t) {
				r.handle(w, &msgs[i], t)
			}
		}
		if n > 0 {
			r.handle(w, &msgs[n-1], t)
			lastFault = time.Now()
		}
	}
}

// stop ends the region's service: no new faults are read, faults and
// evictions in flight finish or give up, and reservations waiting for
// reclaim are released. It returns false if the region was stopped already.
func (r *region) stop() bool {
	first := false
	r.stopOnce.Do(func() { first = true })
	if !first {
		return false
	}
	r.mu.Lock()
	r.stopping.Store(true)
	r.cond.Broadcast()
	r.mu.Unlock()
	r.p.mu.Lock()
	r.p.resCond.Broadcast()
	r.p.mu.Unlock()
	r.cancel()
	_ = r.a.Uffd.Shutdown()
	<-r.readerDone
	r.inflight.Wait()
	return true
}

// worker is the per-goroutine state of the fault path: buffers reused for
// every fault, so that serving a fault allocates nothing per page.
type worker struct {
	buf   []byte
	flags []uint8
	found []bool
	call  store.Call
}

func (p *Pager) newWorker() *worker {
	k := p.cfg.Prefetch + 1
	return &worker{
		buf: make([]byte, k*p.pageSize), flags: make([]uint8, k), found: make([]bool, k),
		call: store.Call{Op: store.OpRead, Pages: make([]store.Page, 0, k), Done: make(chan *store.Call, 1)},
	}
}

func (r *region) addr(pg int) uintptr { return r.base + uintptr(pg*r.ps) }

func (r *region) wake(pg, n int) {
	if err := r.a.Uffd.Wake(r.addr(pg), n*r.ps); err != nil && !gone(err) {
		r.p.logf("pager: region %d: wake page %d: %v", r.id, pg, err)
	}
}

// gone reports an error meaning the application's mapping or process is
// gone: its faults are gone with it.
func gone(err error) bool {
	return errors.Is(err, uffd.ErrProcessGone) || errors.Is(err, uffd.ErrMappingGone)
}

// handle serves one userfaultfd event.
func (r *region) handle(w *worker, m *uffd.Msg, t0 time.Time) {
	if m.Event != uffd.EventPagefault {
		return // remove, unmap and remap events are not enabled
	}
	a := m.Address()
	if a < r.base || a >= r.base+uintptr(len(r.view)) {
		r.p.logf("pager: region %d: fault at %#x outside the region", r.id, a)
		return
	}
	pg := int((a - r.base) / uintptr(r.ps))
	if m.Flags()&uffd.FlagWP != 0 {
		if r.async != nil {
			// The kernel resolves write-protect faults under WP_ASYNC;
			// none should reach the pager. Wake the thread anyway.
			r.p.stats.spurious.Add(1)
			r.wake(pg, 1)
			return
		}
		r.writeFault(pg)
		return
	}
	r.missingFault(w, pg, m.Flags()&uffd.FlagWrite != 0, t0)
}

// missingFault installs page pg (and up to Prefetch absent pages after it)
// from the far tier. A write fault installs its page writable and dirty; the
// others are installed write-protected and clean.
func (r *region) missingFault(w *worker, pg int, write bool, t0 time.Time) {
	r.mu.Lock()
	s := r.pages[pg] & stateMask
	for s == stEvicting && !r.stopping.Load() {
		r.cond.Wait()
		s = r.pages[pg] & stateMask
	}
	if s == stStaged {
		r.hintFault(pg, write, t0)
		return
	}
	if s != stAbsent {
		r.mu.Unlock()
		// Loading: the installer's UFFDIO_COPY wakes this thread. Resident:
		// a duplicate or late event; the thread may still wait, wake it.
		if s != stLoading {
			r.p.stats.spurious.Add(1)
			r.wake(pg, 1)
		}
		return
	}
	run := 1
	for limit := 1 + r.p.cfg.Prefetch; run < limit && pg+run < r.n && r.pages[pg+run]&stateMask == stAbsent; run++ {
	}
	for i := range run {
		v := r.pages[pg+i]
		w.flags[i] = v
		r.pages[pg+i] = v&^stateMask | stLoading
	}
	r.mu.Unlock()

	if !r.p.reserve(r, run) {
		r.abandon(w, pg, run)
		return
	}
	if err := r.fetch(w, pg, run, false); err != nil {
		r.p.unreserve(run)
		if errors.Is(err, errStopping) {
			r.abandon(w, pg, run)
			return
		}
		// The far tier failed (a lost page, a memnode down): retry on a
		// goroutine of its own, with the pages still claimed, so that this
		// reader or worker goes on serving the region's other faults. The
		// faulting thread waits; it is never served zeros for a page the
		// far tier should hold.
		w2 := r.p.newWorker()
		copy(w2.flags, w.flags[:run])
		r.inflight.Add(1)
		go func() {
			defer r.inflight.Done()
			if err := r.fetch(w2, pg, run, true); err != nil {
				r.abandon(w2, pg, run)
				return
			}
			if !r.p.reserve(r, run) {
				r.abandon(w2, pg, run)
				return
			}
			r.complete(w2, pg, run, write, t0)
		}()
		return
	}
	r.complete(w, pg, run, write, t0)
}

// complete installs the fetched pages [pg, pg+run), whose budget is
// reserved, and marks them resident.
func (r *region) complete(w *worker, pg, run int, write bool, t0 time.Time) {
	if err := r.install(w, pg, run, write); err != nil {
		r.p.unreserve(run)
		r.abandon(w, pg, run)
		if !gone(err) && !r.stopping.Load() {
			r.p.logf("pager: region %d: install page %d+%d: %v", r.id, pg, run, err)
			r.wake(pg, run)
		}
		return
	}
	r.mu.Lock()
	for i := range run {
		v := w.flags[i] &^ (stateMask | fUnknown)
		if w.found[i] {
			v |= fStored
		} else {
			v &^= fStored
		}
		st := stClean
		if i == 0 && write {
			st = stDirty
		}
		r.pages[pg+i] = v | st | fRef
	}
	r.resident += run
	r.mu.Unlock()
	c := &r.p.stats
	c.faults.Add(1)
	c.installedPages.Add(uint64(run))
	r.p.recordService(t0)
}

// abandon returns pages claimed for loading to absent, with their flags.
func (r *region) abandon(w *worker, pg, run int) {
	r.mu.Lock()
	for i := range run {
		r.pages[pg+i] = w.flags[i]&^stateMask | stAbsent
	}
	r.mu.Unlock()
}

// fetch fills w.buf with pages [pg, pg+run): pages the far tier holds (or
// may hold) in one store call, the others zero. With retry it retries
// failures, with a growing pause, until they succeed or the region stops
// (errStopping): a thread waiting for a page it cannot have stays blocked
// rather than read wrong data. Without it the first failure is returned.
func (r *region) fetch(w *worker, pg, run int, retry bool) error {
	ps := r.ps
	for attempt := 0; ; attempt++ {
		w.call.Pages = w.call.Pages[:0]
		zeros := 0
		for i := range run {
			w.found[i] = false
			data := w.buf[i*ps : (i+1)*ps]
			if w.flags[i]&(fStored|fUnknown) == 0 {
				clear(data)
				zeros++
				continue
			}
			w.call.Pages = append(w.call.Pages, store.Page{ID: store.PageID(pg + i), Data: data})
		}
		if len(w.call.Pages) == 0 {
			r.p.stats.zeroFills.Add(uint64(zeros))
			return nil
		}
		w.call.Err = nil
		r.p.stats.fetchCalls.Add(1)
		err := store.Do(r.ctx, r.st, &w.call)
		if w.call.Err == nil {
			err = nil
			for j := range w.call.Pages {
				sp := &w.call.Pages[j]
				i := int(sp.ID) - pg
				switch {
				case sp.Err == nil:
					if store.Checksum(sp.Data) != sp.Sum {
						err = fmt.Errorf("%w: page %d", store.ErrCorrupt, sp.ID)
					}
					w.found[i] = true
				case errors.Is(sp.Err, store.ErrNotFound) && w.flags[i]&fUnknown != 0:
					clear(sp.Data)
				case errors.Is(sp.Err, store.ErrNotFound):
					err = fmt.Errorf("%w: page %d of region %d: %w", ErrLostPage, sp.ID, r.id, sp.Err)
					r.p.stats.lostPages.Add(1)
				default:
					err = sp.Err
				}
				if err != nil {
					break
				}
			}
		}
		if err == nil {
			r.p.stats.fetchedPages.Add(uint64(len(w.call.Pages)))
			r.p.stats.zeroFills.Add(uint64(zeros))
			return nil
		}
		if r.stopping.Load() {
			return errStopping
		}
		r.p.stats.fetchErrors.Add(1)
		if n := r.lostLogged.Add(1); n == 1 || n%100 == 0 {
			r.p.logf("pager: region %d: fetch page %d+%d (attempt %d, error %d): %v", r.id, pg, run, attempt+1, n, err)
		}
		if !retry {
			return err
		}
		select {
		case <-time.After(min(time.Millisecond<<min(attempt, 10), time.Second)):
		case <-r.ctx.Done():
			return errStopping
		}
	}
}

// install copies w.buf into the application's mapping with UFFDIO_COPY,
// which wakes the threads faulting on those pages.
func (r *region) install(w *worker, pg, run int, write bool) error {
	ps := r.ps
	dst := r.addr(pg)
	c := &r.p.stats
	if write {
		c.installs.Add(1)
		if _, err := r.a.Uffd.Copy(dst, w.buf[:ps], 0); err != nil {
			return err
		}
		if run == 1 {
			return nil
		}
		dst += uintptr(ps)
		c.installs.Add(1)
		_, err := r.a.Uffd.Copy(dst, w.buf[ps:run*ps], uffd.CopyWP)
		return err
	}
	c.installs.Add(1)
	_, err := r.a.Uffd.Copy(dst, w.buf[:run*ps], uffd.CopyWP)
	return err
}

// writeFault serves the first write to a write-protected page: the page
// becomes dirty, then its protection is cleared (which wakes the writer).
// The busy state in between keeps the reclaimer away: an eviction that
// protected the page between the two steps would otherwise copy it out
// while the application writes it.
func (r *region) writeFault(pg int) {
	r.p.stats.wpFaults.Add(1)
	r.mu.Lock()
	v := r.pages[pg]
	for v&stateMask == stEvicting && !r.stopping.Load() {
		r.cond.Wait()
		v = r.pages[pg]
	}
	switch v & stateMask {
	case stClean, stDirty:
		r.pages[pg] = v&^stateMask | stBusy | fRef
		r.mu.Unlock()
		err := r.a.Uffd.WriteProtect(r.addr(pg), r.ps, false, false)
		r.mu.Lock()
		r.pages[pg] = v&^stateMask | stDirty | fRef
		r.mu.Unlock()
		if err != nil && !gone(err) {
			r.p.logf("pager: region %d: unprotect page %d: %v", r.id, pg, err)
			r.wake(pg, 1)
		}
	case stBusy:
		// Another worker is clearing the protection; that wakes us.
		r.mu.Unlock()
	default:
		// Evicted meanwhile (or loading): wake the writer; it faults again
		// as missing.
		r.mu.Unlock()
		r.wake(pg, 1)
	}
}
