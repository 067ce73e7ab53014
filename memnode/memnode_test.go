package memnode

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/farmem/farmem/internal/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const ps = 4096

// start runs a server on a loopback port and stops it when the test ends.
func start(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	if cfg.Capacity == 0 {
		cfg.Capacity = 1024 * ps
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	return s, l.Addr().String()
}

// client is a bare protocol client for tests.
type client struct {
	t   testing.TB
	nc  net.Conn
	br  *bufio.Reader
	hdr [wire.HeaderSize]byte
	buf []byte
	w   wire.Welcome
}

func attach(t testing.TB, addr, ns, token string) (*client, error) {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, nc: nc, br: bufio.NewReader(nc)}
	t.Cleanup(func() { nc.Close() })
	f, err := wire.AppendHello(nil, wire.Hello{PageSize: ps, Namespace: []byte(ns), Token: []byte(token)})
	if err != nil {
		t.Fatal(err)
	}
	c.send(f)
	h, body, err := c.recv()
	if err != nil {
		return nil, err
	}
	if h.Type == wire.TError {
		re, err := wire.ParseError(body)
		if err != nil {
			return nil, err
		}
		return nil, re
	}
	if c.w, err = wire.ParseWelcome(body); err != nil {
		return nil, err
	}
	return c, nil
}

func mustAttach(t testing.TB, addr, ns string) *client {
	c, err := attach(t, addr, ns, "")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *client) send(f []byte) {
	if _, err := c.nc.Write(f); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) recv() (wire.Header, []byte, error) {
	h, body, err := wire.ReadFrame(c.br, &c.hdr, c.buf, 0)
	c.buf = body[:0]
	return h, body, err
}

func fill(id uint64, gen byte) []byte {
	p := make([]byte, ps)
	for i := range p {
		p[i] = byte(id) ^ byte(i) ^ gen
	}
	return p
}

func writeFrame(id uint64, ids []uint64, gen byte) []byte {
	f := wire.StartFrame(nil, wire.TWrite, id)
	f = wire.AppendCount(f, len(ids))
	for _, pid := range ids {
		d := fill(pid, gen)
		f = wire.AppendWriteEntry(f, pid, wire.Checksum(d), d)
	}
	wire.EndFrame(f, 0)
	return f
}

func idsFrame(t wire.Type, id uint64, ids []uint64) []byte {
	f := wire.StartFrame(nil, t, id)
	f = wire.AppendCount(f, len(ids))
	for _, pid := range ids {
		f = wire.AppendID(f, pid)
	}
	wire.EndFrame(f, 0)
	return f
}

// do sends f and returns the reply, which must carry f's request id.
func (c *client) do(f []byte) (wire.Header, []byte) {
	c.t.Helper()
	c.send(f)
	h, body, err := c.recv()
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	if want := binaryID(f); h.ID != want {
		c.t.Fatalf("reply id %d, want %d", h.ID, want)
	}
	return h, body
}

func binaryID(f []byte) uint64 {
	h, _ := wire.ParseHeader(f, 0)
	return h.ID
}

func (c *client) write(ids []uint64, gen byte) []wire.Code {
	c.t.Helper()
	h, body := c.do(writeFrame(1, ids, gen))
	if h.Type != wire.TWriteReply {
		c.t.Fatalf("write answered %v", h.Type)
	}
	st, err := wire.ParseWriteReply(body)
	if err != nil {
		c.t.Fatal(err)
	}
	out := make([]wire.Code, st.Len())
	for i := range out {
		out[i] = st.At(i)
	}
	return out
}

func (c *client) read(ids []uint64) []wire.ReadEntry {
	c.t.Helper()
	h, body := c.do(idsFrame(wire.TRead, 2, ids))
	if h.Type != wire.TReadReply {
		c.t.Fatalf("read answered %v", h.Type)
	}
	rr, err := wire.ParseReadReply(body, ps)
	if err != nil {
		c.t.Fatal(err)
	}
	var out []wire.ReadEntry
	for e, ok := rr.Next(); ok; e, ok = rr.Next() {
		e.Data = append([]byte(nil), e.Data...)
		out = append(out, e)
	}
	return out
}

