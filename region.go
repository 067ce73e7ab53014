package farmem

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/farmem/farmem/engine"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/resilient"
)

// Config describes a region.
type Config struct {
	// Size of the region in bytes; a multiple of PageSize.
	Size int64
	// Local is the DRAM budget in bytes: at most this much of the region is
	// cached in this process. It is cut to Size.
	Local int64
	// PageSize is 4096 (the default) or a larger power of two.
	PageSize int
	// Nodes are the memnode addresses (host:port) that hold the pages. Pages
	// are spread over them by a stable hash.
	Nodes []string
	// Token authenticates to the memnodes (see farmem memnode --token-file).
	Token []byte
	// Namespace names the region on the memnodes. Two Opens of the same
	// namespace see the same pages (one at a time). Empty means a fresh
	// unique name.
	Namespace string
	// Store, when set, replaces the memnodes as the home of evicted pages
	// (for example a store.NVM file, or store.Mem in tests). The Region does
	// not close it.
	Store store.Store
	// SpinRead is how long a fault busy-polls its memnode connection for
	// the reply before sleeping in the network poller: on a virtual machine
	// an idle vCPU halts, and waking it for the reply costs more than a
	// loopback round trip. 0 means DefaultSpinRead; negative turns it off.
	SpinRead time.Duration
	// DialTimeout bounds connecting to each memnode; 0 means 5 s.
	DialTimeout time.Duration
	// FaultObserver, when set, is called after every fetch with the number
	// of pages fetched and the fault's latency (see engine.Config).
	FaultObserver func(pages int, d time.Duration)
	// Backup, when set with Nodes, is the path of a local backup file (on
	// the NVM device) holding a copy of every page: the region then runs
	// over a resilient store (capability C1, package store/resilient) that
	// serves a read from the backup when a memnode misses its deadline or
	// is down, and resyncs the memnode when it returns. The outage set
	// lives beside it, at Backup + ".outage". The file must exist unless
	// CreateBackup is set; one of another region (namespace, page size or
	// size) is refused with store.ErrWrongRegion, so a region with a
	// backup needs a fixed Namespace to be reopened.
	Backup       string
	CreateBackup bool
	// ReadDeadline, when positive, is the fixed read deadline of the
	// resilient store; 0 means adaptive: clamp(4 × p99 of the last 256
	// remote reads, 2 ms, 100 ms) per memnode (see store/health).
	ReadDeadline time.Duration
	// Metrics, when set, gets the resilient store's Prometheus metrics.
	Metrics prometheus.Registerer
	// BackupReadObserver, when set with Backup, is called after every read
	// from the backup with the pages read and the time it took.
	BackupReadObserver func(pages int, d time.Duration)
}

// Region is far memory addressed by byte offset. Its methods are safe for
// concurrent use, except Close.
type Region struct {
	eng       *engine.Engine
	st        store.Store
	ownsStore bool
	namespace string
}

var (
	_ io.ReaderAt = (*Region)(nil)
	_ io.WriterAt = (*Region)(nil)
)

