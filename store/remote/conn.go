package remote

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmem/farmem/internal/wire"
	"github.com/farmem/farmem/store"
)

// conn is one TCP connection to a memnode. Any number of goroutines send
// requests on it (each frame written whole, concurrent writes combined);
// one reader at a time (a synchronous caller or a background goroutine, see
// read.go) matches replies to pending requests by id, so many requests are
// in flight at once and replies may come in any order.
type conn struct {
	n       *node
	nc      net.Conn
	welcome wire.Welcome

	// Writes are combined: a sender that finds another sender writing
	// appends its frame to queue and leaves; the writer writes the queue
	// too before it stops. An uncontended send is one write system call
	// on the caller's goroutine; contended sends share write calls.
	wmu     sync.Mutex
	queue   []byte
	spare   []byte
	writing bool
	armed   time.Time // when the write deadline was last pushed forward

	mu      sync.Mutex
	pending map[uint64]*req
	nextID  uint64
	err     error // set once the connection failed; no request is accepted after

	lastUse  atomic.Int64 // unix nanoseconds of the latest send
	resident bool         // a reader goroutine always runs (the asynchronous pool)
	rd       readSide     // see read.go
}

// dial connects to the node and performs the handshake.
func (n *node) dial(ctx context.Context, resident bool) (*conn, error) {
	cfg := &n.s.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", n.addr)
	if err != nil {
		return nil, fmt.Errorf("remote: dialing memnode %s: %w: %w", n.addr, store.ErrUnavailable, err)
	}
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	hello, err := wire.AppendHello(nil, wire.Hello{PageSize: uint32(cfg.PageSize), Namespace: []byte(cfg.Namespace), Token: cfg.Token})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	if _, err := nc.Write(hello); err != nil {
		nc.Close()
		return nil, fmt.Errorf("remote: handshake with memnode %s: %w: %w", n.addr, store.ErrUnavailable, err)
	}
	var hdr [wire.HeaderSize]byte
	h, body, err := wire.ReadFrame(nc, &hdr, make([]byte, 0, 64), 4+wire.MaxErrorMsg)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("remote: handshake with memnode %s: %w: %w", n.addr, store.ErrUnavailable, err)
	}
	c := &conn{n: n, nc: nc, pending: make(map[uint64]*req), resident: resident}
	switch h.Type {
	case wire.TError:
		nc.Close()
		re, err := wire.ParseError(body)
		if err != nil {
			return nil, fmt.Errorf("%w: memnode %s: %w", ErrProtocol, n.addr, err)
		}
		return nil, fmt.Errorf("%w: memnode %s: %w", ErrHandshake, n.addr, re)
	case wire.TWelcome:
		if c.welcome, err = wire.ParseWelcome(body); err != nil {
			nc.Close()
			return nil, fmt.Errorf("%w: memnode %s: %w", ErrProtocol, n.addr, err)
		}
	default:
		nc.Close()
		return nil, fmt.Errorf("%w: memnode %s answered hello with %v", ErrProtocol, n.addr, h.Type)
	}
	if int(c.welcome.PageSize) != cfg.PageSize || int(c.welcome.MaxBody) < 4+wire.EntryHeaderSize+cfg.PageSize {
		nc.Close()
		return nil, fmt.Errorf("%w: memnode %s welcome has page size %d, max body %d", ErrProtocol, n.addr, c.welcome.PageSize, c.welcome.MaxBody)
	}
	nc.SetDeadline(time.Time{})
	c.initRead()
	return c, nil
}

func (c *conn) healthy() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err == nil
}

// send registers r as pending and writes its frame. If the connection has
// already failed it returns the failure and r stays the caller's; otherwise
// r is the connection's, which completes it even when the write fails.
func (c *conn) send(r *req) error {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return c.err
	}
	c.nextID++
	r.id, r.c = c.nextID, c
	c.pending[r.id] = r
	c.mu.Unlock()
	c.lastUse.Store(time.Now().UnixNano())

	c.wmu.Lock()
	c.queue = r.encode(c.queue)
	if c.writing {
		c.wmu.Unlock()
		return nil
	}
	c.writing = true
	for len(c.queue) > 0 {
		buf := c.queue
		c.queue = c.spare[:0]
		c.wmu.Unlock()
		c.armWriteDeadline()
		_, err := c.nc.Write(buf)
		c.wmu.Lock()
		if cap(buf) <= 1<<20 {
			c.spare = buf[:0]
		}
		if err != nil {
			// A partial write breaks framing: the whole connection goes,
			// failing every pending request, queued ones included.
			c.queue = c.queue[:0]
			c.writing = false
			c.wmu.Unlock()
			c.fail(fmt.Errorf("remote: writing to memnode %s: %w: %w", c.n.addr, store.ErrUnavailable, err))
			return nil
		}
	}
	c.writing = false
	c.wmu.Unlock()
	return nil
}

// armWriteDeadline keeps a write deadline of about IOTimeout ahead; the
// writing role (c.writing) must be held. Setting a deadline on every write
// would add a runtime timer update per request, which can wake an idle
// thread's network poller (a cross-CPU wake-up per request), so the
// deadline is pushed forward only when a quarter of the timeout has passed:
// a stuck write then fails after between 3/4 of IOTimeout and all of it.
func (c *conn) armWriteDeadline() {
	t := c.n.s.cfg.IOTimeout
	if t <= 0 {
		return
	}
	if now := time.Now(); now.Sub(c.armed) >= t/4 {
		c.armed = now
		c.nc.SetWriteDeadline(now.Add(t))
	}
}

// remove takes request id off the pending list; it reports whether it was
// there, in which case the caller now owns the request.
func (c *conn) remove(id uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.pending[id]; !ok {
		return false
	}
	delete(c.pending, id)
	return true
}

// fail marks the connection failed, closes it and fails every pending
// request with err. Later sends see err and redial elsewhere.
func (c *conn) fail(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	c.nc.Close()
	for _, r := range pending {
		r.fail(err)
	}
}
