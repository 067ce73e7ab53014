package memnode

import (
	"bufio"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/farmem/farmem/internal/spin"
	"github.com/farmem/farmem/internal/wire"
)

// flushAt is the size of queued replies at which the connection writes them
// even though more requests are waiting.
const flushAt = 256 << 10

// conn is one client connection, served by one goroutine in the style of
// pipelining servers such as Redis: it reads a request, handles it inline
// (the slab is fast enough that handing work to other goroutines would cost
// more than it saves) and appends the reply to an output buffer, which it
// writes only when no further complete request is already buffered. A burst
// of pipelined requests is thus answered with one write system call, and a
// lone request is answered at once.
type conn struct {
	s    *Server
	nc   net.Conn
	ns   *namespace
	stop chan struct{} // closed by stopReading
	once sync.Once
	// armed is when the read deadline was last pushed forward.
	armed time.Time
}

func (s *Server) newConn(nc net.Conn) *conn {
	return &conn{s: s, nc: nc, stop: make(chan struct{})}
}

// stopReading makes the connection stop reading at the next frame boundary
// (graceful shutdown); replies to requests already read are still written.
func (c *conn) stopReading() {
	c.once.Do(func() {
		close(c.stop)
		c.nc.SetReadDeadline(time.Unix(1, 0))
	})
}

func (c *conn) stopping() bool {
	select {
	case <-c.stop:
		return true
	default:
		return false
	}
}

func (c *conn) serve() {
	defer c.s.removeConn(c)
	defer c.nc.Close()
	br := bufio.NewReaderSize(c.nc, 64<<10)
	if err := c.handshake(br); err != nil {
		c.logEnd(err)
		return
	}
	// Lift the handshake's deadline (loop arms the idle timeout, if any,
	// and checks for a shutdown that raced this before it reads).
	c.nc.SetReadDeadline(time.Time{})
	c.logEnd(c.loop(br))
}

func (c *conn) logEnd(err error) {
	switch {
	case err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || c.stopping():
	case errors.Is(err, ErrIdle):
		c.s.log.Debug("memnode: connection closed", "remote", c.nc.RemoteAddr(), "err", err)
	default:
		c.s.log.Warn("memnode: connection closed", "remote", c.nc.RemoteAddr(), "err", err)
	}
}

// setReadDeadline arms the idle timeout for the next frame. Pushing the
// deadline forward costs a timer update, so a busy connection does it only
// when an eighth of the timeout has passed: a connection is then closed
// after between 7/8 and all of the timeout without a frame.
func (c *conn) setReadDeadline() {
	if t := c.s.cfg.IdleTimeout; t > 0 {
		now := time.Now()
		if now.Sub(c.armed) >= t/8 {
			c.armed = now
			c.nc.SetReadDeadline(now.Add(t))
		}
	}
}

// readErr turns a read error into the reason the connection ends.
func (c *conn) readErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) && !c.stopping() {
		return fmt.Errorf("%w after %v", ErrIdle, c.s.cfg.IdleTimeout)
	}
	return err
}

// refuse answers a handshake with an Error frame, counts it, and returns err
// for the caller to end the connection.
func (c *conn) refuse(id uint64, err error, msg string) error {
	code := wire.CodeOf(err)
	c.s.m.err(code)
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	c.nc.Write(wire.AppendError(nil, id, code, msg))
	return err
}

