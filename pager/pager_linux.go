//go:build linux

package pager

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmem/farmem/attach"
	"github.com/farmem/farmem/uffd"
	"github.com/farmem/farmem/workload/hist"
)

// Pager serves the page faults of attached regions. It is safe for
// concurrent use.
type Pager struct {
	cfg      Config
	pageSize int
	limit    int64 // budget in pages
	high     int64 // reclaim starts above this many resident pages
	low      int64 // and stops at this many

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	tasks chan task
	wg    sync.WaitGroup // workers, reclaimer, serve loops

	mu       sync.Mutex
	resCond  *sync.Cond // reservations waiting for reclaim
	resident int64
	regions  map[uint64]*region
	order    []*region // reclaim round robin
	next     int
	kicked   bool
	kick     chan struct{}
	closed   bool

	stats counters

	svcMu sync.Mutex
	svc   hist.Histogram // fault service times: event read to UFFDIO_COPY done
}

type counters struct {
	faults, installs, installedPages, zeroFills, fetchCalls, fetchedPages   atomic.Uint64
	wpFaults, spurious, evictions, writeBacks, writeBackCalls, reserveWaits atomic.Uint64
	fetchErrors, writeBackErrors, recovered, serviceNS                      atomic.Uint64
	sampled, hintFaults, stagedDrops                                        atomic.Uint64
	evictBatches, evictNS, metaTxs, metaNS, lostPages                       atomic.Uint64
	asyncRegions, cleanEvictions                                            atomic.Uint64
}

type task struct {
	r *region
	m uffd.Msg
	t time.Time
}

// New starts a pager: its worker pool and reclaimer. Attach regions with
// Serve (over an attach.Listener) or Adopt.
func New(cfg Config) (*Pager, error) {
	ps, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if cfg.DirtyTracking == DirtyAsync {
		if err := checkShmemHuge(); err != nil {
			return nil, err
		}
	}
	p := &Pager{
		cfg: cfg, pageSize: ps, limit: cfg.Local / int64(ps),
		tasks: make(chan task, cfg.Workers), regions: map[uint64]*region{}, kick: make(chan struct{}, 1),
	}
	headroom := max(int64(cfg.ReclaimBatch), p.limit/32)
	p.high = p.limit - headroom
	p.low = p.limit - 2*headroom
	p.resCond = sync.NewCond(&p.mu)
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for range cfg.Workers {
		p.wg.Add(1)
		go p.worker()
	}
	p.wg.Add(1)
	go p.reclaimer()
	if cfg.SampleInterval > 0 {
		p.wg.Add(1)
		go p.sampler()
	}
	return p, nil
}

// PageSize returns the page size the pager serves.
func (p *Pager) PageSize() int { return p.pageSize }

// AttachConfig returns an attach.Config whose Admit gives new regions
// random ids (so that the far-tier namespaces of successive pagers do not
// collide) and refuses a re-attach of a region already attached here. With
// Config.Meta it also refuses a new region the table has no room for
// (ErrMetaFull) and a re-attach that disagrees with the region's record
// (ErrMetaMismatch).
// Serve fills it in when it creates the listener itself.
func (p *Pager) AttachConfig() attach.Config {
	var features uffd.Features
	if p.cfg.DirtyTracking == DirtyAsync {
		// Optional for the application: a kernel without it enables the
		// rest, and the region is served with "wp".
		features = uffd.FeatureMissingShmem | uffd.FeaturePagefaultFlagWP | uffd.FeatureWPHugetlbfsShmem | uffd.FeatureWPAsync
	}
	return attach.Config{
		MaxSize:  p.cfg.MaxRegion,
		Features: features,
		Admit: func(req attach.Request) (uint64, error) {
			if req.Reattach {
				if req.Features&uffd.FeatureWPAsync != 0 {
					// Its previous pager may have died between an
					// eviction's punch and its write-back (async_linux.go).
					return 0, fmt.Errorf("%w: region %d was served with asynchronous dirty tracking (WP_ASYNC); a pager crash may have lost pages of it (%w)",
						attach.ErrUnknownRegion, req.RegionID, ErrNotRecoverable)
				}
				if !p.cfg.Recoverable {
					return 0, fmt.Errorf("%w: region %d: this pager's far tier does not outlive it (%w)",
						attach.ErrUnknownRegion, req.RegionID, ErrNotRecoverable)
				}
				p.mu.Lock()
				_, busy := p.regions[req.RegionID]
				p.mu.Unlock()
				if busy {
					return 0, fmt.Errorf("%w: region %d is attached", attach.ErrDenied, req.RegionID)
				}
				if m := p.cfg.Meta; m != nil {
					if err := m.check(req.RegionID, req.Size, req.PageSize); err != nil {
						return 0, fmt.Errorf("%w: %w: %w", attach.ErrUnknownRegion, ErrNotRecoverable, err)
					}
				}
				return req.RegionID, nil
			}
			if m := p.cfg.Meta; m != nil {
				if err := m.room(req.Size, max(req.PageSize, p.pageSize)); err != nil {
					return 0, fmt.Errorf("%w: %w", attach.ErrDenied, err)
				}
			}
			for {
				var b [8]byte
				if _, err := rand.Read(b[:]); err != nil {
					return 0, err
				}
				id := binary.LittleEndian.Uint64(b[:]) >> 1
				if id != 0 && (p.cfg.Meta == nil || !p.cfg.Meta.has(id)) {
					return id, nil
				}
			}
		},
		OnReject: func(c attach.Cred, err error) {
			p.logf("pager: handshake with pid %d refused: %v", c.PID, err)
		},
	}
}

