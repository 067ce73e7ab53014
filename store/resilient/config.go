package resilient

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/health"
)

// Defaults of Config.
const (
	DefaultProbeTimeout  = 250 * time.Millisecond
	DefaultResyncRate    = 25000 // pages per second
	DefaultResyncBatch   = 32
	DefaultResyncDepth   = 4
	DefaultResyncTimeout = time.Second
	DefaultTick          = 5 * time.Millisecond
)

// Config configures a Store made by New.
type Config struct {
	// Primary is the remote store (a *remote.Store, or a fake in tests).
	// If it also has NodeOf(store.PageID) int and Nodes() []string, health
	// is kept per node; otherwise the whole primary is one node. If it has
	// Epochs() []uint64, boot epochs are read from it after each probe.
	Primary store.Store
	// Backup holds a copy of every page (a *store.NVM in production). Its
	// writes must be durable on return as far as the application needs.
	Backup store.Store
	// Pages is the region's size in pages; page ids at or past it are
	// refused with store.ErrBadPage.
	Pages uint64
	// Health tunes the per-node state machine and the read deadline (see
	// package health: default clamp(4 × p99 of the last 256 latencies,
	// 2 ms, 100 ms); Health.Fixed pins it).
	Health health.Config
	// WriteDeadline bounds a remote write; 0 means 4 × the node's read
	// deadline plus 50 µs per page of the call, doubled while the node is
	// being resynced (the resync loads its link). A remote write that misses
	// it (or fails) puts its pages in the outage set; the write still
	// succeeds once the backup has them and the set is durable.
	WriteDeadline time.Duration
	// ProbeTimeout bounds one probe of a down node (default 250 ms).
	ProbeTimeout time.Duration
	// ResyncRate limits resync to this many pages per second per node
	// (default 25000, about 100 MB/s of 4 KiB pages); ResyncBatch pages go
	// in one call (default 32) and ResyncDepth calls are in flight at once
	// (default 4). ResyncTimeout bounds each resync write (default 1 s).
	ResyncRate, ResyncBatch, ResyncDepth int
	ResyncTimeout                        time.Duration
	// Tick is the period of each node's background loop (timeouts of a
	// suspect node, probe schedule, repair of outage pages of a healthy
	// node); default 5 ms. A suspect node gets one probe read a tick, so
	// RecoverAfter (3) ticks is how long a false suspicion lasts.
	Tick time.Duration
	// Registerer, if set, gets the store's Prometheus metrics (see
	// metrics.go); ConstLabels are added to each.
	Registerer  prometheus.Registerer
	ConstLabels prometheus.Labels
	// OnBackupRead, if set, is called after every backup read a call makes
	// with the pages read and the time it took (for benchmarks: the
	// failover cost is the deadline plus this).
	OnBackupRead func(pages int, d time.Duration)
	// OwnPrimary and OwnBackup make Close close them.
	OwnPrimary, OwnBackup bool
}

func (c Config) withDefaults() Config {
	if c.ProbeTimeout <= 0 {
		c.ProbeTimeout = DefaultProbeTimeout
	}
	if c.ResyncRate <= 0 {
		c.ResyncRate = DefaultResyncRate
	}
	if c.ResyncBatch <= 0 {
		c.ResyncBatch = DefaultResyncBatch
	}
	if c.ResyncDepth <= 0 {
		c.ResyncDepth = DefaultResyncDepth
	}
	if c.ResyncTimeout <= 0 {
		c.ResyncTimeout = DefaultResyncTimeout
	}
	if c.Tick <= 0 {
		c.Tick = DefaultTick
	}
	return c
}

func (c Config) validate() error {
	switch {
	case c.Primary == nil || c.Backup == nil:
		return fmt.Errorf("%w: a primary and a backup store are needed", ErrConfig)
	case c.Primary.PageSize() != c.Backup.PageSize():
		return fmt.Errorf("%w: primary page size %d, backup %d", ErrConfig, c.Primary.PageSize(), c.Backup.PageSize())
	case c.Pages == 0 || c.Pages > 1<<40:
		return fmt.Errorf("%w: %d pages", ErrConfig, c.Pages)
	case c.WriteDeadline < 0:
		return fmt.Errorf("%w: write deadline %v", ErrConfig, c.WriteDeadline)
	}
	if err := c.Health.Validate(); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}
