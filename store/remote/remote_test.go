package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/farmem/farmem/internal/wire"
	"github.com/farmem/farmem/memnode"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/storetest"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const ps = 4096

// node is an embedded memnode on a loopback port that can be stopped and
// restarted on the same address.
type testNode struct {
	t    *testing.T
	cfg  memnode.Config
	addr string
	srv  *memnode.Server
	done chan error
}

func startNode(t *testing.T, cfg memnode.Config) *testNode {
	t.Helper()
	if cfg.Capacity == 0 {
		cfg.Capacity = 4096 * ps
	}
	n := &testNode{t: t, cfg: cfg, addr: "127.0.0.1:0"}
	n.start()
	t.Cleanup(n.stop)
	return n
}

func (n *testNode) start() {
	n.t.Helper()
	srv, err := memnode.New(n.cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	var l net.Listener
	for try := 0; ; try++ { // a restart may race the old socket's release
		if l, err = net.Listen("tcp", n.addr); err == nil || try == 50 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		n.t.Fatal(err)
	}
	n.addr, n.srv, n.done = l.Addr().String(), srv, make(chan error, 1)
	go func() { n.done <- srv.Serve(l) }()
}

func (n *testNode) stop() {
	if n.srv == nil {
		return
	}
	n.srv.Close()
	<-n.done
	n.srv = nil
}

func open(t *testing.T, cfg Config) *Store {
	t.Helper()
	if cfg.Namespace == "" {
		cfg.Namespace = "test"
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func pages(ids []store.PageID, version uint64) []store.Page {
	out := make([]store.Page, len(ids))
	for i, id := range ids {
		d := make([]byte, ps)
		storetest.Fill(d, uint64(id), version)
		out[i] = store.Page{ID: id, Data: d, Sum: store.Checksum(d)}
	}
	return out
}

func blank(ids []store.PageID) []store.Page {
	out := make([]store.Page, len(ids))
	for i, id := range ids {
		out[i] = store.Page{ID: id, Data: make([]byte, ps)}
	}
	return out
}

func seq(lo, hi int) []store.PageID {
	var ids []store.PageID
	for i := lo; i < hi; i++ {
		ids = append(ids, store.PageID(i))
	}
	return ids
}

func TestConformanceOneNode(t *testing.T) {
	n := startNode(t, memnode.Config{})
	i := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		i++
		return open(t, Config{Nodes: []string{n.addr}, Namespace: fmt.Sprintf("conf-%d", i)})
	})
}

func TestConformanceThreeNodes(t *testing.T) {
	a, b, c := startNode(t, memnode.Config{}), startNode(t, memnode.Config{}), startNode(t, memnode.Config{})
	i := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		i++
		return open(t, Config{Nodes: []string{a.addr, b.addr, c.addr}, Namespace: fmt.Sprintf("conf-%d", i)})
	})
}

// TestSpreadAndBigBatches writes a batch larger than one frame over three
// nodes and checks placement, the round trip and Stat.
func TestSpreadAndBigBatches(t *testing.T) {
	nodes := []*testNode{startNode(t, memnode.Config{MaxBody: 16 * (ps + 16)}), startNode(t, memnode.Config{}), startNode(t, memnode.Config{})}
	s := open(t, Config{Nodes: []string{nodes[0].addr, nodes[1].addr, nodes[2].addr}})
	ctx := context.Background()
	ids := seq(0, 600)
	if err := store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: pages(ids, 1)}); err != nil {
		t.Fatal(err)
	}
	rd := blank(ids)
	if err := store.Do(ctx, s, &store.Call{Op: store.OpRead, Pages: rd}); err != nil {
		t.Fatal(err)
	}
	for _, p := range rd {
		if err := storetest.Check(p.Data, uint64(p.ID), 1); err != nil {
			t.Fatalf("page %d: %v", p.ID, err)
		}
	}
	per := make([]uint64, 3)
	for _, id := range ids {
		per[s.NodeOf(id)]++
	}
	for i, n := range nodes {
		if got := n.srv.Stats().Used; got != per[i] || got < 150 {
			t.Errorf("node %d holds %d pages, placement says %d", i, got, per[i])
		}
	}
	st, err := s.Stat(ctx)
	if err != nil || st.Pages != 600 || st.Capacity != 3*4096 {
		t.Fatalf("Stat = %+v, %v", st, err)
	}
	if err := store.Do(ctx, s, &store.Call{Op: store.OpFree, Pages: blank(ids)}); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Stat(ctx); st.Pages != 0 {
		t.Fatalf("after free: %+v", st)
	}
}