func (c *client) free(ids []uint64) uint32 {
	c.t.Helper()
	_, body := c.do(idsFrame(wire.TFree, 3, ids))
	n, err := wire.ParseFreeReply(body)
	if err != nil {
		c.t.Fatal(err)
	}
	return n
}

func (c *client) stat() wire.Stat {
	c.t.Helper()
	_, body := c.do(wire.StartFrame(nil, wire.TStat, 4))
	st, err := wire.ParseStatReply(body)
	if err != nil {
		c.t.Fatal(err)
	}
	return st
}

func allOK(t *testing.T, codes []wire.Code) {
	t.Helper()
	for i, c := range codes {
		if c != wire.OK {
			t.Fatalf("page %d: %v", i, c.Err())
		}
	}
}

func TestReadWriteFree(t *testing.T) {
	s, addr := start(t, Config{})
	c := mustAttach(t, addr, "a")
	if c.w.Epoch != s.Epoch() || c.w.PageSize != ps || c.w.Capacity != 1024 {
		t.Fatalf("welcome %+v", c.w)
	}
	allOK(t, c.write([]uint64{1, 2, 1 << 50}, 0))
	got := c.read([]uint64{2, 3, 1 << 50})
	if got[0].Status != wire.OK || !bytes.Equal(got[0].Data, fill(2, 0)) || got[0].Sum != wire.Checksum(fill(2, 0)) {
		t.Fatal("page 2 did not come back")
	}
	if got[1].Status != wire.CodeNotFound || got[2].Status != wire.OK {
		t.Fatalf("statuses %v %v", got[1].Status, got[2].Status)
	}
	allOK(t, c.write([]uint64{2}, 7)) // overwrite
	if got := c.read([]uint64{2}); !bytes.Equal(got[0].Data, fill(2, 7)) {
		t.Fatal("overwrite lost")
	}
	if st := c.stat(); st.Used != 3 || st.NamespacePages != 3 || st.Capacity != 1024 || st.Epoch != s.Epoch() {
		t.Fatalf("stat %+v", st)
	}
	if n := c.free([]uint64{1, 2, 99}); n != 2 {
		t.Fatalf("freed %d", n)
	}
	if got := c.read([]uint64{1}); got[0].Status != wire.CodeNotFound {
		t.Fatal("freed page still readable")
	}
	if st := c.stat(); st.Used != 1 {
		t.Fatalf("used %d after free", st.Used)
	}
}

func TestBadChecksumOnWrite(t *testing.T) {
	_, addr := start(t, Config{})
	c := mustAttach(t, addr, "a")
	f := wire.StartFrame(nil, wire.TWrite, 1)
	f = wire.AppendCount(f, 1)
	f = wire.AppendWriteEntry(f, 5, 12345, fill(5, 0))
	wire.EndFrame(f, 0)
	_, body := c.do(f)
	st, _ := wire.ParseWriteReply(body)
	if st.At(0) != wire.CodeCorrupt {
		t.Fatalf("bad checksum accepted: %v", st.At(0))
	}
	if got := c.read([]uint64{5}); got[0].Status != wire.CodeNotFound {
		t.Fatal("corrupt page was stored")
	}
}

func TestCorruptStoredPage(t *testing.T) {
	s, addr := start(t, Config{})
	c := mustAttach(t, addr, "a")
	allOK(t, c.write([]uint64{1, 2}, 0))
	if !s.CorruptPage("a", 2) {
		t.Fatal("CorruptPage: no such page")
	}
	got := c.read([]uint64{1, 2})
	if got[0].Status != wire.OK || got[1].Status != wire.CodeCorrupt || got[1].Data != nil {
		t.Fatalf("statuses %v %v", got[0].Status, got[1].Status)
	}
	allOK(t, c.write([]uint64{2}, 1)) // rewriting heals it
	if got := c.read([]uint64{2}); got[0].Status != wire.OK {
		t.Fatal("rewritten page still corrupt")
	}
}

