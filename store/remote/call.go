package remote

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmem/farmem/internal/wire"
	"github.com/farmem/farmem/store"
)

// callState tracks one submitted Call, split into requests (one or more per
// node). remaining counts unfinished requests plus one hold that Submit keeps
// while it dispatches; whoever drops it to zero completes the Call.
type callState struct {
	call      *store.Call
	ctx       context.Context
	deadline  time.Time // DoDeadline's deadline, enforced by the reading caller; zero: none
	remaining atomic.Int32
	finished  atomic.Bool // set just before the call is sent on Done
	stop      func() bool // stops the context watcher

	errMu sync.Mutex
	err   error

	reqs   []*req // every request, for cancellation; fixed once dispatched
	one    req    // the first request, allocated with the state
	oneArr [1]*req
}

// setErr records the first whole-call error.
func (cs *callState) setErr(err error) {
	cs.errMu.Lock()
	if cs.err == nil {
		cs.err = err
	}
	cs.errMu.Unlock()
}

// dec drops one count and completes the call at zero.
func (cs *callState) dec() {
	if cs.remaining.Add(-1) != 0 {
		return
	}
	if cs.stop != nil {
		cs.stop()
	}
	cs.errMu.Lock()
	if cs.err != nil && cs.call.Err == nil {
		cs.call.Err = cs.err
	}
	cs.errMu.Unlock()
	cs.finished.Store(true)
	cs.call.Done <- cs.call
}

// cancel runs when the call's context ends: every request still pending is
// taken off its connection (so a late answer is discarded and never touches
// the caller's buffers) and failed with the context's error. Requests whose
// reply is being decoded right now finish normally.
func (cs *callState) cancel() { cs.failPending(fmt.Errorf("remote: %w", cs.ctx.Err())) }

// expire fails the requests still pending when DoDeadline's deadline has
// passed, as a context deadline would.
func (cs *callState) expire() { cs.failPending(fmt.Errorf("remote: %w", context.DeadlineExceeded)) }

func (cs *callState) failPending(err error) {
	for _, r := range cs.reqs {
		if r.c != nil && r.c.remove(r.id) {
			r.fail(err)
		}
	}
}

// newReq returns a request for pages [lo, hi) of the call (through idx when
// not nil), counted in remaining.
func (cs *callState) newReq(n *node, idx []int32, lo, hi int) *req {
	var r *req
	if len(cs.reqs) == 0 {
		r = &cs.one
		cs.reqs = cs.oneArr[:0]
	} else {
		r = new(req)
	}
	*r = req{cs: cs, n: n, op: cs.call.Op, idx: idx, lo: lo, hi: hi}
	cs.reqs = append(cs.reqs, r)
	cs.remaining.Add(1)
	return r
}

// req is one request frame to one node: some pages of a Call, or a Stat.
type req struct {
	cs     *callState
	n      *node
	c      *conn
	id     uint64
	op     store.Op
	idx    []int32 // nil: the pages are call.Pages[lo:hi]
	lo, hi int

	// For Stat requests (cs == nil).
	stat     wire.Stat
	statDone chan error
}

func (r *req) count() int { return r.hi - r.lo }

func (r *req) page(i int) *store.Page {
	if r.idx == nil {
		return &r.cs.call.Pages[r.lo+i]
	}
	return &r.cs.call.Pages[r.idx[r.lo+i]]
}

// encode appends r's frame to dst.
func (r *req) encode(dst []byte) []byte {
	if r.cs == nil {
		return wire.StartFrame(dst, wire.TStat, r.id)
	}
	start := len(dst)
	n := r.count()
	switch r.op {
	case store.OpRead, store.OpFree:
		t := wire.TRead
		if r.op == store.OpFree {
			t = wire.TFree
		}
		dst = wire.StartFrame(dst, t, r.id)
		dst = wire.AppendCount(dst, n)
		for i := 0; i < n; i++ {
			dst = wire.AppendID(dst, uint64(r.page(i).ID))
		}
	case store.OpWrite:
		dst = wire.StartFrame(dst, wire.TWrite, r.id)
		dst = wire.AppendCount(dst, n)
		for i := 0; i < n; i++ {
			p := r.page(i)
			dst = wire.AppendWriteEntry(dst, uint64(p.ID), p.Sum, p.Data)
		}
	}
	// Batches are cut to the node's max body before they get here.
	if err := wire.EndFrame(dst, start); err != nil {
		panic("remote: invariant broken: request frame exceeds the wire limit")
	}
	return dst
}

// fail finishes r with err on every page and on the call.
func (r *req) fail(err error) {
	if r.cs == nil {
		r.statDone <- err
		return
	}
	for i := 0; i < r.count(); i++ {
		r.page(i).Err = err
	}
	r.cs.setErr(err)
	r.cs.dec()
}

// complete decodes the reply to r, fills the caller's pages and finishes r.
// A reply that does not fit the request fails r and returns the violation
// so that the connection is dropped.
func (r *req) complete(h wire.Header, body []byte) error {
	if h.Type == wire.TError {
		re, err := wire.ParseError(body)
		if err != nil {
			r.fail(fmt.Errorf("%w: %w", ErrProtocol, store.ErrUnavailable))
			return err
		}
		r.fail(remoteErr(re))
		return nil
	}
	if err := r.decode(h, body); err != nil {
		r.fail(fmt.Errorf("%w: %w: %w", ErrProtocol, store.ErrUnavailable, err))
		return err
	}
	if r.cs == nil {
		r.statDone <- nil
		return nil
	}
	r.cs.dec()
	return nil
}

func (r *req) decode(h wire.Header, body []byte) error {
	if r.cs == nil {
		if h.Type != wire.TStatReply {
			return fmt.Errorf("stat answered with %v", h.Type)
		}
		var err error
		r.stat, err = wire.ParseStatReply(body)
		return err
	}
	n := r.count()
	switch r.op {
	case store.OpRead:
		if h.Type != wire.TReadReply {
			return fmt.Errorf("read answered with %v", h.Type)
		}
		rr, err := wire.ParseReadReply(body, r.n.s.cfg.PageSize)
		if err != nil {
			return err
		}
		if rr.Len() != n {
			return fmt.Errorf("read of %d pages answered with %d", n, rr.Len())
		}
		for i := 0; i < n; i++ {
			e, _ := rr.Next()
			p := r.page(i)
			if e.ID != uint64(p.ID) {
				return fmt.Errorf("read reply entry %d is page %d, want %d", i, e.ID, p.ID)
			}
			if e.Status != wire.OK {
				p.Err = codeErr(e.Status)
				continue
			}
			copy(p.Data, e.Data)
			// Verify the bytes the caller will use (end to end).
			if store.Checksum(p.Data) != e.Sum {
				p.Err = errCorruptWire
				continue
			}
			p.Sum, p.Err = e.Sum, nil
		}
	case store.OpWrite:
		if h.Type != wire.TWriteReply {
			return fmt.Errorf("write answered with %v", h.Type)
		}
		st, err := wire.ParseWriteReply(body)
		if err != nil {
			return err
		}
		if st.Len() != n {
			return fmt.Errorf("write of %d pages answered with %d statuses", n, st.Len())
		}
		for i := 0; i < n; i++ {
			r.page(i).Err = codeErr(st.At(i))
		}
	case store.OpFree:
		if h.Type != wire.TFreeReply {
			return fmt.Errorf("free answered with %v", h.Type)
		}
		if _, err := wire.ParseFreeReply(body); err != nil {
			return err
		}
	}
	return nil
}