func TestJumpHashStable(t *testing.T) {
	// Growing from n to n+1 nodes moves about 1/(n+1) of the pages, and only
	// onto the new node.
	const pagesN = 20000
	for n := 1; n < 8; n++ {
		moved := 0
		for id := uint64(0); id < pagesN; id++ {
			a, b := nodeOf(id, n), nodeOf(id, n+1)
			if a != b {
				if b != n {
					t.Fatalf("page %d moved from %d to old node %d", id, a, b)
				}
				moved++
			}
		}
		want := pagesN / (n + 1)
		if moved < want*8/10 || moved > want*12/10 {
			t.Errorf("n=%d: %d moved, want about %d", n, moved, want)
		}
	}
}

func TestNamespaceIsolation(t *testing.T) {
	n := startNode(t, memnode.Config{})
	a := open(t, Config{Nodes: []string{n.addr}, Namespace: "a"})
	b := open(t, Config{Nodes: []string{n.addr}, Namespace: "b"})
	ctx := context.Background()
	if err := store.Do(ctx, a, &store.Call{Op: store.OpWrite, Pages: pages(seq(0, 4), 1)}); err != nil {
		t.Fatal(err)
	}
	if err := store.Do(ctx, b, &store.Call{Op: store.OpRead, Pages: blank(seq(0, 1))}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("b reads a's page: %v", err)
	}
}

func TestAuth(t *testing.T) {
	n := startNode(t, memnode.Config{Token: []byte("sesame")})
	for _, tok := range []string{"", "open"} {
		_, err := New(context.Background(), Config{Nodes: []string{n.addr}, Namespace: "x", Token: []byte(tok)})
		if !errors.Is(err, ErrHandshake) || !errors.Is(err, wire.ErrBadToken) {
			t.Errorf("token %q: %v", tok, err)
		}
	}
	s := open(t, Config{Nodes: []string{n.addr}, Token: []byte("sesame")})
	if err := store.Do(context.Background(), s, &store.Call{Op: store.OpWrite, Pages: pages(seq(0, 1), 0)}); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigAndUnreachable(t *testing.T) {
	ctx := context.Background()
	for _, cfg := range []Config{{}, {Nodes: []string{"x:1"}}, {Nodes: []string{"x:1"}, Namespace: "has space"}, {Nodes: []string{"a:1", "a:1"}, Namespace: "n"}} {
		if _, err := New(ctx, cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("New(%+v) = %v, want ErrConfig", cfg, err)
		}
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := l.Addr().String()
	l.Close()
	if _, err := New(ctx, Config{Nodes: []string{addr}, Namespace: "n", DialTimeout: time.Second}); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("unreachable node: %v", err)
	}
	n := startNode(t, memnode.Config{PageSize: 8192, Capacity: 1 << 20})
	if _, err := New(ctx, Config{Nodes: []string{n.addr}, Namespace: "n"}); !errors.Is(err, wire.ErrBadPageSize) {
		t.Fatalf("page size mismatch: %v", err)
	}
}

func TestFullThenFree(t *testing.T) {
	n := startNode(t, memnode.Config{Capacity: 8 * ps})
	s := open(t, Config{Nodes: []string{n.addr}})
	ctx := context.Background()
	if err := store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: pages(seq(0, 6), 1)}); err != nil {
		t.Fatal(err)
	}
	c := &store.Call{Op: store.OpWrite, Pages: pages(seq(6, 10), 1)}
	store.Do(ctx, s, c)
	if c.Err != nil || c.Pages[1].Err != nil || !errors.Is(c.Pages[2].Err, store.ErrFull) || !errors.Is(c.Pages[3].Err, store.ErrFull) {
		t.Fatalf("writing past capacity: %v / %v %v %v", c.Err, c.Pages[1].Err, c.Pages[2].Err, c.Pages[3].Err)
	}
	if err := store.Do(ctx, s, &store.Call{Op: store.OpFree, Pages: blank(seq(0, 2))}); err != nil {
		t.Fatal(err)
	}
	if err := store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: pages(seq(8, 10), 1)}); err != nil {
		t.Fatalf("after free: %v", err)
	}
	rd := blank(seq(2, 10))
	if err := store.Do(ctx, s, &store.Call{Op: store.OpRead, Pages: rd}); err != nil {
		t.Fatalf("a page was lost at capacity: %v", err)
	}
}

