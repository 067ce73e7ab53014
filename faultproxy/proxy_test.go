package faultproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// echoServer is the backend of the proxy tests: it echoes every byte. Kill
// drops its listener and every connection with an RST (as a killed process
// would); Restart listens again on the same address.
type echoServer struct {
	t    testing.TB
	addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newEchoServer(t testing.TB) *echoServer {
	e := &echoServer{t: t, addr: "127.0.0.1:0", conns: make(map[net.Conn]struct{})}
	if err := e.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Kill() })
	return e
}

func (e *echoServer) Restart() error {
	ln, err := net.Listen("tcp", e.addr)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.ln, e.addr = ln, ln.Addr().String()
	e.mu.Unlock()
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			e.mu.Lock()
			if e.ln != ln { // killed between Accept and here
				e.mu.Unlock()
				abort(c)
				continue
			}
			e.conns[c] = struct{}{}
			e.mu.Unlock()
			e.wg.Add(1)
			go func() {
				defer e.wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
				e.mu.Lock()
				delete(e.conns, c)
				e.mu.Unlock()
			}()
		}
	}()
	return nil
}

func (e *echoServer) Kill() error {
	e.mu.Lock()
	if e.ln != nil {
		_ = e.ln.Close()
		e.ln = nil
	}
	for c := range e.conns {
		abort(c)
	}
	e.mu.Unlock()
	e.wg.Wait()
	return nil
}

func newProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := New(target)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// roundTrip writes msg and reads it back, with a generous deadline that
// only guards against hangs.
func roundTrip(c net.Conn, msg string) error {
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// expectSilence checks that nothing arrives on c for a short while, and that
// c is still open (the read timed out rather than failed).
func expectSilence(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	n, err := c.Read(b[:])
	var ne net.Error
	if n != 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read during blackhole = %d, %v; want a timeout", n, err)
	}
}

