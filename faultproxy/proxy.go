package faultproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Sizes of the forwarding pipeline of one direction of one connection: at
// most chunksInFlight reads of up to chunkSize bytes are queued between the
// reader and the writer. While the writer is held (blackhole, delay) the
// reader stops once they are all queued, so TCP flow control pushes back on
// the sender as a stalled network would.
const (
	chunkSize      = 32 << 10
	chunksInFlight = 16
)

// Stats are a proxy's counters since it was started.
type Stats struct {
	// Accepted counts connections accepted from clients; Active is the
	// number open now.
	Accepted, Active uint64
	// ResetConns counts connections aborted with RST by ResetAll;
	// CutConns those closed by a cut, and RefusedConns new connections
	// reset because a cut was in force.
	ResetConns, CutConns, RefusedConns uint64
	// DialErrors counts failed dials of the target (backend down).
	DialErrors uint64
	// BytesUp and BytesDown count bytes forwarded to and from the target.
	BytesUp, BytesDown uint64
}

// Proxy is a fault-injecting TCP proxy: it accepts connections on its own
// address and forwards each to the target over a new connection, and can
// blackhole, delay, reset and cut them on command (or from a Runner). It is
// safe for concurrent use.
type Proxy struct {
	ln     net.Listener
	target string

	mu        sync.Mutex
	links     map[*link]struct{}
	blackhole bool
	bhFlag    atomic.Bool // mirrors blackhole for the lock-free fast path
	cut       bool
	closed    bool
	changed   chan struct{} // closed and replaced when blackhole ends
	delay     atomic.Int64  // nanoseconds

	wg sync.WaitGroup

	accepted, active, resets, cuts, refused, dialErrs, up, down atomic.Uint64
}

// New starts a proxy on 127.0.0.1 (a free port) forwarding to target.
func New(target string) (*Proxy, error) { return Listen("127.0.0.1:0", target) }

// Listen starts a proxy on addr forwarding to target (host:port). The
// target is dialed anew for every accepted connection, so it may come and
// go.
func Listen(addr, target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, links: make(map[*link]struct{}), changed: make(chan struct{})}
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the address clients connect to.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Target returns the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// SetBlackhole starts or ends a blackhole. While it is in force every byte
// read in either direction is held, and new connections are accepted but
// not forwarded (the target is not even dialed); when it ends the held
// bytes are delivered in order.
func (p *Proxy) SetBlackhole(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.blackhole && !on {
		close(p.changed)
		p.changed = make(chan struct{})
	}
	p.blackhole = on
	p.bhFlag.Store(on)
}

// SetDelay sets the latency added to every chunk read from now on, in each
// direction (0 or less: none). Chunks keep their order; a chunk already
// queued keeps the delay it was read with.
func (p *Proxy) SetDelay(d time.Duration) { p.delay.Store(int64(max(d, 0))) }

// SetCut starts or ends a cut. Starting one closes every current
// connection (the client sees EOF); while it is in force new connections
// are accepted and at once reset. The listening socket stays bound so that
// the proxy keeps its address, which is why a client sees a reset rather
// than a refused connect.
func (p *Proxy) SetCut(on bool) {
	p.mu.Lock()
	p.cut = on
	var victims []*link
	if on {
		victims = p.snapshot()
	}
	p.mu.Unlock()
	for _, l := range victims {
		l.close(false)
	}
	p.cuts.Add(uint64(len(victims)))
}

// ResetAll aborts every current connection, on both sides, with a TCP RST
// (SO_LINGER 0, then close): the client's next read or write fails with
// ECONNRESET.
func (p *Proxy) ResetAll() {
	p.mu.Lock()
	victims := p.snapshot()
	p.mu.Unlock()
	for _, l := range victims {
		l.close(true)
	}
	p.resets.Add(uint64(len(victims)))
}

func (p *Proxy) snapshot() []*link {
	victims := make([]*link, 0, len(p.links))
	for l := range p.links {
		victims = append(victims, l)
	}
	return victims
}

// Stats returns the proxy's counters.
func (p *Proxy) Stats() Stats {
	return Stats{
		Accepted: p.accepted.Load(), Active: p.active.Load(),
		ResetConns: p.resets.Load(), CutConns: p.cuts.Load(), RefusedConns: p.refused.Load(),
		DialErrors: p.dialErrs.Load(), BytesUp: p.up.Load(), BytesDown: p.down.Load(),
	}
}

// Close stops accepting, closes every connection and waits for all of the
// proxy's goroutines. It returns ErrClosed when called again.
func (p *Proxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return ErrClosed
	}
	p.closed = true
	victims := p.snapshot()
	p.mu.Unlock()
	err := p.ln.Close()
	for _, l := range victims {
		l.close(false)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary failures (EMFILE and the like): back off a little.
			time.Sleep(5 * time.Millisecond)
			continue
		}
		p.accepted.Add(1)
		p.mu.Lock()
		if p.closed || p.cut {
			refused := !p.closed
			p.mu.Unlock()
			abort(c)
			if refused {
				p.refused.Add(1)
			}
			continue
		}
		l := &link{p: p, client: c, done: make(chan struct{})}
		p.links[l] = struct{}{}
		p.active.Add(1)
		p.wg.Add(1)
		p.mu.Unlock()
		go l.run()
	}
}

