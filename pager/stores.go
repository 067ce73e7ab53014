package pager

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/remote"
	"github.com/farmem/farmem/store/resilient"
)

// RemoteStores returns a StoreFactory whose regions live on memnodes, each
// region in the namespace "<prefix>-<region id in hex>". A restarted pager
// given the same nodes and prefix finds a re-attached region's pages there,
// so it can recover regions.
//
// Each region gets two memnode clients on the same namespace: one for the
// fault path's reads and one for write-backs and frees. A read issued with
// Do then never shares a connection with a write-back in flight, so it
// keeps the client's caller-reads-its-reply path (no goroutine hand-off;
// docs/PROTOCOL.md, "Latency of one synchronous page read").
func RemoteStores(nodes []string, token []byte, prefix string, pageSize int) StoreFactory {
	return func(ctx context.Context, id uint64, size int64, recover bool) (store.Store, error) {
		cfg := remote.Config{
			Nodes: nodes, Token: token, PageSize: pageSize,
			Namespace: fmt.Sprintf("%s-%016x", prefix, id),
		}
		reads, err := remote.New(ctx, cfg)
		if err != nil {
			return nil, err
		}
		writes, err := remote.New(ctx, cfg)
		if err != nil {
			reads.Close()
			return nil, err
		}
		return &splitStore{reads: reads, writes: writes}, nil
	}
}

// splitStore sends reads to one store and everything else to another; both
// hold the same pages.
type splitStore struct {
	reads, writes *remote.Store
}

var (
	_ store.Store = (*splitStore)(nil)
	_ store.Doer  = (*splitStore)(nil)
)

func (s *splitStore) pick(c *store.Call) *remote.Store {
	if c.Op == store.OpRead {
		return s.reads
	}
	return s.writes
}

// Submit implements store.Store.
func (s *splitStore) Submit(ctx context.Context, c *store.Call) { s.pick(c).Submit(ctx, c) }

// Do implements store.Doer.
func (s *splitStore) Do(ctx context.Context, c *store.Call) error { return s.pick(c).Do(ctx, c) }

// PageSize implements store.Store.
func (s *splitStore) PageSize() int { return s.reads.PageSize() }

// Close implements store.Store.
func (s *splitStore) Close() error { return errors.Join(s.reads.Close(), s.writes.Close()) }

// MemStores returns a StoreFactory whose regions live in this process's
// memory (store.Mem), without a capacity limit. They die with the pager:
// a re-attach is refused with ErrNotRecoverable.
func MemStores(pageSize int) StoreFactory {
	return func(ctx context.Context, id uint64, size int64, recover bool) (store.Store, error) {
		if recover {
			return nil, fmt.Errorf("%w: region %d: the far tier is this pager's memory, lost with its predecessor", ErrNotRecoverable, id)
		}
		return store.NewMem(pageSize, 0), nil
	}
}

// ResilientStores is RemoteStores with a local backup of every page (the
// resilient store of package store/resilient, technique C1): region id's
// pages are also written to the file "<backupPrefix>.<region id in hex>"
// (its outage set beside it, + ".outage"), reads that a memnode does not
// answer in time, or answers without the page, are served from the file,
// and a memnode that restarted empty is resynced from it. A restarted pager
// with the same prefix reopens a re-attached region's file, so it recovers
// the region even if a memnode lost its pages meanwhile. The files are
// removed when the application detaches.
func ResilientStores(nodes []string, token []byte, prefix string, pageSize int, backupPrefix string) StoreFactory {
	return func(ctx context.Context, id uint64, size int64, recover bool) (store.Store, error) {
		ns := fmt.Sprintf("%s-%016x", prefix, id)
		var rs atomic.Pointer[resilient.Store]
		st, err := remote.New(ctx, remote.Config{
			Nodes: nodes, Token: token, PageSize: pageSize, Namespace: ns,
			OnEpochChange: func(node int, _, epoch uint64) {
				if s := rs.Load(); s != nil {
					s.EpochChanged(node, epoch)
				}
			},
		})
		if err != nil {
			return nil, err
		}
		path := fmt.Sprintf("%s.%016x", backupPrefix, id)
		s, err := resilient.Open(ctx, resilient.Config{Primary: st, Pages: uint64(size) / uint64(pageSize), OwnPrimary: true},
			resilient.BackupFile{Path: path, Create: !recover, RegionID: backupRegionID(ns)})
		if err != nil {
			st.Close()
			if recover && errors.Is(err, resilient.ErrBackupMissing) {
				return nil, fmt.Errorf("%w: %w", ErrNotRecoverable, err)
			}
			return nil, err
		}
		rs.Store(s)
		return &backedStore{Store: s, path: path}, nil
	}
}

// backupRegionID is the id a region's backup file carries.
func backupRegionID(namespace string) [16]byte {
	sum := sha256.Sum256([]byte("farmem pager region\x00" + namespace))
	var id [16]byte
	copy(id[:], sum[:])
	return id
}

// backedStore is a resilient store whose backup files the pager removes
// once the region's application is gone (Discard).
type backedStore struct {
	*resilient.Store
	path string
}

// Discard removes the backup and outage-set files; call it after Close.
func (b *backedStore) Discard() error {
	return errors.Join(os.Remove(b.path), os.Remove(b.path+".outage"))
}

// discarder is a store with files to remove once its region is gone for
// good (the application detached or exited).
type discarder interface{ Discard() error }