// Serve accepts attachments from l and serves them until ctx ends, l is
// closed, or the pager is closed. It returns nil when ctx ends or the pager
// closes. The caller closes l.
func (p *Pager) Serve(ctx context.Context, l *attach.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(p.ctx, cancel)
	defer stop()
	for {
		a, err := l.Accept(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if err := p.Adopt(a); err != nil {
			p.logf("pager: region %d of pid %d: %v", a.RegionID, a.Cred.PID, err)
			_ = a.Close()
		}
	}
}

// Adopt starts serving an attachment. On error the caller still owns a.
func (p *Pager) Adopt(a *attach.Attachment) error {
	if a.PageSize != p.pageSize {
		return fmt.Errorf("%w: region page size %d, pager %d", ErrConfig, a.PageSize, p.pageSize)
	}
	if a.Modes&uffd.ModeWP == 0 {
		// Without write-protect faults the pager cannot stop writes while
		// it copies a page out, so it could not evict safely.
		return fmt.Errorf("%w: the mapping is not registered for write-protect faults (modes %#x)", ErrConfig, uint64(a.Modes))
	}
	async := a.Features&uffd.FeatureWPAsync != 0
	if async && a.Reattached {
		// Its previous pager may have died between an eviction's punch and
		// its write-back: pages may be lost, and nothing records which.
		return fmt.Errorf("%w: region %d was served with asynchronous dirty tracking (WP_ASYNC); a pager crash may have lost pages of it", ErrNotRecoverable, a.RegionID)
	}
	if async && p.cfg.DirtyTracking != DirtyAsync {
		// Not asked for (the Welcome did not want it), so not expected;
		// without synchronous write-protect faults the "wp" fence fails.
		return fmt.Errorf("%w: region %d has WP_ASYNC enabled; this pager tracks dirty pages with %q", ErrConfig, a.RegionID, p.cfg.DirtyTracking)
	}
	if !async && p.cfg.DirtyTracking == DirtyAsync {
		p.logf("pager: region %d: the application's kernel did not enable UFFD_FEATURE_WP_ASYNC (features %#x): dirty tracking %q for it", a.RegionID, uint64(a.Features), DirtyWP)
	}
	var as *asyncState
	if async {
		var err error
		if as, err = newAsyncState(a.Cred.PID, p.cfg.ReclaimBatch); err != nil {
			return fmt.Errorf("asynchronous dirty tracking: %w", err)
		}
	}
	st, err := p.cfg.NewStore(p.ctx, a.RegionID, int64(a.Size), a.Reattached)
	if err != nil {
		as.close()
		return fmt.Errorf("opening the far tier: %w", err)
	}
	r := newRegion(p, a, st)
	r.async = as
	if as != nil {
		p.stats.asyncRegions.Add(1)
	}
	if err := r.openMeta(); err != nil {
		st.Close()
		as.close()
		return err
	}
	if a.Reattached {
		if err := r.recoverResidency(); err != nil {
			st.Close()
			as.close()
			return err
		}
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		st.Close()
		as.close()
		r.dropMeta(a.Reattached) // a new region's record goes
		return ErrClosed
	}
	if _, dup := p.regions[a.RegionID]; dup {
		p.mu.Unlock()
		st.Close()
		as.close()
		// Another attachment serves this id: never touch its record.
		return fmt.Errorf("%w: region %d is attached already", attach.ErrDenied, a.RegionID)
	}
	p.regions[a.RegionID] = r
	p.order = append(p.order, r)
	p.resident += int64(r.resident)
	over := p.resident > p.high
	r.start()
	p.mu.Unlock()
	if over {
		p.kickReclaim()
	}
	if a.Reattached {
		p.stats.recovered.Add(1)
		// Faults the dead pager read but never resolved are not delivered
		// again: wake every thread so that each faults afresh.
		if err := a.Uffd.Wake(a.AppBase, a.Size); err != nil {
			p.logf("pager: region %d: waking after re-attach: %v", a.RegionID, err)
		}
	}
	p.logf("pager: region %d attached: %d bytes for pid %d (%s)%s%s", a.RegionID, a.Size, a.Cred.PID, a.Name,
		map[bool]string{true: ", re-attached", false: ""}[a.Reattached],
		map[bool]string{true: ", dirty tracking async", false: ""}[as != nil])
	go func() {
		select {
		case <-a.Done():
			p.detach(r, true)
		case <-r.gone:
		}
	}()
	return nil
}

// detach ends a region: stops its reader, waits for its faults and
// evictions in flight, returns its budget, and closes the attachment. free
// also removes the region's record from Config.Meta and frees its pages in
// the far tier (the application is gone; on a pager shutdown both are kept
// for a re-attach).
func (p *Pager) detach(r *region, free bool) {
	if !r.stop() {
		return
	}
	p.mu.Lock()
	delete(p.regions, r.id)
	for i, o := range p.order {
		if o == r {
			p.order = append(p.order[:i], p.order[i+1:]...)
			break
		}
	}
	p.resident -= int64(r.resident)
	p.resCond.Broadcast()
	p.mu.Unlock()
	if free {
		// The application is gone: first its record (a crash after this
		// leaves unreferenced far pages, as a crash in freeFar does, but
		// no record of a region nobody will re-attach), then its pages.
		r.dropMeta(false)
		r.freeFar()
	}
	_ = r.st.Close()
	r.async.close()
	if d, ok := r.st.(discarder); ok && free {
		if err := d.Discard(); err != nil {
			p.logf("pager: region %d: removing its backup: %v", r.id, err)
		}
	}
	if err := r.a.Close(); err != nil {
		p.logf("pager: region %d: close: %v", r.id, err)
	}
	why := "application gone"
	if !free {
		why = "pager shutting down"
	}
	p.logf("pager: region %d detached (%s)", r.id, why)
	close(r.gone)
}

// Close detaches every region (the applications are told with Bye; their
// faults block until a pager re-attaches) and stops the pager. The far
// tier keeps the evicted pages.
func (p *Pager) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	regions := append([]*region(nil), p.order...)
	p.resCond.Broadcast()
	p.mu.Unlock()
	for _, r := range regions {
		p.detach(r, false)
	}
	p.cancel()
	close(p.tasks)
	p.wg.Wait()
	return nil
}