func TestNamespaceIsolation(t *testing.T) {
	_, addr := start(t, Config{})
	a, b := mustAttach(t, addr, "alpha"), mustAttach(t, addr, "beta")
	allOK(t, a.write([]uint64{1, 2}, 1))
	if got := b.read([]uint64{1, 2}); got[0].Status != wire.CodeNotFound || got[1].Status != wire.CodeNotFound {
		t.Fatal("beta sees alpha's pages")
	}
	allOK(t, b.write([]uint64{1}, 2))
	if got := a.read([]uint64{1}); !bytes.Equal(got[0].Data, fill(1, 1)) {
		t.Fatal("beta's write changed alpha's page")
	}
	if n := b.free([]uint64{2}); n != 0 {
		t.Fatal("beta freed alpha's page")
	}
	if st := b.stat(); st.NamespacePages != 1 || st.Used != 3 {
		t.Fatalf("beta stat %+v", st)
	}
	// A second connection to alpha sees alpha's pages.
	if got := mustAttach(t, addr, "alpha").read([]uint64{2}); got[0].Status != wire.OK {
		t.Fatal("alpha's page not visible from a new connection")
	}
}

func TestAuth(t *testing.T) {
	_, addr := start(t, Config{Token: []byte("right")})
	for _, tok := range []string{"", "wrong", "righ", "right!"} {
		if _, err := attach(t, addr, "a", tok); !errors.Is(err, wire.ErrBadToken) {
			t.Errorf("token %q: %v, want ErrBadToken", tok, err)
		}
	}
	c, err := attach(t, addr, "a", "right")
	if err != nil {
		t.Fatal(err)
	}
	allOK(t, c.write([]uint64{1}, 0))
}

func TestHandshakeRefusals(t *testing.T) {
	_, addr := start(t, Config{})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	f, _ := wire.AppendHello(nil, wire.Hello{PageSize: 8192, Namespace: []byte("a")})
	nc.Write(f)
	var hdr [wire.HeaderSize]byte
	_, body, err := wire.ReadFrame(nc, &hdr, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if re, _ := wire.ParseError(body); !errors.Is(re, wire.ErrBadPageSize) {
		t.Fatalf("page size mismatch answered %v", re)
	}
	c := mustAttach(t, addr, "a")
	_, body = c.do(func() []byte {
		f, _ := wire.AppendHello(nil, wire.Hello{PageSize: ps, Namespace: []byte("b")})
		return f
	}())
	if re, _ := wire.ParseError(body); !errors.Is(re, wire.ErrNotAttached) {
		t.Fatalf("second hello answered %v", re)
	}
	if got := c.stat(); got.Capacity == 0 {
		t.Fatal("connection unusable after refused second hello")
	}
}

func TestCapacity(t *testing.T) {
	_, addr := start(t, Config{Capacity: 4 * ps})
	c := mustAttach(t, addr, "a")
	allOK(t, c.write([]uint64{1, 2, 3}, 0))
	codes := c.write([]uint64{4, 5, 1}, 1)
	if codes[0] != wire.OK || codes[1] != wire.CodeFull || codes[2] != wire.OK {
		t.Fatalf("at capacity: %v", codes)
	}
	if !errors.Is(codes[1].Err(), wire.ErrFull) {
		t.Fatal("full code does not map to ErrFull")
	}
	got := c.read([]uint64{1, 2, 3, 4, 5})
	for i, want := range []wire.Code{wire.OK, wire.OK, wire.OK, wire.OK, wire.CodeNotFound} {
		if got[i].Status != want {
			t.Fatalf("page %d: %v want %v", i+1, got[i].Status, want)
		}
	}
	if !bytes.Equal(got[0].Data, fill(1, 1)) || !bytes.Equal(got[1].Data, fill(2, 0)) {
		t.Fatal("data lost at capacity")
	}
	// Another namespace shares the capacity.
	other := mustAttach(t, addr, "b")
	if codes := other.write([]uint64{1}, 0); codes[0] != wire.CodeFull {
		t.Fatal("capacity not global")
	}
	c.free([]uint64{2})
	allOK(t, other.write([]uint64{1}, 0))
}

func TestReadTooLarge(t *testing.T) {
	_, addr := start(t, Config{MaxBody: 8 * (ps + 16)})
	c := mustAttach(t, addr, "a")
	ids := make([]uint64, 100)
	h, body := c.do(idsFrame(wire.TRead, 9, ids))
	re, _ := wire.ParseError(body)
	if h.Type != wire.TError || !errors.Is(re, wire.ErrTooLarge) {
		t.Fatalf("oversized read answered %v %v", h.Type, re)
	}
	allOK(t, c.write([]uint64{1}, 0)) // the connection survives
}

func TestMalformedClosesOnlyThatConn(t *testing.T) {
	_, addr := start(t, Config{})
	good := mustAttach(t, addr, "a")
	allOK(t, good.write([]uint64{1}, 0))
	bad := []struct {
		name  string
		frame []byte
		want  error
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), wire.ErrBadFrame},
		{"bad read body", append(wire.AppendHeader(nil, wire.Header{Version: 1, Type: wire.TRead, Len: 3}), 1, 2, 3), wire.ErrBadFrame},
		{"reply type", wire.AppendStatReply(nil, 1, wire.Stat{}), wire.ErrBadFrame},
		{"oversized", wire.AppendHeader(nil, wire.Header{Version: 1, Type: wire.TWrite, Len: 1 << 30}), wire.ErrTooLarge},
		{"bad version", wire.AppendHeader(nil, wire.Header{Version: 7, Type: wire.TStat}), wire.ErrBadVersion},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			c := mustAttach(t, addr, "a")
			c.send(tc.frame)
			h, body, err := c.recv()
			if err != nil || h.Type != wire.TError {
				t.Fatalf("no error frame: %v %v", h.Type, err)
			}
			if re, _ := wire.ParseError(body); !errors.Is(re, tc.want) {
				t.Fatalf("answered %v, want %v", re, tc.want)
			}
			if _, _, err := c.recv(); err != io.EOF {
				t.Fatalf("connection not closed: %v", err)
			}
			if got := good.read([]uint64{1}); got[0].Status != wire.OK {
				t.Fatal("other connection broken")
			}
		})
	}
}

