package resilient

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/health"
)

// resync copies pages from the backup to node n, in the background: with
// full, every page the backup holds that the node homes (the node came back
// empty), then, or otherwise, the outage pages it homes. Batches of
// ResyncBatch pages flow through ResyncDepth workers (each reads its batch
// from the backup and writes it to the node), at most ResyncRate pages a
// second. Faults never wait for it: it holds no lock a call needs, and
// reads of pages not yet copied go to the backup.
//
// report says the health machine started it (state resyncing): progress,
// completion and failure are fed back. Otherwise it is a repair pass over
// the outage pages of a healthy node (pages whose remote write failed, or
// that were found corrupt, missing or stale on the node). A resync stops
// when a newer one starts (gen), when the store closes, or when the node
// leaves the resyncing (or healthy, for a repair) state.
func (n *node) resync(gen uint64, full, report bool) {
	s := n.s
	defer s.bg.Done()
	if report {
		n.resyncMu.Lock()
	} else if !n.resyncMu.TryLock() {
		return
	}
	defer n.resyncMu.Unlock()
	if report {
		s.ctr.resyncs.Add(1)
		if full {
			s.ctr.fullResyncs.Add(1)
		}
	}
	want := health.Healthy
	if report {
		want = health.Resyncing
	}
	live := func() bool {
		select {
		case <-s.stop:
			return false
		default:
		}
		return n.resyncGen.Load() == gen && n.routing().state == want
	}
	r := &resyncRun{n: n, report: report, live: live, lim: newLimiter(s.cfg.ResyncRate)}
	if full {
		// A full resync that failed resumes where it stopped, as long as
		// the node kept its boot epoch: what was copied is still there,
		// and pages written since went to the node or to the outage set.
		n.mu.Lock()
		e := n.m.Epoch()
		n.mu.Unlock()
		if n.fullEpoch != e {
			n.fullEpoch, n.fullCursor = e, 0
		}
		r.start = n.fullCursor
	}
	r.run(full)
	if full {
		n.fullCursor = r.cursor
	}
	if !report || !live() {
		return
	}
	if r.failed {
		n.step(health.Event{Kind: health.ResyncFailed})
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.resyncGen.Load() != gen {
		return
	}
	if e := n.m.Epoch(); e != 0 {
		if err := s.out.setEpoch(n.index, e); err != nil {
			s.ctr.logErrors.Add(1)
			n.stepLocked(health.Event{Kind: health.ResyncFailed})
			return
		}
	}
	n.forceFull = false
	n.stepLocked(health.Event{Kind: health.ResyncDone})
}

// resyncRun is one resync's pipeline.
type resyncRun struct {
	n      *node
	report bool
	live   func() bool
	lim    *limiter

	// start is the first page of a full pass; cursor, after it, the first
	// page it did not copy (s.pages when it copied everything).
	start, cursor uint64

	mu     sync.Mutex
	failed bool
	undone uint64 // lowest first page of a batch not copied (full pass)
}

func (r *resyncRun) noteUndone(p store.PageID) {
	r.mu.Lock()
	r.undone = min(r.undone, uint64(p))
	r.mu.Unlock()
}

func (r *resyncRun) fail() {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
}

func (r *resyncRun) ok() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return !r.failed && r.live()
}

func (r *resyncRun) run(full bool) {
	s, n := r.n.s, r.n
	if full {
		r.undone = s.pages
		r.pass(func(emit func(store.PageID) bool) {
			for p := r.start; p < s.pages; p++ {
				id := store.PageID(p)
				if s.nodeOf(id) == n.index && s.meta[p].Load()&metaFreed == 0 && !emit(id) {
					r.noteUndone(id)
					return
				}
			}
		})
		r.cursor = r.undone
		if r.cursor < s.pages {
			return
		}
	}
	// Outage pages, until a pass finds none left (new ones appear only
	// when a write or a read fails meanwhile) or a few passes have run.
	for range 8 {
		if !r.ok() {
			return
		}
		any := false
		r.pass(func(emit func(store.PageID) bool) {
			s.out.scan(0, func(p store.PageID) bool {
				if s.nodeOf(p) != n.index {
					return true
				}
				any = true
				return emit(p)
			})
		})
		if !any {
			return
		}
	}
	if n.outagePages() > 0 {
		r.fail() // still pages left: stay out of healthy, try again later
	}
}