// Stats returns the pager's counters.
func (p *Pager) Stats() Stats {
	p.mu.Lock()
	s := Stats{Regions: len(p.regions), ResidentPages: p.resident, BudgetPages: p.limit}
	p.mu.Unlock()
	c := &p.stats
	s.Faults, s.Installs, s.InstalledPages = c.faults.Load(), c.installs.Load(), c.installedPages.Load()
	s.ZeroFills, s.FetchCalls, s.FetchedPages = c.zeroFills.Load(), c.fetchCalls.Load(), c.fetchedPages.Load()
	s.WPFaults, s.SpuriousFaults, s.Evictions = c.wpFaults.Load(), c.spurious.Load(), c.evictions.Load()
	s.WriteBacks, s.WriteBackCalls, s.ReserveWaits = c.writeBacks.Load(), c.writeBackCalls.Load(), c.reserveWaits.Load()
	s.FetchErrors, s.WriteBackErrors, s.RecoveredRegions = c.fetchErrors.Load(), c.writeBackErrors.Load(), c.recovered.Load()
	s.FaultServiceNS = c.serviceNS.Load()
	s.Sampled, s.HintFaults, s.StagedDrops = c.sampled.Load(), c.hintFaults.Load(), c.stagedDrops.Load()
	s.EvictBatches, s.EvictNS = c.evictBatches.Load(), c.evictNS.Load()
	s.MetaTxs, s.MetaNS, s.LostPageErrors = c.metaTxs.Load(), c.metaNS.Load(), c.lostPages.Load()
	s.AsyncRegions, s.CleanEvictions = c.asyncRegions.Load(), c.cleanEvictions.Load()
	p.svcMu.Lock()
	m := p.svc.Summary().Micros()
	p.svcMu.Unlock()
	s.ServiceP50US, s.ServiceP99US = m.P50, m.P99
	return s
}

