package resilient

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/health"
)

// deadlineDoer is a primary that bounds a synchronous call by a deadline
// without a context timer (remote.Store).
type deadlineDoer interface {
	DoDeadline(ctx context.Context, c *store.Call, deadline time.Time) error
}

// read serves a read call. Pages whose node is healthy (and that are not in
// the outage set) are read from the primary with the node's deadline; the
// rest, and every page the primary does not answer well (deadline, broken
// connection, checksum, missing, or a checksum that differs from the newest
// write's), are read from the backup. A late remote answer is discarded by
// the primary (store contract: it never writes a buffer after completion).
func (s *Store) read(ctx context.Context, c *store.Call) {
	sc := s.getScratch()
	defer s.putScratch(sc)
	remoteIdx, backupIdx := sc.remoteIdx[:0], sc.backupIdx[:0]
	var deadline time.Duration
	for i := range c.Pages {
		pg := &c.Pages[i]
		if !s.valid(store.OpRead, pg) {
			continue
		}
		n := s.node(pg.ID)
		r := n.routing()
		// While a node resyncs, all its reads go to the backup, not only
		// those of the outage set: the resync has the link, and a read
		// that missed its deadline behind it would throw the node back
		// to down.
		if !r.readRemote || !r.wait || r.state == health.Resyncing || s.out.has(pg.ID) || s.meta[pg.ID].Load()&metaFreed != 0 {
			backupIdx = append(backupIdx, i)
			continue
		}
		remoteIdx = append(remoteIdx, i)
		deadline = max(deadline, r.deadline)
	}
	if len(remoteIdx) > 0 {
		rc := sc.call(&sc.rc, store.OpRead, len(remoteIdx))
		for j, i := range remoteIdx {
			rc.Pages[j] = store.Page{ID: c.Pages[i].ID, Data: c.Pages[i].Data}
		}
		t0 := time.Now()
		if dd, ok := s.primary.(deadlineDoer); ok {
			// No timer per read (see remote.Store.DoDeadline).
			dd.DoDeadline(ctx, rc, t0.Add(deadline))
		} else {
			dctx, cancel := context.WithTimeout(ctx, deadline)
			store.Do(dctx, s.primary, rc)
			cancel()
		}
		lat := time.Since(t0)
		worst := sc.outcomes(len(s.nodes))
		repair := sc.repair[:0]
		for j, i := range remoteIdx {
			rp := &rc.Pages[j]
			err := rp.Err
			if err == nil && rc.Err != nil && store.Checksum(rp.Data) != rp.Sum {
				err = rc.Err
			}
			ni := s.nodeOf(rp.ID)
			o := classify(err)
			if o == outOther && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				o = outTimeout
			}
			worst[ni] = worse(worst[ni], o)
			m := s.meta[rp.ID].Load()
			switch {
			case err == nil && (m&metaKnown == 0 || uint32(m) == rp.Sum):
				c.Pages[i].Sum = rp.Sum
				continue
			case err == nil:
				s.ctr.remoteStale.Add(1)
				repair = append(repair, rp.ID)
			case errors.Is(err, store.ErrCorrupt):
				s.ctr.remoteCorrupt.Add(1)
				repair = append(repair, rp.ID)
			case errors.Is(err, store.ErrNotFound) && m&metaKnown != 0:
				s.ctr.remoteLost.Add(1)
				repair = append(repair, rp.ID)
			}
			s.ctr.failovers.Add(1)
			backupIdx = append(backupIdx, i)
		}
		for ni, o := range worst {
			if o == outNone || ctx.Err() != nil {
				continue // not asked, or the caller gave up: that says nothing about the node
			}
			s.nodes[ni].observe(lat, o)
		}
		sc.repair = repair
		if len(repair) > 0 {
			// The remote copy is bad: the page joins the outage set, so
			// reads use the backup until resync has rewritten it.
			if err := s.out.add(repair, false); err != nil {
				s.ctr.logErrors.Add(1)
			}
		}
	}
	if len(backupIdx) > 0 {
		s.readBackup(ctx, c, backupIdx, sc)
	}
	sc.remoteIdx, sc.backupIdx = remoteIdx, backupIdx
}

