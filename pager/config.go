package pager

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/farmem/farmem/store"
)

// Values of Config.DirtyTracking.
const (
	DirtyWP    = "wp"
	DirtyAsync = "async"
)

// Defaults of Config.
const (
	DefaultWorkers      = 4
	DefaultReclaimBatch = 32
	// MinLocalPages is the smallest budget, in pages, that New accepts.
	MinLocalPages = 64
	// MaxPrefetch bounds Config.Prefetch.
	MaxPrefetch = 63
)

// StoreFactory opens the far tier of one region: the store that holds the
// region's pages while they are not resident. recover is set when a
// restarted pager takes back a region (re-attach): the store must then hold
// what the previous pager wrote for the same region id, or the factory
// returns an error wrapping ErrNotRecoverable. The pager closes the store
// when the region ends.
type StoreFactory func(ctx context.Context, regionID uint64, size int64, recover bool) (store.Store, error)

// Config configures a Pager.
type Config struct {
	// Local is the DRAM budget in bytes: the most page bytes resident in
	// all attached regions' memfds together. At least MinLocalPages pages.
	Local int64
	// NewStore opens each region's far tier. Required.
	NewStore StoreFactory
	// Recoverable says that NewStore finds the pages of a region written
	// by an earlier pager (the far tier outlives the pager: memnodes), so a
	// re-attach after a pager restart is admitted. Without it a re-attach
	// is refused (attach.ErrUnknownRegion) before the application is told
	// Ready.
	Recoverable bool
	// Meta, if set, is the persistent region table (OpenMeta): the pager
	// records each new region in it, sets the bits of each eviction batch's
	// written-back pages in one transaction after the write-back and before
	// the punch, and removes the record when the application detaches
	// (not on Close). A restarted pager given the same table then knows
	// which absent pages the far tier must hold: one it lost is
	// ErrLostPage, never zeros. It needs Recoverable. The caller closes it
	// after the pager.
	Meta *Meta
	// Workers is the size of the fault worker pool shared by all regions
	// (each region's event reader also serves faults itself); 0 means
	// DefaultWorkers.
	Workers int
	// Prefetch is how many pages after a faulting one are fetched with it
	// in the same store call and installed with the same UFFDIO_COPY, when
	// they are absent (sequential read-ahead); 0 disables it.
	Prefetch int
	// ReclaimBatch is how many pages one eviction round writes back in one
	// store call; 0 means DefaultReclaimBatch.
	ReclaimBatch int
	// SpinPoll, when positive, makes each region's event reader poll its
	// userfaultfd without blocking for this long after serving a fault
	// before it blocks in poll(2): while faults are frequent the next one is
	// read without a thread wake-up, at the price of a busy core. 0 (the
	// default) never spins.
	SpinPoll time.Duration
	// SampleInterval, when positive, turns on access sampling (hint
	// faults, sample_linux.go): every interval up to SamplePages clean
	// pages of each region are taken out of the mapping into a staging
	// buffer; a re-access is a cheap fault that marks the page used, and the
	// pages not re-accessed are evicted first. 0 (the default) disables it.
	SampleInterval time.Duration
	// SamplePages is each region's staging buffer, in pages; 0 means 64.
	// The staged pages count against Local.
	SamplePages int
	// DirtyTracking is how the pager learns which resident pages the
	// application wrote: DirtyWP ("wp", the default when empty) takes a
	// synchronous write-protect fault on the first write to each clean
	// page; DirtyAsync ("async") asks the application's userfaultfd for
	// UFFD_FEATURE_WP_ASYNC (the kernel resolves that first write) and
	// evicts with the pin-punch-copy fence (async_linux.go). A region whose
	// kernel did not enable WP_ASYNC is served with "wp" (logged). Async
	// needs shmem huge pages off (New checks) and refuses Meta and
	// Sampling; a pager crash loses an async region (doc.go).
	DirtyTracking string
	// MaxRegion is the largest region accepted, in bytes; 0 means 1 TiB.
	MaxRegion int64
	// Logf, if set, receives one line per notable event (attach, detach,
	// errors). It must be safe for concurrent use.
	Logf func(format string, args ...any)
}

