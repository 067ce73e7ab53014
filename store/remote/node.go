package remote

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmem/farmem/store"
)

// node is one memnode and its pool of connections.
type node struct {
	s        *Store
	index    int
	addr     string
	epoch    atomic.Uint64
	maxPages int // pages per request frame, from the first Welcome
	slots    []slot
	rr       atomic.Uint32
}

// slot holds one pooled connection and its redial state.
type slot struct {
	mu      sync.Mutex
	c       atomic.Pointer[conn]
	retryAt time.Time
	backoff time.Duration
	lastErr error
}

// get returns a healthy connection of the asynchronous half of the pool
// (connections with a resident reader goroutine), or with sync of the
// synchronous half (connections read by their callers, see read.go): the
// next slot's in round-robin order (for sync, preferably one that nobody
// is reading), redialing it if it failed (unless it is backing off after a
// failed dial), or else any other healthy one.
func (n *node) get(ctx context.Context, sync bool) (*conn, error) {
	slots := n.slots[:len(n.slots)/2]
	if sync {
		slots = n.slots[len(n.slots)/2:]
	}
	k := uint32(len(slots))
	start := n.rr.Add(1)
	if sync {
		for i := uint32(0); i < k; i++ {
			if c := slots[(start+i)%k].c.Load(); c != nil && c.idle() {
				start += i
				break
			}
		}
	}
	sl := &slots[start%k]
	if c := sl.c.Load(); c != nil && c.healthy() {
		if !c.stale() {
			return c, nil
		}
		c.fail(fmt.Errorf("remote: memnode %s closed an idle connection: %w", n.addr, store.ErrUnavailable))
	}
	c, err := n.redial(ctx, sl, !sync)
	if err == nil {
		return c, nil
	}
	for i := uint32(1); i < k; i++ {
		if c := slots[(start+i)%k].c.Load(); c != nil && c.healthy() {
			return c, nil
		}
	}
	return nil, err
}

// redial replaces the connection of sl, with exponential backoff between
// failed dials so that a dead memnode costs callers a fast error, not a
// dial timeout each.
func (n *node) redial(ctx context.Context, sl *slot, resident bool) (*conn, error) {
	sl.mu.Lock()
	defer sl.mu.Unlock()
	if c := sl.c.Load(); c != nil && c.healthy() {
		return c, nil
	}
	if n.s.closed.Load() {
		return nil, errClosed
	}
	if time.Now().Before(sl.retryAt) {
		return nil, sl.lastErr
	}
	c, err := n.dial(ctx, resident)
	if err != nil {
		cfg := &n.s.cfg
		sl.backoff = min(max(2*sl.backoff, cfg.MinBackoff), cfg.MaxBackoff)
		sl.retryAt = time.Now().Add(sl.backoff)
		sl.lastErr = err
		return nil, err
	}
	if n.s.closed.Load() {
		c.fail(errClosed)
		return nil, errClosed
	}
	sl.backoff, sl.lastErr = 0, nil
	old := n.epoch.Swap(c.welcome.Epoch)
	if old != 0 && old != c.welcome.Epoch && n.s.cfg.OnEpochChange != nil {
		n.s.cfg.OnEpochChange(n.index, old, c.welcome.Epoch)
	}
	sl.c.Store(c)
	return c, nil
}