func TestCorruptPage(t *testing.T) {
	n := startNode(t, memnode.Config{})
	s := open(t, Config{Nodes: []string{n.addr}, Namespace: "c"})
	ctx := context.Background()
	store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: pages(seq(0, 2), 1)})
	n.srv.CorruptPage("c", 1)
	c := &store.Call{Op: store.OpRead, Pages: blank(seq(0, 2))}
	store.Do(ctx, s, c)
	if c.Pages[0].Err != nil || !errors.Is(c.Pages[1].Err, store.ErrCorrupt) {
		t.Fatalf("corrupt page: %v %v", c.Pages[0].Err, c.Pages[1].Err)
	}
}

func TestBadPageBuffer(t *testing.T) {
	n := startNode(t, memnode.Config{})
	s := open(t, Config{Nodes: []string{n.addr}})
	p := pages(seq(0, 3), 1)
	p[1].Data = p[1].Data[:100]
	c := &store.Call{Op: store.OpWrite, Pages: p}
	store.Do(context.Background(), s, c)
	if c.Pages[0].Err != nil || !errors.Is(c.Pages[1].Err, store.ErrBadPage) || c.Pages[2].Err != nil {
		t.Fatalf("%v %v %v", c.Pages[0].Err, c.Pages[1].Err, c.Pages[2].Err)
	}
}

// TestReconnectAndEpoch stops the memnode under a store, checks that calls
// fail with ErrUnavailable, restarts it on the same address and checks that
// the store redials and reports the new epoch.
func TestReconnectAndEpoch(t *testing.T) {
	n := startNode(t, memnode.Config{})
	var changes atomic.Int32
	s := open(t, Config{Nodes: []string{n.addr}, ConnsPerNode: 2, MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		OnEpochChange: func(int, uint64, uint64) { changes.Add(1) }})
	ctx := context.Background()
	if err := store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: pages(seq(0, 4), 1)}); err != nil {
		t.Fatal(err)
	}
	epoch := s.Epochs()[0]
	if epoch != n.srv.Epoch() {
		t.Fatalf("epoch %x, memnode says %x", epoch, n.srv.Epoch())
	}
	n.stop()
	for i := 0; i < 4; i++ {
		if err := store.Do(ctx, s, &store.Call{Op: store.OpRead, Pages: blank(seq(0, 1))}); !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("read from a stopped memnode: %v", err)
		}
	}
	n.start()
	var err error
	for try := 0; try < 200; try++ { // wait out the backoff
		if err = store.Do(ctx, s, &store.Call{Op: store.OpRead, Pages: blank(seq(0, 1))}); !errors.Is(err, store.ErrUnavailable) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("read from the restarted (empty) memnode: %v", err)
	}
	if got := s.Epochs()[0]; got == epoch || got != n.srv.Epoch() || changes.Load() == 0 {
		t.Fatalf("epoch after restart %x (was %x, memnode %x), %d changes", got, epoch, n.srv.Epoch(), changes.Load())
	}
}

