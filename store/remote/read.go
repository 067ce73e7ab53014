package remote

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"time"

	"github.com/farmem/farmem/internal/spin"
	"github.com/farmem/farmem/internal/wire"
	"github.com/farmem/farmem/store"
)

// The read side of a connection is a role held by at most one goroutine. On
// the connections of the asynchronous half of a node's pool (Submit) a
// resident background goroutine holds it for the connection's life. On the
// synchronous half (Store.Do) it is held only while requests are pending (a
// leader/followers arrangement): a synchronous caller (Store.Do) that finds nobody reading takes the role
// and reads its own reply, woken straight by the network poller as a bare
// blocking client is; replies to other requests that arrive meanwhile are
// dispatched by it too. When its own call is done it hands the role to a
// background goroutine if requests are still pending, or drops it; that
// goroutine reads until nothing is pending. Without the caller
// reading, every reply would cost a hand-off from a reader goroutine to the
// caller: on a small VM a cross-CPU wake-up that adds a third to a loopback
// round trip.
//
// A reading caller whose context ends is interrupted between frames only:
// it waits for the next frame with Peek, which consumes nothing, and the
// interrupt sets a past read deadline only during that wait.

var errKicked = errors.New("remote: reader interrupted at a frame boundary")

// readSide is the read half of a conn. Its flags are guarded by conn.mu; br,
// hdr and buf belong to the goroutine holding the role.
type readSide struct {
	active  bool       // someone holds the role
	owner   *callState // the call of the caller holding it, if any
	waiting bool       // the holder is blocked in Peek
	dl      bool       // the holder set its call's deadline as the read deadline
	kick    bool       // the holder should return to its loop

	br      *bufio.Reader
	spin    *spin.Poller // for a synchronous caller's wait (Config.SpinRead); nil: never spins
	hdr     [wire.HeaderSize]byte
	buf     []byte
	maxBody uint32
}

func (c *conn) initRead() {
	c.rd = readSide{
		br:      bufio.NewReaderSize(c.nc, 64<<10),
		buf:     make([]byte, 0, 64<<10),
		maxBody: c.welcome.MaxBody + 4 + wire.MaxErrorMsg,
	}
	if !c.resident {
		// Also without SpinRead: DoDeadline's reader checks once whether
		// its reply is already readable before it arms a deadline.
		c.rd.spin = spin.New(c.nc)
	}
	if c.resident {
		c.mu.Lock()
		c.startBackgroundLocked()
		c.mu.Unlock()
	}
}

// idle reports whether nobody reads c (a synchronous caller could).
func (c *conn) idle() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.rd.active && c.err == nil
}

// ensureReader starts a background reader if requests are pending and
// nobody reads. Senders call it after registering their request.
func (c *conn) ensureReader() {
	c.mu.Lock()
	if !c.rd.active && c.err == nil && len(c.pending) > 0 {
		c.startBackgroundLocked()
	}
	c.mu.Unlock()
}

func (c *conn) startBackgroundLocked() {
	c.rd.active = true
	c.n.s.wg.Add(1)
	go c.background()
}

// background reads until the connection fails or, unless the connection is
// resident, no request is pending.
func (c *conn) background() {
	defer c.n.s.wg.Done()
	for {
		c.mu.Lock()
		if (len(c.pending) == 0 && !c.resident) || c.err != nil {
			c.rd.active = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		yield, err := c.readOne()
		if err != nil && err != errKicked {
			c.readFailed(err)
			return
		}
		if yield {
			// Completing a request made its caller runnable on this
			// thread's P: let it run here at once instead of an idle
			// thread being woken to steal it.
			runtime.Gosched()
		}
	}
}

// takeRead gives the read role to the synchronous caller of cs if nobody
// holds it.
func (c *conn) takeRead(cs *callState) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rd.active || c.err != nil {
		return false
	}
	c.rd.active, c.rd.owner, c.rd.kick = true, cs, false
	return true
}

// readUntilDone reads as the caller of cs until cs is finished, then hands
// the role on.
func (c *conn) readUntilDone(cs *callState) {
	for !cs.finished.Load() {
		if _, err := c.readOne(); err != nil && err != errKicked {
			c.readFailed(err)
			break
		}
	}
	c.mu.Lock()
	if c.rd.owner == cs {
		c.rd.owner, c.rd.kick = nil, false
		c.rd.active = false
		if c.err == nil && len(c.pending) > 0 {
			c.startBackgroundLocked()
		}
	}
	c.mu.Unlock()
}