// readBackup reads pages idx of c from the backup.
func (s *Store) readBackup(ctx context.Context, c *store.Call, idx []int, sc *scratch) {
	bc := sc.call(&sc.bc, store.OpRead, len(idx))
	for j, i := range idx {
		bc.Pages[j] = store.Page{ID: c.Pages[i].ID, Data: c.Pages[i].Data}
	}
	t0 := time.Now()
	store.Do(ctx, s.backup, bc)
	if s.cfg.OnBackupRead != nil {
		s.cfg.OnBackupRead(len(idx), time.Since(t0))
	}
	s.ctr.backupReads.Add(uint64(len(idx)))
	for j, i := range idx {
		pg := &c.Pages[i]
		pg.Sum, pg.Err = bc.Pages[j].Sum, bc.Pages[j].Err
		if pg.Err == nil && bc.Err != nil {
			pg.Err = bc.Err
		}
		if pg.Err != nil {
			pg.Err = fmt.Errorf("resilient: backup: %w", pg.Err)
		}
	}
}

// write serves a write call: every page goes to the backup, and the pages
// of nodes that take writes also to the primary, in parallel. A page
// succeeds when the backup has it and either the primary has it too or the
// page is durably in the outage set.
func (s *Store) write(ctx context.Context, c *store.Call) {
	var valid, remoteIdx []int
	var deadline time.Duration
	for i := range c.Pages {
		pg := &c.Pages[i]
		if !s.valid(store.OpWrite, pg) {
			continue
		}
		if store.Checksum(pg.Data) != pg.Sum {
			pg.Err = fmt.Errorf("%w: page %d handed over with a wrong checksum", store.ErrCorrupt, pg.ID)
			continue
		}
		s.meta[pg.ID].Store(metaKnown | uint64(pg.Sum))
		valid = append(valid, i)
		r := s.node(pg.ID).routing()
		if r.write {
			remoteIdx = append(remoteIdx, i)
			dl := r.deadline
			if r.state == health.Resyncing {
				dl *= 2
			}
			deadline = max(deadline, dl)
		}
	}
	if len(valid) == 0 {
		return
	}
	sc := s.getScratch()
	defer s.putScratch(sc)
	bc := sc.call(&sc.bc, store.OpWrite, len(valid))
	for j, i := range valid {
		bc.Pages[j] = c.Pages[i]
	}
	s.backup.Submit(ctx, bc)
	remoteOK := sc.flags(len(c.Pages))
	if len(remoteIdx) > 0 {
		wd := s.cfg.WriteDeadline
		if wd == 0 {
			wd = 4*deadline + time.Duration(len(remoteIdx))*50*time.Microsecond
		}
		rc := sc.call(&sc.rc, store.OpWrite, len(remoteIdx))
		for j, i := range remoteIdx {
			rc.Pages[j] = c.Pages[i]
			rc.Pages[j].Err = nil
		}
		dctx, cancel := context.WithTimeout(ctx, wd)
		t0 := time.Now()
		store.Do(dctx, s.primary, rc)
		lat := time.Since(t0)
		cancel()
		worst := sc.outcomes(len(s.nodes))
		for j, i := range remoteIdx {
			err := rc.Pages[j].Err
			if err == nil && rc.Err != nil && len(s.nodes) == 1 {
				err = rc.Err
			}
			ni := s.nodeOf(rc.Pages[j].ID)
			o := classify(err)
			if o == outOther && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				o = outTimeout
			}
			worst[ni] = worse(worst[ni], o)
			if err == nil {
				remoteOK[i] = true
			} else {
				s.ctr.remoteWriteFailures.Add(1)
			}
		}
		for ni, o := range worst {
			// A write's latency says little about a read's (a batch of
			// evicted pages is many times larger), so writes feed the
			// machine their failures only, never the deadline.
			if ctx.Err() != nil || o == outOK || o == outNone {
				continue
			}
			s.nodes[ni].observe(lat, o)
		}
	}
	<-bc.Done
	var outage []store.PageID
	var outIdx []int
	var cleared []store.PageID
	var sums []uint64 // of cleared: the meta this write left
	for j, i := range valid {
		pg := &c.Pages[i]
		berr := bc.Pages[j].Err
		if berr == nil && bc.Err != nil {
			berr = bc.Err
		}
		switch {
		case berr != nil && errors.Is(berr, store.ErrFull):
			pg.Err = fmt.Errorf("%w: page %d: %w", ErrBackupFull, pg.ID, berr)
		case berr != nil:
			pg.Err = fmt.Errorf("resilient: backup: %w", berr)
		case !remoteOK[i]:
			outage = append(outage, pg.ID)
			outIdx = append(outIdx, i)
		case s.out.has(pg.ID):
			cleared = append(cleared, pg.ID)
			sums = append(sums, metaKnown|uint64(pg.Sum))
		}
	}
	if len(outage) > 0 {
		if added, err := s.out.addCount(outage, true); err != nil {
			for _, i := range outIdx {
				c.Pages[i].Err = err
			}
		} else {
			s.ctr.outageAdded.Add(uint64(added))
		}
	}
	if len(cleared) > 0 {
		// Both copies are current now: the page needs no resync, unless a
		// newer write has begun since.
		s.out.remove(cleared, func(k int) bool { return s.meta[cleared[k]].Load() != sums[k] })
	}
}

