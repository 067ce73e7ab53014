package resilient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/health"
)

// Store is a store.Store over a remote primary and a local backup; see the
// package documentation. It is safe for concurrent use.
type Store struct {
	cfg      Config
	primary  store.Store
	backup   store.Store
	pageSize int
	pages    uint64
	nodeOf   func(store.PageID) int
	epochsOf func() []uint64
	nodes    []*node
	out      *outageSet
	// meta holds, per page, what the newest write left: metaKnown|sum, or
	// metaFreed, or 0 (not written since this Store was opened). A remote
	// answer whose checksum differs from a known sum is stale.
	meta  []atomic.Uint64
	start time.Time
	ctr   counters
	// scratch pools the bookkeeping of calls (see io.go).
	scratch sync.Pool
	m       *metrics

	closed   atomic.Bool
	stop     chan struct{}
	bg       sync.WaitGroup // node loops, probes, resyncs
	inflight sync.WaitGroup // calls being served
	mu       sync.RWMutex   // calls hold it for reading; Close takes it to flip closed
}

const (
	metaKnown = 1 << 32
	metaFreed = 1 << 33
)

var (
	_ store.Store   = (*Store)(nil)
	_ store.Doer    = (*Store)(nil)
	_ store.Statter = (*Store)(nil)
)

// placer is what a multi-node primary offers (remote.Store has it).
type placer interface {
	NodeOf(id store.PageID) int
	Nodes() []string
}

// epocher is what a primary that knows its nodes' boot epochs offers.
type epocher interface{ Epochs() []uint64 }

// BackupFile says where Open finds the backup and its outage-set sidecar.
type BackupFile struct {
	// Path of the backup file; the outage set lives at Path + ".outage".
	Path string
	// Create makes both files when the backup does not exist. Without it a
	// missing backup is ErrBackupMissing.
	Create bool
	// RegionID names the region; a backup or outage file of another region
	// (or page size, or page count) is refused with store.ErrWrongRegion.
	RegionID [16]byte
	// Workers is the backup's I/O goroutines (store.NVMOptions.Workers).
	Workers int
}