// interruptOwner makes the caller of cs, if it holds the role, return to
// its loop at the next frame boundary.
func (c *conn) interruptOwner(cs *callState) {
	c.mu.Lock()
	if c.rd.owner == cs {
		c.rd.kick = true
		if c.rd.waiting {
			c.nc.SetReadDeadline(time.Unix(1, 0))
		}
	}
	c.mu.Unlock()
}

// readFailed fails the connection after a read error.
func (c *conn) readFailed(err error) {
	switch {
	case c.n.s.closed.Load():
		err = errClosed
	case errors.Is(err, wire.ErrBadFrame) || errors.Is(err, wire.ErrBadVersion) || errors.Is(err, wire.ErrTooLarge) || errors.Is(err, ErrProtocol):
		err = fmt.Errorf("%w: memnode %s: %w: %w", ErrProtocol, c.n.addr, store.ErrUnavailable, err)
	default:
		err = fmt.Errorf("remote: connection to memnode %s: %w: %w", c.n.addr, store.ErrUnavailable, err)
	}
	c.fail(err)
	c.mu.Lock()
	c.rd.active, c.rd.owner = false, nil
	c.mu.Unlock()
}

// readOne waits for a frame, reads it and completes its request. It returns
// errKicked, having consumed nothing, when interrupted; yield reports that
// a request completed and no further reply is already buffered.
func (c *conn) readOne() (yield bool, err error) {
	c.mu.Lock()
	if c.rd.kick {
		c.rd.kick = false
		c.mu.Unlock()
		return false, errKicked
	}
	owner := c.rd.owner
	waitFor := owner != nil && c.rd.br.Buffered() == 0
	c.rd.waiting = true
	c.mu.Unlock()
	// The owner's DoDeadline deadline is watched here: data already
	// readable needs no deadline; otherwise the wait gets a read deadline
	// (a timer, armed only now that the caller really waits).
	var dl time.Time
	if waitFor {
		dl = owner.deadline
		ready := false
		if d := c.n.s.cfg.SpinRead; d > 0 && c.rd.spin != nil {
			if !dl.IsZero() {
				d = min(d, time.Until(dl))
			}
			ready = c.rd.spin.Readable(d)
		} else if !dl.IsZero() {
			ready = c.rd.spin.Ready()
		}
		if !ready && !dl.IsZero() {
			c.mu.Lock()
			if !c.rd.kick {
				c.nc.SetReadDeadline(dl)
				c.rd.dl = true
			}
			c.mu.Unlock()
		} else {
			dl = time.Time{}
		}
	}
	_, perr := c.rd.br.Peek(1)
	c.mu.Lock()
	c.rd.waiting = false
	kicked := c.rd.kick
	if kicked || c.rd.dl {
		c.rd.kick, c.rd.dl = false, false
		// Lift the interrupt's or the call's deadline so that the frame,
		// or the next reader, can be read.
		c.nc.SetReadDeadline(time.Time{})
	}
	c.mu.Unlock()
	if perr != nil {
		if errors.Is(perr, os.ErrDeadlineExceeded) {
			if !kicked && !dl.IsZero() {
				// The owner's deadline passed: fail its call, as its
				// context's deadline would have.
				owner.expire()
			}
			if kicked || !dl.IsZero() {
				return false, errKicked
			}
		}
		return false, perr
	}
	h, body, err := wire.ReadFrame(c.rd.br, &c.rd.hdr, c.rd.buf, c.rd.maxBody)
	if cap(body) > cap(c.rd.buf) {
		c.rd.buf = body[:0]
	}
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	r := c.pending[h.ID]
	delete(c.pending, h.ID)
	c.mu.Unlock()
	if r == nil {
		// The request was canceled: the late answer is discarded.
		return false, nil
	}
	if err := r.complete(h, body); err != nil {
		return false, fmt.Errorf("%w: %w", ErrProtocol, err)
	}
	return c.rd.br.Buffered() == 0, nil
}

// idleCheck is how long a connection may go unused before get checks that
// the memnode has not closed it (for example after its idle timeout): with
// nobody reading an idle connection, its close is noticed only this way.
// A variable for tests.
var idleCheck = time.Second

// stale reports whether c has been idle for a while and its peer has since
// closed it.
func (c *conn) stale() bool {
	if c.resident || time.Now().UnixNano()-c.lastUse.Load() < int64(idleCheck) {
		return false
	}
	c.mu.Lock()
	reading := c.rd.active
	c.mu.Unlock()
	if reading {
		return false
	}
	return peerClosed(c.nc)
}
