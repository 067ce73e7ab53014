package remote

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmem/farmem/internal/wire"
	"github.com/farmem/farmem/store"
)

// Defaults of Config.
const (
	DefaultConnsPerNode = 4
	DefaultDialTimeout  = 5 * time.Second
	DefaultIOTimeout    = 30 * time.Second
	DefaultMinBackoff   = 10 * time.Millisecond
	DefaultMaxBackoff   = time.Second
)

// Config configures a Store.
type Config struct {
	// Nodes are the memnode addresses (host:port). Pages are spread over
	// them by a consistent hash of the page id, so the list must name the
	// same nodes in the same order every time a namespace is opened.
	Nodes []string
	// Namespace names the region on the memnodes (1 to 255 printable ASCII
	// bytes, no spaces).
	Namespace string
	// Token authenticates to the memnodes; empty if they need none.
	Token []byte
	// PageSize must equal the memnodes' page size (default 4096).
	PageSize int
	// ConnsPerNode is the size of each node's connection pool for Submit
	// (default 4); Do has a second pool of the same size, dialed on first
	// use. Every connection carries many requests at once; more
	// connections spread the work over more server goroutines.
	ConnsPerNode int
	// DialTimeout bounds a dial plus handshake (default 5 s).
	DialTimeout time.Duration
	// IOTimeout bounds writing one request frame; a memnode that stops
	// reading for this long is treated as failed (default 30 s). Reply
	// deadlines come from each call's context.
	IOTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between failed redials of a
	// connection (defaults 10 ms and 1 s); calls in between fail at once
	// with store.ErrUnavailable.
	MinBackoff, MaxBackoff time.Duration
	// SpinRead, when positive, makes a synchronous caller (Do) that reads
	// its own reply busy-poll the connection for up to this long before it
	// sleeps in the network poller. On a virtual machine whose vCPUs halt
	// when idle, waking one for the reply costs more than a loopback round
	// trip; spinning keeps the vCPU awake. It costs CPU while a reply is
	// due, so it is for latency-critical callers (a fault). 0: off.
	SpinRead time.Duration
	// OnEpochChange, if set, is called when a reconnect finds that node i
	// (an index into Nodes) has a new boot epoch: it restarted and holds
	// none of the pages it held. It runs on the calling goroutine of the
	// redial and must not call into the Store.
	OnEpochChange func(node int, old, new uint64)
}

// Store is a store.Store whose pages live on memnodes. It is safe for
// concurrent use.
type Store struct {
	cfg    Config
	nodes  []*node
	closed atomic.Bool
	wg     sync.WaitGroup // reader goroutines
}

var (
	_ store.Store   = (*Store)(nil)
	_ store.Statter = (*Store)(nil)
)

