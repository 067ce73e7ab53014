package farmem

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/remote"
)

// dialNodes connects to the memnodes named by cfg. An empty namespace is
// replaced by a fresh random one, so two Opens never share pages by
// accident.
func dialNodes(ctx context.Context, cfg Config) (store.Store, string, error) {
	ns := cfg.Namespace
	if ns == "" {
		var b [8]byte
		rand.Read(b[:])
		ns = "region-" + hex.EncodeToString(b[:])
	}
	st, err := remote.New(ctx, remote.Config{
		Nodes:       cfg.Nodes,
		Namespace:   ns,
		Token:       cfg.Token,
		PageSize:    cfg.PageSize,
		DialTimeout: cfg.DialTimeout,
	})
	if err != nil {
		return nil, "", fmt.Errorf("farmem: connecting to memnodes: %w", err)
	}
	return st, ns, nil
}