// Open opens (or creates) the backup file and its outage set and returns a
// Store over cfg.Primary. cfg.Backup must be nil: Open sets it to the
// store.NVM it opens (and closes it with the Store). A missing backup is
// ErrBackupMissing unless b.Create; a file too small for the region is
// store.ErrBadFile; one of another region store.ErrWrongRegion. A backup
// whose outage-set file is missing is ErrOutageMissing.
func Open(ctx context.Context, cfg Config, b BackupFile) (*Store, error) {
	if cfg.Backup != nil {
		return nil, fmt.Errorf("%w: Open opens the backup itself; leave Config.Backup nil", ErrConfig)
	}
	if cfg.Primary == nil {
		return nil, fmt.Errorf("%w: no primary store", ErrConfig)
	}
	if b.Path == "" {
		return nil, fmt.Errorf("%w: no backup path", ErrConfig)
	}
	ps := cfg.Primary.PageSize()
	nodes := 1
	if p, ok := cfg.Primary.(placer); ok {
		nodes = len(p.Nodes())
	}
	want := outageHeader{Version: outageVersion, PageSize: uint32(ps), Pages: cfg.Pages, RegionID: b.RegionID, Nodes: uint32(nodes)}
	opath := b.Path + ".outage"
	_, berr := os.Stat(b.Path)
	_, oerr := os.Stat(opath)
	switch {
	case errors.Is(berr, os.ErrNotExist) && !b.Create:
		return nil, fmt.Errorf("%w: %s", ErrBackupMissing, b.Path)
	case errors.Is(berr, os.ErrNotExist):
		// A fresh region: every node holds all (none) of its pages at its
		// current epoch. The sidecar comes first, so a backup never exists
		// without one.
		epochs := make(map[uint16]uint64)
		if e, ok := cfg.Primary.(epocher); ok {
			for i, v := range e.Epochs() {
				epochs[uint16(i)] = v
			}
		}
		if err := createOutageFile(opath, want, epochs); err != nil {
			return nil, err
		}
	case berr != nil:
		return nil, fmt.Errorf("resilient: backup file: %w", berr)
	case errors.Is(oerr, os.ErrNotExist):
		return nil, fmt.Errorf("%w: %s has no %s", ErrOutageMissing, b.Path, opath)
	}
	nvm, err := store.OpenNVM(b.Path, store.NVMOptions{PageSize: ps, Pages: cfg.Pages, RegionID: b.RegionID, Create: b.Create, Workers: b.Workers})
	if err != nil {
		return nil, fmt.Errorf("resilient: backup: %w", err)
	}
	f, err := os.OpenFile(opath, os.O_RDWR, 0)
	if err != nil {
		nvm.Close()
		return nil, fmt.Errorf("resilient: outage-set file: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		nvm.Close()
		return nil, fmt.Errorf("resilient: outage-set file: %w", err)
	}
	o, err := loadOutage(f, fi.Size(), opath, want)
	if err != nil {
		f.Close()
		nvm.Close()
		return nil, err
	}
	if o.records > int64(o.Len())+int64(len(o.epochs)) {
		o.mu.Lock()
		o.compactLocked()
		o.mu.Unlock()
	}
	cfg.Backup, cfg.OwnBackup = nvm, true
	s, err := newStore(cfg, o)
	if err != nil {
		o.close()
		nvm.Close()
		return nil, err
	}
	return s, nil
}

// newStore builds a Store over an outage set already loaded.
func newStore(cfg Config, o *outageSet) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Store{
		cfg: cfg, primary: cfg.Primary, backup: cfg.Backup, pageSize: cfg.Primary.PageSize(),
		pages: cfg.Pages, out: o, meta: make([]atomic.Uint64, cfg.Pages), start: time.Now(),
		stop: make(chan struct{}),
	}
	names := []string{"primary"}
	s.nodeOf = func(store.PageID) int { return 0 }
	if p, ok := cfg.Primary.(placer); ok {
		names = p.Nodes()
		s.nodeOf = p.NodeOf
	}
	if e, ok := cfg.Primary.(epocher); ok {
		s.epochsOf = e.Epochs
	}
	cur := s.currentEpochs(len(names))
	for i, name := range names {
		rec := o.epoch(i)
		m, err := health.New(cfg.Health, rec)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrConfig, err)
		}
		n := &node{s: s, index: i, addr: name, m: m, epochCh: make(chan uint64, 4)}
		n.probePage = s.probePage(i)
		n.publish(m.Status())
		s.nodes = append(s.nodes, n)
		// What the previous run left behind: a node that restarted since
		// its last full sync is repopulated; pages of the outage set are
		// copied back.
		switch {
		case rec != 0 && cur[i] != 0 && cur[i] != rec:
			n.step(health.Event{Kind: health.ProbeOK, Epoch: cur[i]})
		case rec == 0 && cur[i] != 0:
			// No record of what this node holds: repopulate it.
			n.forceFull = true
			n.step(health.Event{Kind: health.ConnError})
			n.step(health.Event{Kind: health.ProbeOK, Epoch: cur[i]})
		}
	}
	if o.Len() > 0 {
		for _, n := range s.nodes {
			if n.m.State() == health.Healthy && n.outagePages() > 0 {
				n.step(health.Event{Kind: health.ConnError})
			}
		}
	}
	if cfg.Registerer != nil {
		m, err := newMetrics(s, cfg.Registerer, cfg.ConstLabels)
		if err != nil {
			return nil, err
		}
		s.m = m
	}
	for _, n := range s.nodes {
		s.bg.Add(1)
		go n.loop()
	}
	return s, nil
}

func (s *Store) currentEpochs(n int) []uint64 {
	if s.epochsOf == nil {
		return make([]uint64, n)
	}
	e := s.epochsOf()
	if len(e) != n {
		return make([]uint64, n)
	}
	return e
}

// probePage returns a page id far past any region that node i homes: a
// probe reads it, and any answer (not found, mostly) proves the node is
// reachable.
func (s *Store) probePage(i int) store.PageID {
	for k := store.PageID(1 << 62); ; k++ {
		if s.nodeOf(k) == i {
			return k
		}
	}
}

// EpochChanged tells the store that node i answered a reconnect with boot
// epoch e (wire it to remote.Config.OnEpochChange). It does not block and
// does not call into the primary.
func (s *Store) EpochChanged(i int, e uint64) {
	if i < 0 || i >= len(s.nodes) {
		return
	}
	select {
	case s.nodes[i].epochCh <- e:
	default:
	}
}

