package farmem

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/health"
	"github.com/farmem/farmem/store/remote"
	"github.com/farmem/farmem/store/resilient"
)

// dialNodes connects to the memnodes named by cfg. An empty namespace is
// replaced by a fresh random one, so two Opens never share pages by
// accident. With cfg.Backup it returns a resilient store over them.
func dialNodes(ctx context.Context, cfg Config) (store.Store, string, error) {
	ns := cfg.Namespace
	if ns == "" {
		var b [8]byte
		rand.Read(b[:])
		ns = "region-" + hex.EncodeToString(b[:])
	}
	// The remote reports a memnode that restarted empty (new boot epoch)
	// on the redial goroutine; the resilient store, made after the remote,
	// takes it from there.
	var rs atomic.Pointer[resilient.Store]
	st, err := remote.New(ctx, remote.Config{
		Nodes:       cfg.Nodes,
		Namespace:   ns,
		Token:       cfg.Token,
		PageSize:    cfg.PageSize,
		DialTimeout: cfg.DialTimeout,
		SpinRead:    spinRead(cfg.SpinRead),
		OnEpochChange: func(node int, _, epoch uint64) {
			if s := rs.Load(); s != nil {
				s.EpochChanged(node, epoch)
			}
		},
	})
	if err != nil {
		return nil, "", fmt.Errorf("farmem: connecting to memnodes: %w", err)
	}
	if cfg.Backup == "" {
		return st, ns, nil
	}
	s, err := resilient.Open(ctx, resilient.Config{
		Primary:      st,
		Pages:        uint64(cfg.Size / int64(cfg.PageSize)),
		Health:       health.Config{Fixed: cfg.ReadDeadline},
		Registerer:   cfg.Metrics,
		OnBackupRead: cfg.BackupReadObserver,
		OwnPrimary:   true,
	}, resilient.BackupFile{Path: cfg.Backup, Create: cfg.CreateBackup, RegionID: RegionID(ns)})
	if err != nil {
		st.Close()
		return nil, "", fmt.Errorf("farmem: backup: %w", err)
	}
	rs.Store(s)
	return s, ns, nil
}

// RegionID is the id a region's backup file carries: the first 16 bytes of
// the SHA-256 of its namespace.
func RegionID(namespace string) [16]byte {
	sum := sha256.Sum256([]byte("farmem region\x00" + namespace))
	var id [16]byte
	copy(id[:], sum[:])
	return id
}

// DefaultSpinRead is how long a fault busy-polls for its page's reply before
// it sleeps (Config.SpinRead). On a quiet 2-vCPU KVM guest it took farmem
// bench's fault p50 from 68-87 µs to 39-47 µs and ops/s up by 39-59% (four
// alternating pairs, docs/BENCHMARKS.md).
const DefaultSpinRead = 50 * time.Microsecond

func spinRead(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultSpinRead
	case d < 0:
		return 0
	}
	return d
}
