package remote

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"github.com/farmem/farmem/memnode"
	"github.com/farmem/farmem/store"
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

// BenchmarkSerialRead compares one synchronous single-page read through the
// full client (Submit then wait, woken by a reader goroutine; and Do, where
// the caller reads its own reply) with RawRTT's bare
// request/response on one connection: the ratio of the two is the client's
// overhead over the physical round trip. FARMEM_BENCH_NODE=host:port runs it
// against a memnode in another process instead of an embedded one.
func BenchmarkSerialRead(b *testing.B) {
	srv, err := memnode.New(memnode.Config{Capacity: 1 << 26})
	if err != nil {
		b.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(l)
	defer srv.Close()
	addr := l.Addr().String()
	if ext := os.Getenv("FARMEM_BENCH_NODE"); ext != "" {
		// A memnode in another process (farmem memnode), as in farmem bench.
		addr = ext
	}
	b.Run("raw", func(b *testing.B) {
		rtt, err := RawRTT(context.Background(), addr, "raw", nil, b.N)
		if err != nil {
			b.Fatal(err)
		}
		var sum time.Duration
		for _, d := range rtt {
			sum += d
		}
		b.ReportMetric(float64(sum.Nanoseconds())/float64(b.N), "ns/rtt")
	})
	b.Run("client", func(b *testing.B) {
		s, err := New(context.Background(), Config{Nodes: []string{addr}, Namespace: "client", ConnsPerNode: 1})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		pg := []store.Page{{ID: 1, Data: make([]byte, ps)}}
		pg[0].Sum = store.Checksum(pg[0].Data)
		if err := store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: pg}); err != nil {
			b.Fatal(err)
		}
		c := &store.Call{Op: store.OpRead, Pages: pg, Done: make(chan *store.Call, 1)}
		for _, mode := range []string{"submit", "do"} {
			b.Run(mode, func(b *testing.B) {
				b.ReportAllocs()
				b.ResetTimer()
				t0 := time.Now()
				for i := 0; i < b.N; i++ {
					c.Reset()
					var err error
					if mode == "do" {
						err = s.Do(ctx, c)
					} else {
						s.Submit(ctx, c)
						<-c.Done
						err = c.FirstErr()
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(time.Since(t0).Nanoseconds())/float64(b.N), "ns/rtt")
			})
		}
	})
}