// silentNode accepts connections, answers their handshakes, reads the first
// request of each and holds it until released; then it answers that request
// (a late answer) and every later read, with pages full of 0xEE.
func silentNode(t *testing.T) (addr string, release func()) {
	addr, release, _ = silentNodeKill(t)
	return addr, release
}

// silentNodeKill is silentNode with a kill function that drops the
// connection abruptly.
func silentNodeKill(t *testing.T) (addr string, release, kill func()) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rel := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	requested := make(chan struct{}, 1)
	serve := func(nc net.Conn) {
		defer wg.Done()
		defer nc.Close()
		var hdr [wire.HeaderSize]byte
		if _, _, err := wire.ReadFrame(nc, &hdr, nil, 0); err != nil {
			return
		}
		nc.Write(wire.AppendWelcome(nil, wire.Welcome{Epoch: 1, Capacity: 10, MaxBody: 1 << 20, PageSize: ps}))
		junk := bytes.Repeat([]byte{0xEE}, ps)
		for first := true; ; first = false {
			h, body, err := wire.ReadFrame(nc, &hdr, nil, 0)
			if err != nil {
				return
			}
			if first {
				select {
				case requested <- struct{}{}:
				default:
				}
				<-rel
			}
			ids, _ := wire.ParseIDs(body)
			f := wire.StartFrame(nil, wire.TReadReply, h.ID)
			f = wire.AppendCount(f, ids.Len())
			for i := 0; i < ids.Len(); i++ {
				f = wire.AppendReadEntry(f, ids.At(i), wire.OK, wire.Checksum(junk), junk)
			}
			wire.EndFrame(f, 0)
			nc.Write(f)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			wg.Add(1)
			go serve(nc)
		}
	}()
	closeAll := func() {
		mu.Lock()
		for _, nc := range conns {
			nc.Close()
		}
		mu.Unlock()
	}
	t.Cleanup(func() { once.Do(func() { close(rel) }); l.Close(); closeAll(); wg.Wait() })
	// kill waits until a request is held, then drops every connection.
	kill = func() {
		<-requested
		closeAll()
	}
	return l.Addr().String(), func() { once.Do(func() { close(rel) }) }, kill
}