func (c *conn) handshake(br *bufio.Reader) error {
	var hdr [wire.HeaderSize]byte
	c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.HandshakeTimeout))
	if c.stopping() {
		return nil
	}
	h, body, err := wire.ReadFrame(br, &hdr, make([]byte, 0, 512), 8+wire.MaxNamespace+wire.MaxToken)
	if err != nil {
		if errors.Is(err, wire.ErrBadVersion) || errors.Is(err, wire.ErrBadFrame) || errors.Is(err, wire.ErrTooLarge) {
			return c.refuse(h.ID, err, "handshake")
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && !c.stopping() {
			return fmt.Errorf("%w: no hello within %v", ErrIdle, c.s.cfg.HandshakeTimeout)
		}
		return err
	}
	if h.Type != wire.THello {
		return c.refuse(h.ID, wire.ErrNotAttached, "first frame must be hello, got "+h.Type.String())
	}
	hello, err := wire.ParseHello(body)
	if err != nil {
		return c.refuse(h.ID, err, "hello")
	}
	if int(hello.PageSize) != c.s.cfg.PageSize {
		return c.refuse(h.ID, wire.ErrBadPageSize, fmt.Sprintf("memnode page size is %d, client asked %d", c.s.cfg.PageSize, hello.PageSize))
	}
	if len(c.s.cfg.Token) > 0 && subtle.ConstantTimeCompare(hello.Token, c.s.cfg.Token) != 1 {
		return c.refuse(h.ID, wire.ErrBadToken, "")
	}
	if c.s.closing.Load() {
		return c.refuse(h.ID, wire.ErrShuttingDown, "")
	}
	c.ns = c.s.attach(hello.Namespace)
	w := wire.AppendWelcome(nil, wire.Welcome{
		Epoch: c.s.epoch, Capacity: uint64(c.s.slab.capacity), Used: uint64(c.s.slab.used.Load()),
		MaxBody: c.s.cfg.MaxBody, PageSize: uint32(c.s.cfg.PageSize),
	})
	if _, err := c.nc.Write(w); err != nil {
		return err
	}
	c.s.m.bytesIn.Add(float64(wire.HeaderSize + len(body)))
	c.s.m.bytesOut.Add(float64(len(w)))
	return nil
}

// frameBuffered reports whether br already holds a whole frame, so that
// reading it will not block.
func frameBuffered(br *bufio.Reader) bool {
	if br.Buffered() < wire.HeaderSize {
		return false
	}
	h, err := br.Peek(wire.HeaderSize)
	if err != nil {
		return false
	}
	return br.Buffered()-wire.HeaderSize >= int(binary.LittleEndian.Uint32(h[4:8]))
}

func (c *conn) loop(br *bufio.Reader) error {
	var hdr [wire.HeaderSize]byte
	buf := make([]byte, 0, 64<<10)
	out := make([]byte, 0, 64<<10)
	var poller *spin.Poller
	if c.s.cfg.SpinRead > 0 {
		poller = spin.New(c.nc)
	}
	var err error
	for err == nil {
		if len(out) > 0 && (len(out) >= flushAt || !frameBuffered(br)) {
			if out, err = c.flush(out); err != nil {
				return err
			}
		}
		c.setReadDeadline()
		if c.stopping() {
			break
		}
		if poller != nil && br.Buffered() == 0 {
			poller.Readable(c.s.cfg.SpinRead)
		}
		var h wire.Header
		var body []byte
		h, body, err = wire.ReadFrame(br, &hdr, buf, c.s.cfg.MaxBody)
		if cap(body) > cap(buf) {
			buf = body[:0]
		}
		if err != nil {
			if errors.Is(err, wire.ErrBadFrame) || errors.Is(err, wire.ErrBadVersion) || errors.Is(err, wire.ErrTooLarge) {
				out, err = c.fail(out, h.ID, err)
			} else {
				err = c.readErr(err)
			}
			break
		}
		c.s.m.bytesIn.Add(float64(wire.HeaderSize + len(body)))
		var herr error
		if out, herr = c.handle(h, body, out); herr != nil {
			out, err = c.fail(out, h.ID, herr)
		}
	}
	// Replies to every request read so far go out before the close.
	if len(out) > 0 {
		if _, ferr := c.flush(out); err == nil {
			err = ferr
		}
	}
	return err
}