func (c *Config) normalize() (pageSize int, err error) {
	pageSize = os.Getpagesize()
	if c.NewStore == nil {
		return 0, fmt.Errorf("%w: no store factory", ErrConfig)
	}
	if c.Meta != nil && !c.Recoverable {
		return 0, fmt.Errorf("%w: a metadata pool needs a far tier that outlives the pager (Recoverable)", ErrConfig)
	}
	if c.Local/int64(pageSize) < MinLocalPages {
		return 0, fmt.Errorf("%w: local budget %d bytes holds fewer than %d pages", ErrConfig, c.Local, MinLocalPages)
	}
	if c.Workers == 0 {
		c.Workers = DefaultWorkers
	}
	if c.Workers < 0 || c.Workers > 1024 {
		return 0, fmt.Errorf("%w: %d workers", ErrConfig, c.Workers)
	}
	if c.Prefetch < 0 || c.Prefetch > MaxPrefetch {
		return 0, fmt.Errorf("%w: prefetch %d pages (0..%d)", ErrConfig, c.Prefetch, MaxPrefetch)
	}
	if c.ReclaimBatch == 0 {
		c.ReclaimBatch = DefaultReclaimBatch
	}
	if c.ReclaimBatch < 0 || c.ReclaimBatch > 1024 {
		return 0, fmt.Errorf("%w: reclaim batch %d", ErrConfig, c.ReclaimBatch)
	}
	if c.SpinPoll < 0 || c.SpinPoll > time.Second {
		return 0, fmt.Errorf("%w: spin poll %v (0..1s)", ErrConfig, c.SpinPoll)
	}
	if c.SampleInterval < 0 {
		return 0, fmt.Errorf("%w: sample interval %v", ErrConfig, c.SampleInterval)
	}
	if c.SampleInterval > 0 && c.SamplePages == 0 {
		c.SamplePages = 64
	}
	if c.SamplePages < 0 || c.SamplePages > 1<<16 {
		return 0, fmt.Errorf("%w: %d sample pages", ErrConfig, c.SamplePages)
	}
	switch c.DirtyTracking {
	case "":
		c.DirtyTracking = DirtyWP
	case DirtyWP:
	case DirtyAsync:
		if c.Meta != nil {
			return 0, fmt.Errorf("%w: dirty tracking %q cannot keep a metadata pool: a pager crash between an eviction's punch and its write-back loses the pinned pages", ErrConfig, c.DirtyTracking)
		}
		if c.SampleInterval > 0 {
			return 0, fmt.Errorf("%w: dirty tracking %q does not support access sampling", ErrConfig, c.DirtyTracking)
		}
	default:
		return 0, fmt.Errorf("%w: dirty tracking %q (want %q or %q)", ErrConfig, c.DirtyTracking, DirtyWP, DirtyAsync)
	}
	if c.MaxRegion == 0 {
		c.MaxRegion = 1 << 40
	}
	if c.MaxRegion < 0 {
		return 0, fmt.Errorf("%w: max region %d", ErrConfig, c.MaxRegion)
	}
	// Faults in flight hold reservations while the reclaimer works; keep
	// them well under the budget so that reclaim always finds victims.
	pages := int(c.Local / int64(pageSize))
	if need := 4 * (c.Workers + 1) * (c.Prefetch + 1); need > pages {
		return 0, fmt.Errorf("%w: local budget of %d pages is too small for %d workers with prefetch %d (need %d)",
			ErrConfig, pages, c.Workers, c.Prefetch, need)
	}
	if c.SamplePages > pages/4 {
		return 0, fmt.Errorf("%w: %d sample pages in a budget of %d pages (at most a quarter)", ErrConfig, c.SamplePages, pages)
	}
	if c.ReclaimBatch > pages/4 {
		c.ReclaimBatch = pages / 4
	}
	return pageSize, nil
}

// Stats are the pager's counters since New.
type Stats struct {
	Regions          int    `json:"regions"`
	ResidentPages    int64  `json:"resident_pages"`
	BudgetPages      int64  `json:"budget_pages"`
	Faults           uint64 `json:"faults"`          // missing faults that installed pages
	Installs         uint64 `json:"installs"`        // UFFDIO_COPY calls
	InstalledPages   uint64 `json:"installed_pages"` // pages installed (faulting + prefetched)
	ZeroFills        uint64 `json:"zero_fills"`      // pages installed as zeros without a fetch
	FetchCalls       uint64 `json:"fetch_calls"`     // store read calls
	FetchedPages     uint64 `json:"fetched_pages"`
	WPFaults         uint64 `json:"wp_faults"`       // first writes to clean pages
	SpuriousFaults   uint64 `json:"spurious_faults"` // events for pages already handled (woken)
	Evictions        uint64 `json:"evictions"`       // pages punched out of a memfd
	WriteBacks       uint64 `json:"write_backs"`     // dirty pages written to the far tier
	WriteBackCalls   uint64 `json:"write_back_calls"`
	ReserveWaits     uint64 `json:"reserve_waits"` // faults that waited for reclaim
	FetchErrors      uint64 `json:"fetch_errors"`
	WriteBackErrors  uint64 `json:"write_back_errors"`
	RecoveredRegions uint64 `json:"recovered_regions"`
	// FaultServiceNS is the total time from reading a missing fault to the
	// end of its UFFDIO_COPY, in nanoseconds (divide by Faults+HintFaults).
	FaultServiceNS uint64 `json:"fault_service_ns"`
	// Sampled pages were staged by access sampling; HintFaults re-accessed
	// while staged (served from the staging slot); StagedDrops evicted
	// while staged, not used since sampling (also counted in Evictions).
	// ServiceP50US and ServiceP99US summarize the same service times, in
	// microseconds, since New or ResetServiceLatency.
	ServiceP50US float64 `json:"service_p50_us"`
	ServiceP99US float64 `json:"service_p99_us"`
	Sampled      uint64  `json:"sampled"`
	HintFaults   uint64  `json:"hint_faults"`
	StagedDrops  uint64  `json:"staged_drops"`
	// EvictBatches counts eviction batches that punched pages, and EvictNS
	// their total time from victim selection to the end of the punch.
	EvictBatches uint64 `json:"evict_batches"`
	EvictNS      uint64 `json:"evict_ns"`
	// MetaTxs counts the transactions that set eviction batches' bits in
	// the metadata pool (Config.Meta; at most one per batch), and MetaNS
	// their total time.
	MetaTxs uint64 `json:"meta_txs"`
	MetaNS  uint64 `json:"meta_ns"`
	// LostPageErrors counts fetches that failed with ErrLostPage: the far
	// tier lacks a page the pager knows it wrote there (the fault waits).
	LostPageErrors uint64 `json:"lost_page_errors"`
	// AsyncRegions counts regions served with asynchronous dirty tracking
	// (Config.DirtyTracking "async" and WP_ASYNC enabled); CleanEvictions
	// counts pages of such regions evicted without a write-back because the
	// uffd-wp marker proved them unwritten.
	AsyncRegions   uint64 `json:"async_regions"`
	CleanEvictions uint64 `json:"clean_evictions"`
}
