package resilient

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/health"
)

// node drives the health machine of one memnode: it feeds it what the
// calls, probes and resyncs observe, publishes its routing decision for the
// hot path, and starts the background work it asks for.
type node struct {
	s         *Store
	index     int
	addr      string
	probePage store.PageID
	epochCh   chan uint64

	mu        sync.Mutex // serializes m
	m         *health.Machine
	forceFull bool // the next resync repopulates everything (no record of what the node holds)
	route     atomic.Pointer[route]

	resyncGen atomic.Uint64 // bumped by each resync start; older resyncs stop
	resyncMu  sync.Mutex    // held by the running resync or repair
	// fullEpoch and fullCursor say how far a full resync of the node at
	// that boot epoch got; owned by the holder of resyncMu.
	fullEpoch, fullCursor uint64
	suspectOut            atomic.Bool // a suspect probe is outstanding
	nextRepair            time.Duration
	downs                 atomic.Uint64 // times marked down
}

// route is the published routing decision of a node.
type route struct {
	state                   health.State
	readRemote, wait, write bool
	deadline                time.Duration
}

func (n *node) publish(d health.Decision) {
	r := route{
		state:      d.State,
		readRemote: d.ReadRemote && !n.forceFull,
		wait:       d.WaitDeadline && !n.forceFull,
		write:      d.WriteRemote,
		deadline:   d.Deadline,
	}
	if old := n.route.Load(); old != nil && *old == r {
		return // most events change nothing: no allocation for them
	}
	p := new(route) // r itself stays on the stack
	*p = r
	n.route.Store(p)
}

func (n *node) routing() *route { return n.route.Load() }

// step feeds one event (its time is set here) and acts on the decision.
func (n *node) step(ev health.Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.stepLocked(ev)
}

func (n *node) stepLocked(ev health.Event) {
	ev.At = n.s.now()
	d := n.m.Step(ev)
	if d.Changed {
		n.s.ctr.transitions.Add(1)
		if d.State == health.Down {
			n.s.ctr.downs.Add(1)
			n.downs.Add(1)
		}
	}
	n.publish(d)
	if d.StartProbe {
		n.s.bg.Add(1)
		go n.probe()
	}
	if d.StartResync {
		full := d.FullResync || n.forceFull
		gen := n.resyncGen.Add(1)
		n.s.bg.Add(1)
		go n.resync(gen, full, true)
	}
}

// loop ticks the machine, takes epoch notices, and starts the probes of a
// suspect node and the repair of a healthy node's outage pages.
func (n *node) loop() {
	defer n.s.bg.Done()
	n.warmUp()
	t := time.NewTicker(n.s.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-n.s.stop:
			return
		case e := <-n.epochCh:
			n.step(health.Event{Kind: health.ProbeOK, Epoch: e})
		case <-t.C:
			n.step(health.Event{Kind: health.Tick})
			r := n.routing()
			switch r.state {
			case health.Suspect:
				if n.suspectOut.CompareAndSwap(false, true) {
					n.s.bg.Add(1)
					go n.suspectProbe(r.deadline)
				}
			case health.Healthy:
				now := n.s.now()
				if now >= n.nextRepair && n.s.out.Len() > 0 {
					n.nextRepair = now + 50*n.s.cfg.Tick
					n.s.bg.Add(1)
					go n.resync(n.resyncGen.Load(), false, false)
				}
			}
		}
	}
}

// warmUp sends the node enough probe reads for the deadline to adapt
// (Health.MinSamples), so that the first faults after Open do not
// wait for the initial deadline (the ceiling) when the node is slow or
// silent. It stops at the first failure, which the machine has then seen.
func (n *node) warmUp() {
	samples := n.s.cfg.Health.MinSamples
	if samples <= 0 {
		samples = health.DefaultMinSamples
	}
	for range samples {
		r := n.routing()
		if r.state != health.Healthy {
			return
		}
		select {
		case <-n.s.stop:
			return
		default:
		}
		lat, err := n.ask(r.deadline)
		o := classify(err)
		n.observe(lat, o)
		if o != outOK {
			return
		}
	}
}

// ask reads the node's probe page with timeout d; any answer from the node
// (found or not) proves it reachable.
func (n *node) ask(d time.Duration) (lat time.Duration, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	buf := make([]byte, n.s.pageSize)
	c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: n.probePage, Data: buf}}}
	t0 := time.Now()
	err = store.Do(ctx, n.s.primary, c)
	lat = time.Since(t0)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrCorrupt) {
		err = nil
	}
	return lat, err
}

// probe checks whether a down node answers again.
func (n *node) probe() {
	defer n.s.bg.Done()
	select {
	case <-n.s.stop:
		return
	default:
	}
	n.s.ctr.probes.Add(1)
	if _, err := n.ask(n.s.cfg.ProbeTimeout); err != nil {
		n.step(health.Event{Kind: health.ProbeFailed})
		return
	}
	var e uint64
	if n.s.epochsOf != nil {
		if es := n.s.epochsOf(); n.index < len(es) {
			e = es[n.index]
		}
	}
	n.step(health.Event{Kind: health.ProbeOK, Epoch: e})
}

// suspectProbe sends one read to a suspect node, so that its on-time
// answers can clear the suspicion while faults are served by the backup.
func (n *node) suspectProbe(deadline time.Duration) {
	defer n.s.bg.Done()
	defer n.suspectOut.Store(false)
	lat, err := n.ask(deadline)
	n.observe(lat, classify(err))
}

// outcome is how a request to a node ended, for the health machine.
type outcome uint8

const (
	outOK      outcome = iota // answered in time (whatever the answer)
	outTimeout                // deadline passed
	outConn                   // connection failed
	outOther                  // the caller gave up, or the store is closing: no event
	outNone                   // no request to the node (bookkeeping only)
)

func classify(err error) outcome {
	switch {
	case err == nil:
		return outOK
	case errors.Is(err, context.DeadlineExceeded):
		return outTimeout
	case errors.Is(err, store.ErrUnavailable):
		return outConn
	case errors.Is(err, context.Canceled), errors.Is(err, store.ErrClosed):
		return outOther
	}
	// Per-page answers (not found, corrupt, full) came from a live node.
	return outOK
}

// observe feeds the outcome of one request.
func (n *node) observe(lat time.Duration, o outcome) {
	switch o {
	case outOK:
		n.step(health.Event{Kind: health.RequestOK, Latency: lat})
	case outTimeout:
		n.s.ctr.timeouts.Add(1)
		n.step(health.Event{Kind: health.RequestTimeout})
	case outConn:
		n.s.ctr.connErrors.Add(1)
		n.step(health.Event{Kind: health.ConnError})
	}
}

// outagePages counts the outage pages this node homes (a scan).
func (n *node) outagePages() int64 {
	var c int64
	n.s.out.scan(0, func(p store.PageID) bool {
		if n.s.nodeOf(p) == n.index {
			c++
		}
		return true
	})
	return c
}