// ResetServiceLatency clears the fault service-time histogram behind
// Stats.ServiceP50US and ServiceP99US (to measure one phase).
func (p *Pager) ResetServiceLatency() {
	p.svcMu.Lock()
	p.svc.Reset()
	p.svcMu.Unlock()
}

func (p *Pager) recordService(t0 time.Time) {
	d := time.Since(t0)
	p.stats.serviceNS.Add(uint64(d))
	p.svcMu.Lock()
	p.svc.RecordDuration(d)
	p.svcMu.Unlock()
}

func (p *Pager) logf(format string, args ...any) {
	if p.cfg.Logf != nil {
		p.cfg.Logf(format, args...)
	}
}

func (p *Pager) worker() {
	defer p.wg.Done()
	w := p.newWorker()
	for t := range p.tasks {
		t.r.handle(w, &t.m, t.t)
		t.r.inflight.Done()
	}
}

// dispatch hands a fault to an idle worker, or returns false when all are
// busy (the caller serves it itself).
func (p *Pager) dispatch(r *region, m *uffd.Msg, t time.Time) bool {
	r.inflight.Add(1)
	select {
	case p.tasks <- task{r: r, m: *m, t: t}:
		return true
	default:
		r.inflight.Done()
		return false
	}
}

// reserve takes n pages of the budget for an install into r, waiting for
// the reclaimer while the budget is full. It fails when r is stopping.
func (p *Pager) reserve(r *region, n int) bool {
	p.mu.Lock()
	waited := false
	for p.resident+int64(n) > p.limit {
		if r.stopping.Load() || p.closed {
			p.mu.Unlock()
			return false
		}
		if !waited {
			waited = true
			p.stats.reserveWaits.Add(1)
		}
		p.kickLocked()
		p.resCond.Wait()
	}
	p.resident += int64(n)
	if p.resident > p.high {
		p.kickLocked()
	}
	p.mu.Unlock()
	return true
}

// unreserve returns n pages of the budget.
func (p *Pager) unreserve(n int) {
	if n == 0 {
		return
	}
	p.mu.Lock()
	p.resident -= int64(n)
	p.resCond.Broadcast()
	p.mu.Unlock()
}

func (p *Pager) kickReclaim() {
	p.mu.Lock()
	p.kickLocked()
	p.mu.Unlock()
}

func (p *Pager) kickLocked() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// reclaimer keeps the resident pages under the budget: above the high
// watermark it evicts batches, round robin over the regions, down to the
// low watermark.
func (p *Pager) reclaimer() {
	defer p.wg.Done()
	ev := p.newEvictor()
	for {
		p.mu.Lock()
		for p.resident <= p.high && !p.closed {
			p.mu.Unlock()
			select {
			case <-p.kick:
			case <-p.ctx.Done():
				return
			}
			p.mu.Lock()
		}
		p.mu.Unlock()
		if !p.reclaimTo(ev) {
			return
		}
	}
}

// reclaimTo evicts until the resident pages are at the low watermark. It
// returns false when the pager is closing.
func (p *Pager) reclaimTo(ev *evictor) bool {
	idle := 0
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return false
		}
		if p.resident <= p.low || len(p.order) == 0 {
			p.mu.Unlock()
			return true
		}
		p.next = (p.next + 1) % len(p.order)
		r, n := p.order[p.next], len(p.order)
		p.mu.Unlock()
		freed, err := r.evictBatch(ev)
		if err != nil && !errors.Is(err, errStopping) {
			p.logf("pager: region %d: eviction: %v", r.id, err)
			select {
			case <-time.After(10 * time.Millisecond):
			case <-p.ctx.Done():
				return false
			}
		}
		if freed > 0 {
			idle = 0
			p.unreserve(freed)
			continue
		}
		// Nothing evictable in this region now (all in flight, or all
		// referenced and now cleared): try the next; after two full
		// rounds with nothing, back off a little.
		idle++
		if idle >= 2*n {
			idle = 0
			select {
			case <-time.After(200 * time.Microsecond):
			case <-p.ctx.Done():
				return false
			}
		}
	}
}

// errStopping: the region is being detached.
var errStopping = errors.New("pager: region stopping")
