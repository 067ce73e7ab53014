package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/farmem/farmem/memnode"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/storetest"
)

// doStore routes every call through Store.Do (on a goroutine, so that Submit
// stays asynchronous), to run the conformance suite over the path where the
// caller reads its own reply; with deadline, through Store.DoDeadline with
// a distant deadline.
type doStore struct {
	*Store
	deadline bool
}

func (d doStore) Submit(ctx context.Context, c *store.Call) {
	store.CheckDone(c)
	// Do waits on Done itself, and callers may share one Done channel
	// among calls: run Do on a copy with a private channel (the copy shares
	// the pages) and forward the completion.
	cp := *c
	cp.Done = make(chan *store.Call, 1)
	go func() {
		if d.deadline {
			d.Store.DoDeadline(ctx, &cp, time.Now().Add(time.Minute))
		} else {
			d.Store.Do(ctx, &cp)
		}
		c.Err = cp.Err
		c.Done <- c
	}()
}

// runDoConformance runs the conformance suite over doStore on one memnode
// started with nc, each store opened with c and its own namespace.
func runDoConformance(t *testing.T, nc memnode.Config, c Config, deadline bool) {
	n := startNode(t, nc)
	i := 0
	storetest.Run(t, func(t *testing.T) store.Store {
		i++
		c := c
		c.Nodes, c.Namespace, c.ConnsPerNode = []string{n.addr}, fmt.Sprintf("do-%d", i), 1
		return doStore{open(t, c), deadline}
	})
}

func TestConformanceDo(t *testing.T) { runDoConformance(t, memnode.Config{}, Config{}, false) }

// TestConformanceDoSpinning is TestConformanceDo with both sides
// busy-polling for their reads (Config.SpinRead, memnode.Config.SpinRead).
func TestConformanceDoSpinning(t *testing.T) {
	runDoConformance(t, memnode.Config{SpinRead: 20 * time.Microsecond}, Config{SpinRead: 50 * time.Microsecond}, false)
}