// flush writes the queued replies and returns the emptied buffer.
func (c *conn) flush(out []byte) ([]byte, error) {
	if c.s.cfg.IdleTimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
	}
	_, err := c.nc.Write(out)
	c.s.m.bytesOut.Add(float64(len(out)))
	if cap(out) > 8<<20 {
		return make([]byte, 0, 64<<10), err
	}
	return out[:0], err
}

// fail queues an Error frame for a malformed request and returns the reason
// to close the connection: after a malformation framing cannot be trusted.
func (c *conn) fail(out []byte, id uint64, err error) ([]byte, error) {
	code := wire.CodeOf(err)
	c.s.m.err(code)
	out = wire.AppendError(out, id, code, err.Error())
	return out, fmt.Errorf("memnode: closing connection: %w", err)
}

// handle serves one request and appends its reply to out. It returns an
// error only for a malformed request, which ends the connection.
func (c *conn) handle(h wire.Header, body []byte, out []byte) ([]byte, error) {
	s := c.s
	switch h.Type {
	case wire.TRead:
		ids, err := wire.ParseIDs(body)
		if err != nil {
			return out, err
		}
		n := ids.Len()
		if 4+n*(wire.EntryHeaderSize+s.cfg.PageSize) > int(s.cfg.MaxBody) {
			s.m.err(wire.CodeTooLarge)
			return wire.AppendError(out, h.ID, wire.CodeTooLarge, fmt.Sprintf("reply to %d pages exceeds max body %d", n, s.cfg.MaxBody)), nil
		}
		start := len(out)
		out = wire.StartFrame(out, wire.TReadReply, h.ID)
		out = wire.AppendCount(out, n)
		for i := 0; i < n; i++ {
			var code wire.Code
			out, code = s.slab.appendPage(out, c.ns, ids.At(i))
			s.m.err(code)
		}
		wire.EndFrame(out, start)
		s.m.reqRead.Inc()
		s.m.pagesRead.Add(float64(n))
	case wire.TWrite:
		pages, err := wire.ParseWrite(body, s.cfg.PageSize)
		if err != nil {
			return out, err
		}
		n := pages.Len()
		start := len(out)
		out = wire.StartFrame(out, wire.TWriteReply, h.ID)
		out = wire.AppendCount(out, n)
		for i := 0; i < n; i++ {
			id, sum, data := pages.At(i)
			code := wire.CodeCorrupt
			if wire.Checksum(data) == sum {
				code = s.slab.put(c.ns, id, sum, data)
			}
			s.m.err(code)
			out = wire.AppendStatus(out, code)
		}
		wire.EndFrame(out, start)
		s.m.reqWrite.Inc()
		s.m.pagesWrit.Add(float64(n))
	case wire.TFree:
		ids, err := wire.ParseIDs(body)
		if err != nil {
			return out, err
		}
		var freed uint32
		for i := 0; i < ids.Len(); i++ {
			if s.slab.drop(c.ns, ids.At(i)) {
				freed++
			}
		}
		out = wire.AppendFreeReply(out, h.ID, freed)
		s.m.reqFree.Inc()
		s.m.pagesFreed.Add(float64(ids.Len()))
	case wire.TStat:
		if len(body) != 0 {
			return out, wire.ErrBadLength
		}
		out = wire.AppendStatReply(out, h.ID, wire.Stat{
			Capacity: uint64(s.slab.capacity), Used: uint64(s.slab.used.Load()),
			NamespacePages: uint64(c.ns.pages.Load()), Epoch: s.epoch,
		})
		s.m.reqStat.Inc()
	case wire.THello:
		s.m.err(wire.CodeNotAttach)
		out = wire.AppendError(out, h.ID, wire.CodeNotAttach, "already attached")
	default:
		// A reply type sent to the server: the peer is confused.
		return out, fmt.Errorf("%w: %v frame sent to a memnode", wire.ErrUnknownType, h.Type)
	}
	return out, nil
}