// New checks cfg, dials one connection to every node and returns the store;
// the rest of each pool is dialed on first use. An unreachable node gives an
// error wrapping store.ErrUnavailable; a refused handshake wraps
// ErrHandshake and the memnode's reason (for example wire.ErrBadToken).
func New(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Nodes) == 0 {
		return nil, fmt.Errorf("%w: no memnodes", ErrConfig)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = 4096
	}
	if cfg.PageSize < 1 || cfg.PageSize > wire.MaxBodyLimit/2 {
		return nil, fmt.Errorf("%w: page size %d", ErrConfig, cfg.PageSize)
	}
	if cfg.ConnsPerNode <= 0 {
		cfg.ConnsPerNode = DefaultConnsPerNode
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.IOTimeout == 0 {
		cfg.IOTimeout = DefaultIOTimeout
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if _, err := wire.AppendHello(nil, wire.Hello{PageSize: uint32(cfg.PageSize), Namespace: []byte(cfg.Namespace), Token: cfg.Token}); err != nil {
		return nil, fmt.Errorf("%w: namespace %q or token: %w", ErrConfig, cfg.Namespace, err)
	}
	s := &Store{cfg: cfg}
	seen := make(map[string]bool)
	for i, addr := range cfg.Nodes {
		if seen[addr] {
			return nil, fmt.Errorf("%w: memnode %s listed twice", ErrConfig, addr)
		}
		seen[addr] = true
		s.nodes = append(s.nodes, &node{s: s, index: i, addr: addr, slots: make([]slot, 2*cfg.ConnsPerNode)})
	}
	errs := make([]error, len(s.nodes))
	var wg sync.WaitGroup
	for i, n := range s.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := n.redial(ctx, &n.slots[0], true)
			if err != nil {
				errs[i] = err
				return
			}
			n.maxPages = (int(c.welcome.MaxBody) - 4) / (wire.EntryHeaderSize + cfg.PageSize)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// PageSize returns the page size.
func (s *Store) PageSize() int { return s.cfg.PageSize }

// Nodes returns the memnode addresses, in Config order.
func (s *Store) Nodes() []string { return append([]string(nil), s.cfg.Nodes...) }

// Epochs returns each node's boot epoch as of its latest handshake, in
// Config order. A change between two calls means that node restarted empty.
func (s *Store) Epochs() []uint64 {
	out := make([]uint64, len(s.nodes))
	for i, n := range s.nodes {
		out[i] = n.epoch.Load()
	}
	return out
}

// NodeOf returns the index (into Config.Nodes) of the node that holds page id.
func (s *Store) NodeOf(id store.PageID) int { return nodeOf(uint64(id), len(s.nodes)) }

// Submit starts c. Pages are grouped by node and cut into frames the nodes
// accept; each frame goes out on a pooled connection at once, and c
// completes when every frame is answered, failed or canceled. A frame that
// fails in transport sets store.ErrUnavailable on its pages and on c.Err.
func (s *Store) Submit(ctx context.Context, c *store.Call) {
	store.CheckDone(c)
	cs := &callState{call: c, ctx: ctx}
	cs.remaining.Store(1)
	defer cs.dec()
	if s.closed.Load() {
		cs.setErr(errClosed)
		return
	}
	if err := ctx.Err(); err != nil {
		cs.setErr(fmt.Errorf("remote: %w", err))
		return
	}
	switch c.Op {
	case store.OpRead, store.OpWrite, store.OpFree:
	default:
		cs.setErr(fmt.Errorf("%w: op %v", store.ErrBadPage, c.Op))
		return
	}
	bad := false
	if c.Op != store.OpFree {
		for i := range c.Pages {
			if len(c.Pages[i].Data) != s.cfg.PageSize {
				c.Pages[i].Err = errBadPage
				bad = true
			}
		}
	}
	if len(s.nodes) == 1 && !bad {
		s.dispatch(ctx, cs, s.nodes[0], nil, 0, len(c.Pages))
	} else {
		s.dispatchGrouped(ctx, cs, bad)
	}
	if ctx.Done() != nil && len(cs.reqs) > 0 {
		cs.stop = context.AfterFunc(ctx, cs.cancel)
	}
}

// Do submits c and waits for it, returning c.FirstErr(), like store.Do; a
// nil c.Done is replaced by a new buffered channel. When the whole call fits
// one frame to one node and nobody is reading that connection, the calling
// goroutine reads the reply itself (see read.go), which keeps a goroutine
// hand-off off the latency-critical path of a fault. Other calls go through
// Submit.
func (s *Store) Do(ctx context.Context, c *store.Call) error {
	return s.do(ctx, c, time.Time{})
}

// DoDeadline is Do with the call also ending at deadline, as if ctx had that
// deadline (the call's pages that are not answered by then fail with an
// error wrapping context.DeadlineExceeded), but without a runtime timer per
// call when the calling goroutine reads its own reply: it then watches the
// deadline itself, while it waits for the reply. A timer armed on a mostly
// idle process wakes an idle runtime thread to watch it (wakeNetPoller), a
// futex wake-up and a thread switch on the latency-critical path of a fault
// before its request is even sent. Calls read by another goroutine, and
// calls that do not fit one frame, get an ordinary timer.
func (s *Store) DoDeadline(ctx context.Context, c *store.Call, deadline time.Time) error {
	return s.do(ctx, c, deadline)
}

func (s *Store) do(ctx context.Context, c *store.Call, deadline time.Time) error {
	if c.Done == nil {
		c.Done = make(chan *store.Call, 1)
	}
	n := s.singleFrame(c)
	if n == nil || ctx.Err() != nil || s.closed.Load() {
		if !deadline.IsZero() {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, deadline)
			defer cancel()
		}
		s.Submit(ctx, c)
		<-c.Done
		return c.FirstErr()
	}
	store.CheckDone(c)
	cs := &callState{call: c, ctx: ctx, deadline: deadline}
	cs.remaining.Store(1)
	r := cs.newReq(n, nil, 0, len(c.Pages))
	s.send(ctx, r, true)
	cn := r.c
	if ctx.Done() != nil {
		cs.stop = context.AfterFunc(ctx, func() {
			cs.cancel()
			if cn != nil {
				cn.interruptOwner(cs)
			}
		})
	}
	reading := cn != nil && cn.takeRead(cs)
	if cn != nil && !reading {
		cn.ensureReader()
	}
	var timer *time.Timer
	if !reading && !deadline.IsZero() {
		// Someone else reads the reply: the deadline needs a timer.
		timer = time.AfterFunc(time.Until(deadline), cs.expire)
	}
	cs.dec() // the dispatch hold
	if reading {
		cn.readUntilDone(cs)
	}
	<-c.Done
	if timer != nil {
		timer.Stop()
	}
	return c.FirstErr()
}

// singleFrame returns the node of a call that is valid and fits one frame to
// one node, or nil.
func (s *Store) singleFrame(c *store.Call) *node {
	if len(c.Pages) == 0 || c.Op < store.OpRead || c.Op > store.OpFree {
		return nil
	}
	o := nodeOf(uint64(c.Pages[0].ID), len(s.nodes))
	n := s.nodes[o]
	if len(c.Pages) > n.maxPages {
		return nil
	}
	for i := range c.Pages {
		if c.Op != store.OpFree && len(c.Pages[i].Data) != s.cfg.PageSize {
			return nil
		}
		if i > 0 && len(s.nodes) > 1 && nodeOf(uint64(c.Pages[i].ID), len(s.nodes)) != o {
			return nil
		}
	}
	return n
}

// dispatchGrouped sorts the call's valid pages by node (a counting sort into
// one index slice) and dispatches each node's share.
func (s *Store) dispatchGrouped(ctx context.Context, cs *callState, skipBad bool) {
	pages := cs.call.Pages
	k := len(s.nodes)
	counts := make([]int, k+1)
	owner := make([]int32, len(pages))
	for i := range pages {
		if skipBad && pages[i].Err == errBadPage {
			owner[i] = -1
			continue
		}
		o := nodeOf(uint64(pages[i].ID), k)
		owner[i] = int32(o)
		counts[o+1]++
	}
	for i := 1; i <= k; i++ {
		counts[i] += counts[i-1]
	}
	idx := make([]int32, counts[k])
	fill := append([]int(nil), counts[:k]...)
	for i, o := range owner {
		if o >= 0 {
			idx[fill[o]] = int32(i)
			fill[o]++
		}
	}
	for o := 0; o < k; o++ {
		if counts[o] < counts[o+1] {
			s.dispatch(ctx, cs, s.nodes[o], idx, counts[o], counts[o+1])
		}
	}
}

// dispatch sends pages [lo, hi) (through idx) to node n in frames of at most
// n.maxPages pages.
func (s *Store) dispatch(ctx context.Context, cs *callState, n *node, idx []int32, lo, hi int) {
	for lo < hi {
		end := min(hi, lo+n.maxPages)
		r := cs.newReq(n, idx, lo, end)
		lo = end
		s.send(ctx, r, false)
	}
}

// send puts r on a connection of its node, retrying once on another
// connection if the first turns out to have failed.
func (s *Store) send(ctx context.Context, r *req, sync bool) {
	var err error
	for try := 0; try < 2; try++ {
		var c *conn
		if c, err = r.n.get(ctx, sync); err != nil {
			break
		}
		if err = c.send(r); err == nil {
			if !sync {
				c.ensureReader()
			}
			return
		}
	}
	r.fail(err)
}

// Stat sums capacity and use over all nodes. Pages counts every namespace's
// pages, because the nodes' capacity is shared by all namespaces: Capacity
// minus Pages is the room left.
func (s *Store) Stat(ctx context.Context) (store.Stats, error) {
	ns, err := s.NodeStats(ctx)
	var st store.Stats
	for _, n := range ns {
		st.Capacity += n.Capacity
		st.Pages += n.Used
	}
	return st, err
}

// NodeStat is one node's answer to a stat request.
type NodeStat struct {
	Addr string
	// Capacity and Used count the node's pages over all namespaces;
	// NamespacePages counts this store's namespace.
	Capacity, Used, NamespacePages uint64
	Epoch                          uint64
}

// NodeStats asks every node for its stat, in Config order.
func (s *Store) NodeStats(ctx context.Context) ([]NodeStat, error) {
	if s.closed.Load() {
		return nil, errClosed
	}
	out := make([]NodeStat, len(s.nodes))
	errs := make([]error, len(s.nodes))
	var wg sync.WaitGroup
	for i, n := range s.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := n.statOnce(ctx)
			out[i] = NodeStat{Addr: n.addr, Capacity: st.Capacity, Used: st.Used, NamespacePages: st.NamespacePages, Epoch: st.Epoch}
			errs[i] = err
		}()
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

func (n *node) statOnce(ctx context.Context) (wire.Stat, error) {
	c, err := n.get(ctx, false)
	if err != nil {
		return wire.Stat{}, err
	}
	r := &req{n: n, statDone: make(chan error, 1)}
	if err := c.send(r); err != nil {
		return wire.Stat{}, err
	}
	c.ensureReader()
	select {
	case err := <-r.statDone:
		return r.stat, err
	case <-ctx.Done():
		if c.remove(r.id) {
			return wire.Stat{}, fmt.Errorf("remote: stat of memnode %s: %w", n.addr, ctx.Err())
		}
		err := <-r.statDone
		return r.stat, err
	}
}

// Close closes every connection; calls in flight complete with
// store.ErrClosed. It waits for the connections' goroutines to end.
func (s *Store) Close() error {
	s.closed.Store(true)
	for _, n := range s.nodes {
		for i := range n.slots {
			sl := &n.slots[i]
			sl.mu.Lock()
			if c := sl.c.Load(); c != nil {
				c.fail(errClosed)
			}
			sl.mu.Unlock()
		}
	}
	s.wg.Wait()
	return nil
}