// TestDoConcurrent mixes synchronous callers (who compete for the read role
// of one connection per node) with asynchronous ones, under -race.
func TestDoConcurrent(t *testing.T) {
	nodes := []*testNode{startNode(t, memnode.Config{}), startNode(t, memnode.Config{})}
	s := open(t, Config{Nodes: []string{nodes[0].addr, nodes[1].addr}, ConnsPerNode: 1})
	ctx := context.Background()
	var wg sync.WaitGroup
	errc := make(chan error, 16)
	for w := 0; w < 12; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < 60; r++ {
				ids := seq(w*4, w*4+1+r%4)
				wc := &store.Call{Op: store.OpWrite, Pages: pages(ids, uint64(r))}
				rc := &store.Call{Op: store.OpRead, Pages: blank(ids)}
				var err error
				if w%3 == 0 {
					err = store.Do(ctx, s, wc)
				} else {
					err = s.Do(ctx, wc)
				}
				if err == nil {
					if w%2 == 0 {
						err = s.Do(ctx, rc)
					} else {
						err = store.Do(ctx, s, rc)
					}
				}
				if err != nil {
					errc <- err
					return
				}
				for _, p := range rc.Pages {
					if err := storetest.Check(p.Data, uint64(p.ID), uint64(r)); err != nil {
						errc <- fmt.Errorf("worker %d round %d page %d: %w", w, r, p.ID, err)
						return
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

func TestDoDeadline(t *testing.T) {
	addr, release := silentNode(t)
	s, err := New(context.Background(), Config{Nodes: []string{addr}, Namespace: "d", ConnsPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	buf := make([]byte, ps)
	if err := s.Do(ctx, &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: 3, Data: buf}}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do past its deadline: %v", err)
	}
	release()
	// The late answer comes first on the connection and is discarded.
	c2 := &store.Call{Op: store.OpRead, Pages: blank(seq(4, 5))}
	if err := s.Do(context.Background(), c2); err != nil || c2.Pages[0].Data[0] != 0xEE {
		t.Fatalf("Do after the late answer: %v", err)
	}
	for _, b := range buf {
		if b != 0 {
			t.Fatal("a late answer was written into the caller's buffer")
		}
	}
}

func TestDoConnLoss(t *testing.T) {
	addr, _, kill := silentNodeKill(t)
	s, err := New(context.Background(), Config{Nodes: []string{addr}, Namespace: "k", ConnsPerNode: 1, MinBackoff: time.Hour, MaxBackoff: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	done := make(chan error, 1)
	go func() { done <- s.Do(context.Background(), &store.Call{Op: store.OpRead, Pages: blank(seq(0, 1))}) }()
	kill()
	if err := <-done; !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Do on a lost connection: %v", err)
	}
}

func TestDoClose(t *testing.T) {
	addr, release := silentNode(t)
	defer release()
	s, err := New(context.Background(), Config{Nodes: []string{addr}, Namespace: "c", ConnsPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Do(context.Background(), &store.Call{Op: store.OpRead, Pages: blank(seq(0, 1))}) }()
	time.Sleep(5 * time.Millisecond) // let the caller take the read role (either way must work)
	s.Close()
	if err := <-done; !errors.Is(err, store.ErrClosed) && !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Do across Close: %v", err)
	}
}

// TestIdleConnClosedByMemnode lets the memnode close idle connections and
// checks that the next call notices before sending and redials, instead of
// failing.
func TestIdleConnClosedByMemnode(t *testing.T) {
	old := idleCheck
	idleCheck = 10 * time.Millisecond
	defer func() { idleCheck = old }()
	n := startNode(t, memnode.Config{IdleTimeout: 20 * time.Millisecond})
	s := open(t, Config{Nodes: []string{n.addr}, ConnsPerNode: 1})
	ctx := context.Background()
	if err := s.Do(ctx, &store.Call{Op: store.OpWrite, Pages: pages(seq(0, 1), 1)}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		time.Sleep(80 * time.Millisecond) // past the memnode's idle timeout
		if err := s.Do(ctx, &store.Call{Op: store.OpRead, Pages: blank(seq(0, 1))}); err != nil {
			t.Fatalf("call %d after the memnode dropped an idle connection: %v", i, err)
		}
		if err := store.Do(ctx, s, &store.Call{Op: store.OpRead, Pages: blank(seq(0, 1))}); err != nil {
			t.Fatalf("async call %d: %v", i, err)
		}
	}
}

// TestConformanceDoDeadline runs the suite over Store.DoDeadline.
func TestConformanceDoDeadline(t *testing.T) { runDoConformance(t, memnode.Config{}, Config{}, true) }

// TestDoDeadlineOwnDeadline: DoDeadline's deadline ends a call whose caller
// reads its own reply (with and without SpinRead) like a context deadline,
// a late answer is discarded, and the connection serves the next call.
func TestDoDeadlineOwnDeadline(t *testing.T) {
	for _, spinRead := range []time.Duration{0, 200 * time.Microsecond} {
		t.Run(fmt.Sprint("spin=", spinRead), func(t *testing.T) {
			addr, release := silentNode(t)
			s, err := New(context.Background(), Config{Nodes: []string{addr}, Namespace: "d", ConnsPerNode: 1, SpinRead: spinRead})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			buf := make([]byte, ps)
			c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: 3, Data: buf}}}
			if err := s.DoDeadline(context.Background(), c, time.Now().Add(30*time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("DoDeadline past its deadline: %v", err)
			}
			// A deadline already past fails at once.
			c1 := &store.Call{Op: store.OpRead, Pages: blank(seq(6, 7))}
			if err := s.DoDeadline(context.Background(), c1, time.Now().Add(-time.Millisecond)); !errors.Is(err, context.DeadlineExceeded) && err != nil {
				t.Fatalf("DoDeadline with a past deadline: %v", err)
			}
			release()
			c2 := &store.Call{Op: store.OpRead, Pages: blank(seq(4, 5))}
			if err := s.DoDeadline(context.Background(), c2, time.Now().Add(time.Minute)); err != nil || c2.Pages[0].Data[0] != 0xEE {
				t.Fatalf("DoDeadline after the late answer: %v", err)
			}
			for _, b := range buf {
				if b != 0 {
					t.Fatal("a late answer was written into the caller's buffer")
				}
			}
		})
	}
}

// TestDoDeadlineCancel: cancelling the context of a DoDeadline call still
// interrupts its reading caller.
func TestDoDeadlineCancel(t *testing.T) {
	addr, release := silentNode(t)
	defer release()
	s, err := New(context.Background(), Config{Nodes: []string{addr}, Namespace: "d", ConnsPerNode: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	c := &store.Call{Op: store.OpRead, Pages: blank(seq(3, 4))}
	if err := s.DoDeadline(ctx, c, time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Fatalf("DoDeadline after its context was cancelled: %v", err)
	}
}
