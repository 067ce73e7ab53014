package remote

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/farmem/farmem/memnode"
)

// BenchmarkNodeThroughput measures page operations per second of one
// embedded memnode over loopback TCP with 64 client connections and 64
// or 256 concurrent callers (one call in flight each; client and server
// share the machine), for several batch sizes, half reads and half writes. Each b.N iteration is one
// second of load; the figure is reported as page-ops/s.
func BenchmarkNodeThroughput(b *testing.B) {
	srv, err := memnode.New(memnode.Config{Capacity: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	for _, tc := range []struct{ workers, batch int }{{64, 1}, {256, 1}, {64, 4}, {64, 16}, {64, 64}} {
		workers, batch := tc.workers, tc.batch
		b.Run(fmt.Sprintf("conns=64/callers=%d/batch=%d", workers, batch), func(b *testing.B) {
			s, err := New(context.Background(), Config{Nodes: []string{l.Addr().String()}, Namespace: "bench", ConnsPerNode: 64})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var ops float64
			var elapsed time.Duration
			for i := 0; i < b.N; i++ {
				res, err := Load(context.Background(), s, LoadConfig{Workers: workers, Batch: batch, ReadPct: 50, Duration: time.Second, Seed: uint64(i)})
				if err != nil {
					b.Fatal(err)
				}
				ops += float64(res.PageOps)
				elapsed += res.Elapsed
			}
			b.ReportMetric(ops/elapsed.Seconds(), "page-ops/s")
		})
	}
}