// free drops pages from the backup and, best effort, from the primary. A
// page whose remote free fails joins the outage set (without a sync: a
// freed page is never read, and the read path knows it is freed).
func (s *Store) free(ctx context.Context, c *store.Call) {
	var valid []int
	for i := range c.Pages {
		if s.valid(store.OpFree, &c.Pages[i]) {
			s.meta[c.Pages[i].ID].Store(metaFreed)
			valid = append(valid, i)
		}
	}
	if len(valid) == 0 {
		return
	}
	bc := &store.Call{Op: store.OpFree, Pages: make([]store.Page, len(valid)), Done: make(chan *store.Call, 1)}
	rc := &store.Call{Op: store.OpFree, Pages: make([]store.Page, 0, len(valid)), Done: make(chan *store.Call, 1)}
	for j, i := range valid {
		bc.Pages[j] = store.Page{ID: c.Pages[i].ID}
		if s.node(c.Pages[i].ID).routing().write {
			rc.Pages = append(rc.Pages, store.Page{ID: c.Pages[i].ID})
		}
	}
	s.backup.Submit(ctx, bc)
	var left []store.PageID
	if len(rc.Pages) > 0 {
		dctx, cancel := context.WithTimeout(ctx, s.cfg.ResyncTimeout)
		store.Do(dctx, s.primary, rc)
		cancel()
		for _, p := range rc.Pages {
			if p.Err != nil || rc.Err != nil {
				left = append(left, p.ID)
			}
		}
	}
	if len(rc.Pages) < len(valid) {
		for _, i := range valid {
			if !s.node(c.Pages[i].ID).routing().write {
				left = append(left, c.Pages[i].ID)
			}
		}
	}
	<-bc.Done
	for j, i := range valid {
		if err := bc.Pages[j].Err; err != nil {
			c.Pages[i].Err = fmt.Errorf("resilient: backup: %w", err)
		} else if bc.Err != nil {
			c.Pages[i].Err = fmt.Errorf("resilient: backup: %w", bc.Err)
		}
	}
	if len(left) > 0 {
		if err := s.out.add(left, false); err != nil {
			s.ctr.logErrors.Add(1)
		}
	}
}

// worse returns the outcome that says more about a node's trouble:
// a broken connection over a timeout over an answer.
func worse(a, b outcome) outcome {
	if b == outOther {
		if a == outNone {
			return outOther
		}
		return a
	}
	if a == outNone || a == outOther || b > a {
		return b
	}
	return a
}

// scratch is the per-call bookkeeping of read and write, pooled so that a
// fault does not allocate it each time.
type scratch struct {
	remoteIdx, backupIdx []int
	rc, bc               store.Call
	repair               []store.PageID
	worst                []outcome
	ok                   []bool
}

func (s *Store) getScratch() *scratch {
	if sc, ok := s.scratch.Get().(*scratch); ok {
		return sc
	}
	return &scratch{rc: store.Call{Done: make(chan *store.Call, 1)}, bc: store.Call{Done: make(chan *store.Call, 1)}}
}

func (s *Store) putScratch(sc *scratch) {
	// Drop the references to the caller's buffers.
	clear(sc.rc.Pages[:cap(sc.rc.Pages)])
	clear(sc.bc.Pages[:cap(sc.bc.Pages)])
	s.scratch.Put(sc)
}

// call readies c for an op on n pages.
func (sc *scratch) call(c *store.Call, op store.Op, n int) *store.Call {
	c.Op, c.Err = op, nil
	if cap(c.Pages) < n {
		c.Pages = make([]store.Page, n)
	}
	c.Pages = c.Pages[:n]
	return c
}

// outcomes returns n outcomes, all outNone.
func (sc *scratch) outcomes(n int) []outcome {
	if cap(sc.worst) < n {
		sc.worst = make([]outcome, n)
	}
	sc.worst = sc.worst[:n]
	for i := range sc.worst {
		sc.worst[i] = outNone
	}
	return sc.worst
}

// flags returns n false flags.
func (sc *scratch) flags(n int) []bool {
	if cap(sc.ok) < n {
		sc.ok = make([]bool, n)
	}
	sc.ok = sc.ok[:n]
	clear(sc.ok)
	return sc.ok
}