// TestConnLossFailsInFlight drops the connection under a pending call: the
// call fails with ErrUnavailable (and does not hang).
func TestConnLossFailsInFlight(t *testing.T) {
	addr, _, kill := silentNodeKill(t)
	s, err := New(context.Background(), Config{Nodes: []string{addr}, Namespace: "k", ConnsPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := &store.Call{Op: store.OpRead, Pages: blank(seq(0, 2)), Done: make(chan *store.Call, 1)}
	s.Submit(context.Background(), c)
	kill()
	<-c.Done
	if !errors.Is(c.Err, store.ErrUnavailable) || !errors.Is(c.Pages[1].Err, store.ErrUnavailable) {
		t.Fatalf("call on a lost connection: %v / %v", c.Err, c.Pages[1].Err)
	}
}

func TestDeadlineDiscardsLateAnswer(t *testing.T) {
	addr, release := silentNode(t)
	s, err := New(context.Background(), Config{Nodes: []string{addr}, Namespace: "d", ConnsPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	buf := make([]byte, ps)
	c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: 3, Data: buf}}}
	if err := store.Do(ctx, s, c); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	release()
	// The second read's answer follows the late answer on the same
	// connection, so once it is in, the late answer has been handled.
	c2 := &store.Call{Op: store.OpRead, Pages: blank(seq(4, 5))}
	if err := store.Do(context.Background(), s, c2); err != nil || c2.Pages[0].Data[0] != 0xEE {
		t.Fatalf("read after the late answer: %v", err)
	}
	if !bytes.Equal(buf, make([]byte, ps)) {
		t.Fatal("a late answer was written into the caller's buffer")
	}
}

func TestClosedFailsInFlight(t *testing.T) {
	addr, release := silentNode(t)
	defer release()
	s, err := New(context.Background(), Config{Nodes: []string{addr}, Namespace: "d", ConnsPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := &store.Call{Op: store.OpRead, Pages: blank(seq(0, 1)), Done: make(chan *store.Call, 1)}
	s.Submit(context.Background(), c)
	s.Close()
	<-c.Done
	if !errors.Is(c.Err, store.ErrClosed) {
		t.Fatalf("in-flight call after Close: %v", c.Err)
	}
}

// TestPipelinedRace keeps many calls in flight from many goroutines over a
// small pool and checks every byte (run with -race).
func TestPipelinedRace(t *testing.T) {
	nodes := []*testNode{startNode(t, memnode.Config{}), startNode(t, memnode.Config{})}
	s := open(t, Config{Nodes: []string{nodes[0].addr, nodes[1].addr}, ConnsPerNode: 2})
	ctx := context.Background()
	const workers, rounds, batch = 8, 30, 8
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids := seq(w*batch, (w+1)*batch)
			done := make(chan *store.Call, 2)
			for r := 0; r < rounds; r++ {
				wc := &store.Call{Op: store.OpWrite, Pages: pages(ids, uint64(r)), Done: done}
				s.Submit(ctx, wc)
				if err := (<-done).FirstErr(); err != nil {
					errc <- err
					return
				}
				rc := &store.Call{Op: store.OpRead, Pages: blank(ids), Done: done}
				rc2 := &store.Call{Op: store.OpRead, Pages: blank(ids), Done: done}
				s.Submit(ctx, rc)
				s.Submit(ctx, rc2)
				for k := 0; k < 2; k++ {
					c := <-done
					if err := c.FirstErr(); err != nil {
						errc <- err
						return
					}
					for _, p := range c.Pages {
						if err := storetest.Check(p.Data, uint64(p.ID), uint64(r)); err != nil {
							errc <- fmt.Errorf("page %d round %d: %w", p.ID, r, err)
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
}

// TestReadAllocsPerCallNotPerPage checks that a read's allocations do not
// grow with its page count.
func TestReadAllocsPerCallNotPerPage(t *testing.T) {
	n := startNode(t, memnode.Config{})
	s := open(t, Config{Nodes: []string{n.addr}, ConnsPerNode: 1})
	ctx := context.Background()
	store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: pages(seq(0, 64), 1)})
	measure := func(k int) float64 {
		c := &store.Call{Op: store.OpRead, Pages: blank(seq(0, k)), Done: make(chan *store.Call, 1)}
		return testing.AllocsPerRun(50, func() {
			c.Reset()
			s.Submit(ctx, c)
			<-c.Done
			if err := c.FirstErr(); err != nil {
				t.Fatal(err)
			}
		})
	}
	one, many := measure(1), measure(64)
	t.Logf("allocations per read call: 1 page %.1f, 64 pages %.1f", one, many)
	// The server shares the process and pools its reply buffers (which
	// -race partly disables), so allow a few; a per-page cost would be 63.
	if many > one+8 || one > 4 {
		t.Fatalf("read allocations grow with pages: 1 page %.1f, 64 pages %.1f", one, many)
	}
}

func TestRawRTT(t *testing.T) {
	n := startNode(t, memnode.Config{Token: []byte("k")})
	rtt, err := RawRTT(context.Background(), n.addr, "rtt", []byte("k"), 20)
	if err != nil || len(rtt) != 20 || rtt[0] <= 0 {
		t.Fatalf("RawRTT = %v, %v", rtt, err)
	}
	if n.srv.Stats().Used != 0 {
		t.Fatal("RawRTT left its page behind")
	}
	if _, err := RawRTT(context.Background(), n.addr, "rtt", []byte("bad"), 1); !errors.Is(err, wire.ErrBadToken) {
		t.Fatalf("RawRTT with a bad token: %v", err)
	}
}
