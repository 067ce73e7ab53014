package pager

import (
	"context"
	"fmt"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/remote"
)

// RemoteStores returns a StoreFactory whose regions live on memnodes, each
// region in the namespace "<prefix>-<region id in hex>". A restarted pager
// given the same nodes and prefix finds a re-attached region's pages there,
// so it can recover regions.
func RemoteStores(nodes []string, token []byte, prefix string, pageSize int) StoreFactory {
	return func(ctx context.Context, id uint64, size int64, recover bool) (store.Store, error) {
		return remote.New(ctx, remote.Config{
			Nodes: nodes, Token: token, PageSize: pageSize,
			Namespace: fmt.Sprintf("%s-%016x", prefix, id),
		})
	}
}

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