// PageSize implements store.Store.
func (s *Store) PageSize() int { return s.pageSize }

// Pages returns the region's size in pages.
func (s *Store) Pages() uint64 { return s.pages }

// Submit implements store.Store: the call is served on its own goroutine.
func (s *Store) Submit(ctx context.Context, c *store.Call) {
	store.CheckDone(c)
	if !s.enter() {
		c.Err = errClosed
		c.Done <- c
		return
	}
	go func() {
		defer s.inflight.Done()
		s.serve(ctx, c)
		c.Done <- c
	}()
}

// Do implements store.Doer: the call is served on the calling goroutine.
func (s *Store) Do(ctx context.Context, c *store.Call) error {
	if c.Done == nil {
		c.Done = make(chan *store.Call, 1)
	}
	if !s.enter() {
		c.Err = errClosed
		return c.Err
	}
	s.serve(ctx, c)
	s.inflight.Done()
	return c.FirstErr()
}

func (s *Store) enter() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed.Load() {
		return false
	}
	s.inflight.Add(1)
	return true
}

func (s *Store) serve(ctx context.Context, c *store.Call) {
	c.Err = nil
	if err := ctx.Err(); err != nil {
		c.Err = fmt.Errorf("resilient: %w", err)
		return
	}
	switch c.Op {
	case store.OpRead:
		s.read(ctx, c)
	case store.OpWrite:
		s.write(ctx, c)
	case store.OpFree:
		s.free(ctx, c)
	default:
		c.Err = fmt.Errorf("%w: op %v", store.ErrBadPage, c.Op)
	}
}

// valid checks a page's id and buffer, setting its error if bad.
func (s *Store) valid(op store.Op, pg *store.Page) bool {
	pg.Err = nil
	if uint64(pg.ID) >= s.pages {
		pg.Err = fmt.Errorf("%w: page %d of a region of %d pages", store.ErrBadPage, pg.ID, s.pages)
		return false
	}
	if op != store.OpFree && len(pg.Data) != s.pageSize {
		pg.Err = fmt.Errorf("%w: page %d has %d bytes, want %d", store.ErrBadPage, pg.ID, len(pg.Data), s.pageSize)
		return false
	}
	return true
}

func (s *Store) node(id store.PageID) *node { return s.nodes[s.nodeOf(id)] }

func (s *Store) now() time.Duration { return time.Since(s.start) }

// Close stops the background work, waits for calls in flight and closes the
// outage set (and the primary and backup if owned). Calls made after Close
// fail with store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed.Swap(true) {
		s.mu.Unlock()
		return nil
	}
	s.mu.Unlock()
	close(s.stop)
	s.inflight.Wait()
	s.bg.Wait()
	if s.m != nil {
		s.m.unregister()
	}
	var errs []error
	if s.cfg.OwnPrimary {
		errs = append(errs, s.primary.Close())
	}
	if s.cfg.OwnBackup {
		errs = append(errs, s.backup.Close())
	}
	errs = append(errs, s.out.close())
	return errors.Join(errs...)
}

// Stat implements store.Statter with the primary's numbers (the memnodes'
// capacity is what a region must fit in); zero if it cannot tell.
func (s *Store) Stat(ctx context.Context) (store.Stats, error) {
	if st, ok := s.primary.(store.Statter); ok {
		return st.Stat(ctx)
	}
	return store.Stats{}, nil
}

// Sync makes the backup's completed writes and the outage set durable
// against power loss (fdatasync of both files). Without it they survive a
// crash of this process (the kernel has them) but not necessarily of the
// machine: the outage set's add records are synced as they are written,
// the backup's pages only here (if the backup has a Sync method, as
// store.NVM does).
func (s *Store) Sync() error {
	var errs []error
	if b, ok := s.backup.(interface{ Sync() error }); ok {
		errs = append(errs, b.Sync())
	}
	s.out.mu.Lock()
	if s.out.f != nil {
		if err := s.out.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("resilient: syncing the outage-set file: %w", err))
		}
	}
	s.out.mu.Unlock()
	return errors.Join(errs...)
}