// abort closes c with an RST.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

// waitOpen returns once no blackhole is in force, false if done closed
// first.
func (p *Proxy) waitOpen(done <-chan struct{}) bool {
	for {
		p.mu.Lock()
		bh, ch := p.blackhole, p.changed
		p.mu.Unlock()
		if !bh {
			return true
		}
		select {
		case <-ch:
		case <-done:
			return false
		}
	}
}

// link is one proxied connection: the client's and the target's.
type link struct {
	p       *Proxy
	client  net.Conn
	backend net.Conn // set once dialed, before the pumps start
	done    chan struct{}

	mu       sync.Mutex
	closed   bool
	halfDone int // directions that ended with a clean EOF
}

// close tears the link down once, with an RST when rst is set.
func (l *link) close(rst bool) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	backend := l.backend
	l.mu.Unlock()
	close(l.done)
	if rst {
		abort(l.client)
		if backend != nil {
			abort(backend)
		}
	} else {
		_ = l.client.Close()
		if backend != nil {
			_ = backend.Close()
		}
	}
	l.p.mu.Lock()
	delete(l.p.links, l)
	l.p.mu.Unlock()
	l.p.active.Add(^uint64(0))
}

func (l *link) run() {
	defer l.p.wg.Done()
	// A blackholed network does not carry the SYN either: dial only once
	// it lifts.
	if !l.p.waitOpen(l.done) {
		return
	}
	b, err := net.DialTimeout("tcp", l.p.target, 5*time.Second)
	if err != nil {
		l.p.dialErrs.Add(1)
		l.close(true)
		return
	}
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		_ = b.Close()
		return
	}
	l.backend = b
	l.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.pump(l.client, b, &l.p.up) }()
	go func() { defer wg.Done(); l.pump(b, l.client, &l.p.down) }()
	wg.Wait()
}

type chunk struct {
	buf []byte
	n   int
	due time.Time
	err error // set on the last chunk of a direction
}

// pump forwards src to dst: a reader goroutine stamps each chunk with its
// due time (read time + delay), this goroutine writes chunks in order once
// they are due and no blackhole is in force. With no fault in force and
// nothing queued the reader writes the chunk itself: order is kept (the
// writer is idle), and a fault-free proxy costs no goroutine hand-off.
func (l *link) pump(src, dst net.Conn, bytes *atomic.Uint64) {
	var pending atomic.Int64 // chunks queued and not yet written
	free := make(chan []byte, chunksInFlight)
	queue := make(chan chunk, chunksInFlight)
	for range chunksInFlight {
		free <- make([]byte, chunkSize)
	}
	var reader sync.WaitGroup
	reader.Add(1)
	defer reader.Wait() // it ends once src ends or the link closes
	go func() {
		defer reader.Done()
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-l.done:
				return
			}
			n, err := src.Read(buf)
			if n > 0 && err == nil && pending.Load() == 0 && l.p.delay.Load() == 0 && !l.p.bhFlag.Load() {
				if _, err := dst.Write(buf[:n]); err != nil {
					l.close(true)
					return
				}
				bytes.Add(uint64(n))
				free <- buf
				continue
			}
			c := chunk{buf: buf, n: n, err: err}
			if d := l.p.delay.Load(); d > 0 {
				c.due = time.Now().Add(time.Duration(d))
			}
			pending.Add(1)
			select {
			case queue <- c:
			case <-l.done:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		var c chunk
		select {
		case c = <-queue:
		case <-l.done:
			return
		}
		if c.n > 0 {
			if !l.p.waitOpen(l.done) {
				return
			}
			if wait := time.Until(c.due); !c.due.IsZero() && wait > 0 {
				timer.Reset(wait)
				select {
				case <-timer.C:
				case <-l.done:
					return
				}
			}
			if _, err := dst.Write(c.buf[:c.n]); err != nil {
				l.close(true)
				return
			}
			bytes.Add(uint64(c.n))
		}
		pending.Add(-1)
		free <- c.buf
		if c.err != nil {
			l.finish(dst, c.err)
			return
		}
	}
}

// finish ends one direction: a clean EOF is passed on as a half-close, and
// the link closes when both directions have ended; an error (reset by the
// peer, or our own close) aborts the link.
func (l *link) finish(dst net.Conn, err error) {
	if !errors.Is(err, io.EOF) {
		l.close(true)
		return
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	l.mu.Lock()
	l.halfDone++
	both := l.halfDone == 2
	l.mu.Unlock()
	if both {
		l.close(false)
	}
}