func TestIdleTimeout(t *testing.T) {
	_, addr := start(t, Config{IdleTimeout: 50 * time.Millisecond})
	c := mustAttach(t, addr, "a")
	if _, _, err := c.recv(); err != io.EOF {
		t.Fatalf("idle connection not closed: %v", err)
	}
}

// TestPipelined keeps many requests in flight on each of several connections
// and checks every reply against its request id.
func TestPipelined(t *testing.T) {
	_, addr := start(t, Config{Capacity: 1 << 16 * ps})
	const conns, rounds, batch = 8, 50, 4
	var wg sync.WaitGroup
	for ci := 0; ci < conns; ci++ {
		c := mustAttach(t, addr, "p")
		wg.Add(1)
		go func(ci int) {
			defer wg.Done()
			base := uint64(ci) << 32
			errc := make(chan error, 1)
			go func() { // writer: all requests without waiting
				var f []byte
				for r := 0; r < rounds; r++ {
					ids := make([]uint64, batch)
					for i := range ids {
						ids[i] = base + uint64(r*batch+i)
					}
					f = append(f[:0], writeFrame(uint64(2*r), ids, byte(r))...)
					f = append(f, idsFrame(wire.TRead, uint64(2*r+1), ids)...)
					if _, err := c.nc.Write(f); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for n := 0; n < 2*rounds; n++ {
				h, body, err := c.recv()
				if err != nil {
					t.Errorf("conn %d: %v", ci, err)
					return
				}
				r := int(h.ID / 2)
				if h.ID%2 == 0 {
					if st, err := wire.ParseWriteReply(body); err != nil || st.Len() != batch || st.At(0) != wire.OK {
						t.Errorf("write %d: %v", h.ID, err)
					}
					continue
				}
				rr, err := wire.ParseReadReply(body, ps)
				if err != nil {
					t.Errorf("read %d: %v", h.ID, err)
					return
				}
				i := 0
				for e, ok := rr.Next(); ok; e, ok = rr.Next() {
					want := base + uint64(r*batch+i)
					if e.ID != want || e.Status != wire.OK || !bytes.Equal(e.Data, fill(want, byte(r))) {
						t.Errorf("conn %d read %d page %d wrong", ci, h.ID, i)
					}
					i++
				}
			}
			if err := <-errc; err != nil {
				t.Error(err)
			}
		}(ci)
	}
	wg.Wait()
}

func TestEpochDiffersAcrossRestarts(t *testing.T) {
	s1, addr1 := start(t, Config{})
	c1 := mustAttach(t, addr1, "a")
	s1.Close()
	s2, addr2 := start(t, Config{})
	c2 := mustAttach(t, addr2, "a")
	if c1.w.Epoch == c2.w.Epoch || s1.Epoch() == s2.Epoch() || c1.w.Epoch == 0 {
		t.Fatalf("epochs %x %x", c1.w.Epoch, c2.w.Epoch)
	}
	if got := c2.read([]uint64{1}); got[0].Status != wire.CodeNotFound {
		t.Fatal("restarted memnode is not empty")
	}
}

func TestGracefulShutdown(t *testing.T) {
	s, err := New(Config{Capacity: 4096 * ps})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	served := make(chan error, 1)
	go func() { served <- s.Serve(l) }()
	c := mustAttach(t, l.Addr().String(), "a")
	// Queue requests, make sure the server has read the first, then shut down:
	// every request read before Shutdown gets its reply.
	const n = 20
	var f []byte
	for i := 0; i < n; i++ {
		f = append(f, writeFrame(uint64(i), []uint64{uint64(i)}, 0)...)
	}
	c.send(f)
	h, _, err := c.recv()
	if err != nil || h.ID != 0 {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	got := 1
	for {
		h, _, err := c.recv()
		if err != nil {
			break
		}
		if h.ID != uint64(got) {
			t.Fatalf("reply %d out of order (want %d)", h.ID, got)
		}
		got++
	}
	if int(s.Stats().Used) != got {
		t.Fatalf("%d replies but %d pages stored: a reply was lost", got, s.Stats().Used)
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{{}, {Capacity: 100}, {Capacity: 1 << 20, PageSize: 3000}, {Capacity: 1 << 20, MaxBody: 10}, {Capacity: 1 << 20, IdleTimeout: -1}} {
		if _, err := New(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
}

func TestMetrics(t *testing.T) {
	s, addr := start(t, Config{})
	c := mustAttach(t, addr, "a")
	allOK(t, c.write([]uint64{1, 2}, 0))
	c.read([]uint64{1, 3})
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += fmt.Sprintf("{%s}", l.GetValue())
			}
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Gauge != nil:
				got[key] = m.Gauge.GetValue()
			}
		}
	}
	want := map[string]float64{
		"farmem_memnode_pages_used": 2, "farmem_memnode_pages_capacity": 1024,
		"farmem_memnode_page_ops_total{write}": 2, "farmem_memnode_requests_total{read}": 1,
		"farmem_memnode_errors_total{not_found}": 1, "farmem_memnode_connections": 1,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if got["farmem_memnode_bytes_in_total"] < 2*ps || got["farmem_memnode_bytes_out_total"] < ps {
		t.Error("byte counters not counting")
	}
	var sb strings.Builder
	for k := range got {
		sb.WriteString(k)
	}
	if !strings.Contains(sb.String(), "go_goroutines") {
		t.Error("go collector missing")
	}
}

// TestHandshakeDeadlineLifted checks that without an idle timeout the
// handshake's own deadline does not outlive the handshake.
func TestHandshakeDeadlineLifted(t *testing.T) {
	const timeout = 50 * time.Millisecond
	_, addr := start(t, Config{HandshakeTimeout: timeout})
	// On a loaded machine a handshake can itself take longer than the
	// timeout and be dropped; that is not what this test is about, so it
	// tries a few times.
	var c *client
	var err error
	for try := 0; try < 20; try++ {
		if c, err = attach(t, addr, "a", ""); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no handshake completed within %v in 20 tries: %v", timeout, err)
	}
	time.Sleep(3 * timeout)
	if st := c.stat(); st.Capacity == 0 {
		t.Fatal("stat failed")
	}
}

func TestHandshakeTimeout(t *testing.T) {
	_, addr := start(t, Config{HandshakeTimeout: 20 * time.Millisecond})
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Say nothing: the memnode hangs up.
	if _, err := nc.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent peer not dropped: %v", err)
	}
}
