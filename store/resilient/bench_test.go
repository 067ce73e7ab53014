package resilient_test

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/farmem/farmem/memnode"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/health"
	"github.com/farmem/farmem/store/remote"
	"github.com/farmem/farmem/store/resilient"
)

// BenchmarkRead compares a serial 4 KiB read through the remote client
// alone with the same read through the resilient store over it (healthy
// node: the read goes to the node with a deadline).
func BenchmarkRead(b *testing.B) {
	const pageSize, pages = 4096, 1024
	srv, err := memnode.New(memnode.Config{Capacity: 64 << 20, PageSize: pageSize})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Close()
	ctx := context.Background()
	prim, err := remote.New(ctx, remote.Config{Nodes: []string{ln.Addr().String()}, Namespace: "bench", PageSize: pageSize})
	if err != nil {
		b.Fatal(err)
	}
	defer prim.Close()
	// A deadline no read misses, so that every read goes to the node and
	// the difference to Remote is the wrapper's cost.
	rs, err := resilient.Open(ctx, resilient.Config{Primary: prim, Pages: pages, Health: health.Config{Fixed: time.Second}},
		resilient.BackupFile{Path: filepath.Join(b.TempDir(), "backup"), Create: true})
	if err != nil {
		b.Fatal(err)
	}
	defer rs.Close()
	w := &store.Call{Op: store.OpWrite}
	for i := range pages {
		d := make([]byte, pageSize)
		d[0] = byte(i)
		w.Pages = append(w.Pages, store.Page{ID: store.PageID(i), Data: d, Sum: store.Checksum(d)})
	}
	for i := 0; i < pages; i += 64 {
		c := &store.Call{Op: store.OpWrite, Pages: w.Pages[i : i+64]}
		if err := store.Do(ctx, rs, c); err != nil {
			b.Fatal(err)
		}
	}
	read := func(b *testing.B, s store.Store) {
		before := rs.Counters()
		defer func() {
			after := rs.Counters()
			b.ReportMetric(float64(after.BackupReads-before.BackupReads)/float64(b.N), "backup-reads/op")
		}()
		buf := make([]byte, pageSize)
		c := &store.Call{Op: store.OpRead, Pages: []store.Page{{Data: buf}}, Done: make(chan *store.Call, 1)}
		b.SetBytes(pageSize)
		b.ResetTimer()
		for i := 0; b.Loop(); i++ {
			c.Pages[0].ID = store.PageID(i % pages)
			c.Reset()
			if err := store.Do(ctx, s, c); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("Remote", func(b *testing.B) { read(b, prim) })
	b.Run("RemoteWithDeadline", func(b *testing.B) { read(b, deadlineStore{prim}) })
	b.Run("ResilientHealthy", func(b *testing.B) { read(b, rs) })
}

// deadlineStore gives each call a context with a deadline, as the
// resilient store does, to tell the cost of that from the rest.
type deadlineStore struct{ *remote.Store }

func (d deadlineStore) Do(ctx context.Context, c *store.Call) error {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	return d.Store.Do(ctx, c)
}