// pass feeds the pages produced by gen through the workers.
func (r *resyncRun) pass(gen func(emit func(store.PageID) bool)) {
	s := r.n.s
	jobs := make(chan []store.PageID, s.cfg.ResyncDepth)
	var wg sync.WaitGroup
	for range s.cfg.ResyncDepth {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := newCopier(s, s.cfg.ResyncBatch)
			for ids := range jobs {
				if !r.ok() || !w.copy(r, ids) {
					r.fail()
					r.noteUndone(ids[0])
				}
			}
		}()
	}
	batch := make([]store.PageID, 0, s.cfg.ResyncBatch)
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		if !r.ok() || !r.lim.wait(len(batch), s.stop) {
			r.noteUndone(batch[0])
			return false
		}
		jobs <- batch
		batch = make([]store.PageID, 0, s.cfg.ResyncBatch)
		return true
	}
	gen(func(p store.PageID) bool {
		batch = append(batch, p)
		if len(batch) == cap(batch) {
			return flush()
		}
		return true
	})
	flush()
	close(jobs)
	wg.Wait()
}

// copier copies batches of pages from the backup to the primary with its
// own buffers.
type copier struct {
	s    *Store
	bufs [][]byte
}

func newCopier(s *Store, n int) *copier {
	c := &copier{s: s, bufs: make([][]byte, n)}
	for i := range c.bufs {
		c.bufs[i] = make([]byte, s.pageSize)
	}
	return c
}

// copy copies ids to the node; it returns false when the node failed.
func (c *copier) copy(r *resyncRun, ids []store.PageID) bool {
	s, n := c.s, r.n
	snap := make([]uint64, len(ids))
	bc := &store.Call{Op: store.OpRead, Pages: make([]store.Page, len(ids)), Done: make(chan *store.Call, 1)}
	for i, id := range ids {
		// The newest write's checksum before the backup is read: if it
		// changes by the end, a write raced this copy and the node's copy
		// may be older than the backup's.
		snap[i] = s.meta[id].Load()
		bc.Pages[i] = store.Page{ID: id, Data: c.bufs[i]}
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ResyncTimeout)
	defer cancel()
	store.Do(ctx, s.backup, bc)
	wc := &store.Call{Op: store.OpWrite, Done: make(chan *store.Call, 1)}
	fc := &store.Call{Op: store.OpFree, Done: make(chan *store.Call, 1)}
	var sent []int // index into ids of pages written or freed
	for i := range bc.Pages {
		pg := &bc.Pages[i]
		switch {
		case bc.Err == nil && errors.Is(pg.Err, store.ErrNotFound):
			if !s.out.has(pg.ID) {
				continue // never written: nothing to copy (full resync)
			}
			// Freed while the node was away: free it there too.
			fc.Pages = append(fc.Pages, store.Page{ID: pg.ID})
		case bc.Err != nil || pg.Err != nil:
			continue // stays in the set; a later pass tries again
		case snap[i]&metaKnown != 0 && uint32(snap[i]) != pg.Sum:
			continue // a write is in flight: its own outcome decides
		default:
			wc.Pages = append(wc.Pages, *pg)
		}
		sent = append(sent, i)
	}
	t0 := time.Now()
	var werr error
	if len(wc.Pages) > 0 {
		werr = store.Do(ctx, s.primary, wc)
	}
	lat := time.Since(t0)
	if werr == nil && len(fc.Pages) > 0 {
		werr = store.Do(ctx, s.primary, fc)
		if errors.Is(werr, store.ErrNotFound) {
			werr = nil
		}
	}
	o := classify(werr)
	if werr != nil && o == outOK {
		o = outConn // a page refused (full, ...): the copy did not happen
	}
	if o != outOK && o != outOther {
		n.observe(lat, o) // as for writes: failures only, not the deadline
	}
	if werr != nil {
		return false
	}
	done := make([]store.PageID, len(sent))
	for k, i := range sent {
		done[k] = ids[i]
	}
	var raced []store.PageID
	removed, err := s.out.remove(done, func(k int) bool {
		if s.meta[done[k]].Load() != snap[sent[k]] {
			raced = append(raced, done[k])
			return true
		}
		return false
	})
	if err != nil {
		s.ctr.logErrors.Add(1)
	}
	for k, i := range sent {
		if !s.out.has(ids[i]) && s.meta[done[k]].Load() != snap[i] {
			raced = append(raced, done[k])
		}
	}
	if len(raced) > 0 {
		s.out.add(raced, false)
	}
	s.ctr.resyncedPages.Add(uint64(len(sent)))
	if r.report && removed >= 0 {
		n.step(health.Event{Kind: health.ResyncProgress, Pages: uint64(len(sent))})
	}
	return true
}

// limiter spaces batches so that at most rate pages a second go out.
type limiter struct {
	mu   sync.Mutex
	per  time.Duration
	next time.Time
}

func newLimiter(rate int) *limiter {
	return &limiter{per: time.Second / time.Duration(rate)}
}

// wait blocks until n more pages may go, or stop closes (false).
func (l *limiter) wait(n int, stop <-chan struct{}) bool {
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(time.Duration(n) * l.per)
	l.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}