// Open creates a region. It connects to the memnodes, checks that they have
// room for the whole region, and sets up the local DRAM budget.
func Open(ctx context.Context, cfg Config) (*Region, error) {
	if cfg.PageSize == 0 {
		cfg.PageSize = engine.DefaultPageSize
	}
	if cfg.Size <= 0 {
		return nil, fmt.Errorf("%w: region size must be positive", ErrConfig)
	}
	if cfg.Local <= 0 {
		return nil, fmt.Errorf("%w: local DRAM budget must be positive", ErrConfig)
	}
	r := &Region{st: cfg.Store, namespace: cfg.Namespace}
	if cfg.Backup != "" && cfg.Store != nil {
		return nil, fmt.Errorf("%w: Backup is for memnodes; a Store replaces them", ErrConfig)
	}
	if r.st == nil {
		if len(cfg.Nodes) == 0 {
			return nil, fmt.Errorf("%w: no memory nodes and no store", ErrConfig)
		}
		if cfg.Size%int64(cfg.PageSize) != 0 {
			return nil, fmt.Errorf("%w: size %d is not a multiple of the page size %d", ErrConfig, cfg.Size, cfg.PageSize)
		}
		st, ns, err := dialNodes(ctx, cfg)
		if err != nil {
			return nil, err
		}
		r.st, r.ownsStore, r.namespace = st, true, ns
	}
	if err := checkCapacity(ctx, r.st, cfg); err != nil {
		r.closeStore()
		return nil, err
	}
	eng, err := engine.New(engine.Config{
		Size:          cfg.Size,
		PageSize:      cfg.PageSize,
		Budget:        cfg.Local,
		Store:         r.st,
		FaultObserver: cfg.FaultObserver,
	})
	if err != nil {
		r.closeStore()
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	r.eng = eng
	return r, nil
}

func checkCapacity(ctx context.Context, st store.Store, cfg Config) error {
	s, ok := st.(store.Statter)
	if !ok {
		return nil
	}
	stats, err := s.Stat(ctx)
	if err != nil {
		return fmt.Errorf("farmem: asking the store for its capacity: %w", err)
	}
	if stats.Capacity == 0 {
		return nil
	}
	need := uint64(cfg.Size / int64(cfg.PageSize))
	free := uint64(0)
	if stats.Capacity > stats.Pages {
		free = stats.Capacity - stats.Pages
	}
	if need > free {
		return fmt.Errorf("%w: the region needs %d pages, the nodes have %d free of %d", ErrCapacity, need, free, stats.Capacity)
	}
	return nil
}

func (r *Region) closeStore() {
	if r.ownsStore && r.st != nil {
		r.st.Close()
	}
}

// Resilience returns the resilient store's counters (failovers, backup
// reads, outage set, resync) and true, or false when the region has no
// backup.
func (r *Region) Resilience() (resilient.Counters, bool) {
	if rs, ok := r.st.(*resilient.Store); ok {
		return rs.Counters(), true
	}
	return resilient.Counters{}, false
}

// Size returns the region's size in bytes.
func (r *Region) Size() int64 { return r.eng.Size() }

// PageSize returns the region's page size.
func (r *Region) PageSize() int { return r.eng.PageSize() }

// Namespace returns the region's name on the memnodes.
func (r *Region) Namespace() string { return r.namespace }

// ReadAt implements io.ReaderAt.
func (r *Region) ReadAt(p []byte, off int64) (int, error) {
	return r.eng.ReadAt(context.Background(), p, off)
}

// WriteAt implements io.WriterAt. A write past the end writes nothing and
// fails with engine.ErrOutOfRange.
func (r *Region) WriteAt(p []byte, off int64) (int, error) {
	return r.eng.WriteAt(context.Background(), p, off)
}

// ReadAtContext is ReadAt with a context that bounds any fetch it causes.
func (r *Region) ReadAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	return r.eng.ReadAt(ctx, p, off)
}

// WriteAtContext is WriteAt with a context that bounds any fetch it causes.
func (r *Region) WriteAtContext(ctx context.Context, p []byte, off int64) (int, error) {
	return r.eng.WriteAt(ctx, p, off)
}

// Pin returns a zero-copy view of page number page. With write set, changes
// made through the view's Bytes are kept. The view must be released.
func (r *Region) Pin(ctx context.Context, page uint64, write bool) (engine.View, error) {
	return r.eng.Pin(ctx, page, write)
}

// Sync writes every dirty page back to the memnodes (or the store). With a
// Backup, it also makes the backup file and its outage set durable on the
// device (fdatasync).
func (r *Region) Sync(ctx context.Context) error {
	if err := r.eng.Sync(ctx); err != nil {
		return err
	}
	if rs, ok := r.st.(*resilient.Store); ok {
		return rs.Sync()
	}
	return nil
}

// Stats are a region's counters (see engine.Stats).
type Stats = engine.Stats

// Stats returns the region's counters.
func (r *Region) Stats() Stats { return r.eng.Stats() }

// Close releases the local DRAM and the connections. Pages already written
// back stay on the memnodes under the region's namespace; dirty pages that
// were not synced are dropped.
func (r *Region) Close() error {
	err := r.eng.Close()
	r.closeStore()
	return err
}
