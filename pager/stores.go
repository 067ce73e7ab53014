package pager

import (
	"context"
	"errors"
	"fmt"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/remote"
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