func TestProxyForwards(t *testing.T) {
	e := newEchoServer(t)
	p := newProxy(t, e.addr)
	c := dial(t, p)
	for i := range 10 {
		if err := roundTrip(c, fmt.Sprintf("hello %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	// A clean close by the client is passed on as a half-close, and the
	// backend's close comes back as EOF.
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("after half-close: %d, %v; want EOF", n, err)
	}
	st := p.Stats()
	if st.Accepted != 1 || st.BytesUp != st.BytesDown || st.BytesUp == 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestProxyBlackhole(t *testing.T) {
	e := newEchoServer(t)
	p := newProxy(t, e.addr)
	c := dial(t, p)
	if err := roundTrip(c, "before"); err != nil {
		t.Fatal(err)
	}
	p.SetBlackhole(true)
	if _, err := io.WriteString(c, "held"); err != nil {
		t.Fatal(err)
	}
	expectSilence(t, c)
	// A new connection is accepted but blackholed too.
	c2 := dial(t, p)
	if _, err := io.WriteString(c2, "new"); err != nil {
		t.Fatal(err)
	}
	expectSilence(t, c2)
	if got := p.Stats().BytesUp; got != uint64(len("before")) {
		t.Errorf("%d bytes reached the backend during the blackhole", got-uint64(len("before")))
	}
	p.SetBlackhole(false)
	// The held bytes arrive, in order, and both connections work again.
	for _, tc := range []struct {
		c    net.Conn
		want string
	}{{c, "held"}, {c2, "new"}} {
		_ = tc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		got := make([]byte, len(tc.want))
		if _, err := io.ReadFull(tc.c, got); err != nil || string(got) != tc.want {
			t.Fatalf("after the blackhole: %q, %v; want %q", got, err, tc.want)
		}
		if err := roundTrip(tc.c, "after"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestProxyDelay(t *testing.T) {
	e := newEchoServer(t)
	p := newProxy(t, e.addr)
	c := dial(t, p)
	const delay = 20 * time.Millisecond
	p.SetDelay(delay)
	begin := time.Now()
	if err := roundTrip(c, "x"); err != nil {
		t.Fatal(err)
	}
	// Each direction holds the chunk for at least the delay.
	if rtt := time.Since(begin); rtt < 2*delay {
		t.Errorf("round trip %v under a %v delay each way", rtt, delay)
	}
	// Pipelined messages come back complete and in order.
	const n = 200
	go func() {
		w := bufio.NewWriter(c)
		for i := range n {
			fmt.Fprintf(w, "line %04d\n", i)
			if i%7 == 0 {
				_ = w.Flush() // many chunks, not one
			}
		}
		_ = w.Flush()
	}()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	r := bufio.NewReader(c)
	for i := range n {
		line, err := r.ReadString('\n')
		if want := fmt.Sprintf("line %04d\n", i); err != nil || line != want {
			t.Fatalf("got %q, %v; want %q", line, err, want)
		}
	}
	p.SetDelay(0)
	if err := roundTrip(c, "fast again"); err != nil {
		t.Fatal(err)
	}
}

func TestProxyReset(t *testing.T) {
	e := newEchoServer(t)
	p := newProxy(t, e.addr)
	c := dial(t, p)
	if err := roundTrip(c, "before"); err != nil {
		t.Fatal(err)
	}
	p.ResetAll()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after reset: %v, want ECONNRESET", err)
	}
	if got := p.Stats().ResetConns; got != 1 {
		t.Errorf("ResetConns = %d", got)
	}
	// Recovery: a new connection works at once.
	if err := roundTrip(dial(t, p), "after"); err != nil {
		t.Fatal(err)
	}
}

// expectDead checks that c fails: EOF or reset on read, or an error on write.
func expectDead(t *testing.T, c net.Conn, what string) {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(c, "?") // may succeed before the close is seen
	_, err := c.Read(make([]byte, 1))
	if err == nil || (!errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE)) {
		t.Fatalf("%s: read = %v, want EOF or a reset", what, err)
	}
}

func TestProxyCut(t *testing.T) {
	e := newEchoServer(t)
	p := newProxy(t, e.addr)
	c := dial(t, p)
	if err := roundTrip(c, "before"); err != nil {
		t.Fatal(err)
	}
	p.SetCut(true)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after cut: %d, %v; want EOF", n, err)
	}
	// New connections are refused: either connect fails or the connection
	// dies at once.
	if c2, err := net.Dial("tcp", p.Addr()); err == nil {
		expectDead(t, c2, "connection during cut")
		_ = c2.Close()
	}
	p.SetCut(false)
	if err := roundTrip(dial(t, p), "after"); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(); st.CutConns != 1 || st.RefusedConns != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestProxyKillRestart(t *testing.T) {
	e := newEchoServer(t)
	p := newProxy(t, e.addr)
	r, err := NewRunner(MustParse("kill@1s+1s"), p, Hooks{Kill: e.Kill, Restart: e.Restart})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	if err := roundTrip(c, "before"); err != nil {
		t.Fatal(err)
	}
	r.Step(time.Second) // kill
	expectDead(t, c, "connection to a killed backend")
	// While the backend is down the proxy cannot dial it.
	if c2, err := net.Dial("tcp", p.Addr()); err == nil { // the reset may come first
		expectDead(t, c2, "new connection to a killed backend")
		_ = c2.Close()
	}
	if p.Stats().DialErrors == 0 {
		t.Error("no dial error counted")
	}
	r.Step(2 * time.Second) // restart
	if err := roundTrip(dial(t, p), "after"); err != nil {
		t.Fatal(err)
	}
	if got := r.Counts()[Kill]; got != 1 {
		t.Errorf("kills counted %d", got)
	}
}

// TestProxyScheduleFakeClock drives the real proxy through a runner on a fake
// clock: the blackhole is in force exactly between the edges.
func TestProxyScheduleFakeClock(t *testing.T) {
	e := newEchoServer(t)
	p := newProxy(t, e.addr)
	r, err := NewRunner(MustParse("blackhole@1s+1s"), p, Hooks{})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p)
	r.Step(999 * time.Millisecond)
	if err := roundTrip(c, "open"); err != nil {
		t.Fatal(err)
	}
	r.Step(time.Second)
	if _, err := io.WriteString(c, "held"); err != nil {
		t.Fatal(err)
	}
	expectSilence(t, c)
	r.Step(2 * time.Second)
	got := make([]byte, 4)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, []byte("held")) {
		t.Fatalf("after: %q, %v", got, err)
	}
}

func TestProxyCloseTwice(t *testing.T) {
	e := newEchoServer(t)
	p, err := New(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := roundTrip(c, "x"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	expectDead(t, c, "connection of a closed proxy")
}

// BenchmarkProxyRoundTrip measures the cost the proxy adds to a small
// request/response over loopback; compare with BenchmarkDirectRoundTrip.
func BenchmarkProxyRoundTrip(b *testing.B) {
	e := newEchoServer(b)
	p, err := New(e.addr)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close()
	benchRoundTrip(b, p.Addr())
}

// BenchmarkDirectRoundTrip is the same round trip without the proxy.
func BenchmarkDirectRoundTrip(b *testing.B) {
	benchRoundTrip(b, newEchoServer(b).addr)
}

func benchRoundTrip(b *testing.B, addr string) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 4096)
	got := make([]byte, len(msg))
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(c, got); err != nil {
			b.Fatal(err)
		}
	}
}

// TestProxyRandomFaults runs a random schedule of every kind against the
// proxy on the wall clock while clients keep echoing numbered messages. A
// message may fail (that is the point), but one that comes back must come
// back intact; a connection that failed once is replaced. When the
// schedule is over, everything works again. Rerun a failure with -seed.
func TestProxyRandomFaults(t *testing.T) {
	seed := *seedFlag
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (rerun with -seed=%d)", seed, seed)
	const perKind = 8
	sched := RandomSchedule(seed, 1500*time.Millisecond, perKind)
	e := newEchoServer(t)
	p := newProxy(t, e.addr)
	r, err := NewRunner(sched, p, Hooks{Kill: e.Kill, Restart: e.Restart})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var okMsgs, failed [2]int
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var c net.Conn
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if c == nil {
					var err error
					if c, err = net.DialTimeout("tcp", p.Addr(), time.Second); err != nil {
						failed[w]++
						time.Sleep(5 * time.Millisecond)
						continue
					}
				}
				msg := fmt.Sprintf("worker %d message %d %s", w, i, bytes.Repeat([]byte{'x'}, i%3000))
				_ = c.SetDeadline(time.Now().Add(100 * time.Millisecond))
				_, err := io.WriteString(c, msg)
				got := make([]byte, len(msg))
				if err == nil {
					_, err = io.ReadFull(c, got)
				}
				if err != nil {
					failed[w]++
					c.Close()
					c = nil
					continue
				}
				if string(got) != msg {
					t.Errorf("worker %d: echo corrupted: got %.40q..., want %.40q...", w, got, msg)
					return
				}
				okMsgs[w]++
			}
		}()
	}
	if err := r.Run(context.Background(), nil); err != nil {
		t.Errorf("Run: %v", err)
	}
	close(stop)
	wg.Wait()
	for k, n := range r.Counts() {
		if n != perKind {
			t.Errorf("injected %d %v, want %d", n, Kind(k), perKind)
		}
	}
	t.Logf("echoes ok %v, failed %v, injected %v, proxy %+v", okMsgs, failed, r.Counts(), p.Stats())
	if err := roundTrip(dial(t, p), "after the storm"); err != nil {
		t.Fatalf("after the schedule: %v", err)
	}
}
