package farmem_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/farmem/farmem"
	"github.com/farmem/farmem/internal/nodeproc"
	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/remote"
)

// BenchmarkRemoteFault measures a read fault of one page on a memnode child
// process over loopback TCP, with a budget of 1/8 of the region so that
// nearly every read misses, against the raw 4 KiB round trip measured in the
// same run. It reports fault_p50_us, rtt_p50_us and their ratio, the figure
// farmem bench reports as fault_to_rtt_p50.
func BenchmarkRemoteFault(b *testing.B) {
	node, err := nodeproc.Start(nodeproc.Config{Capacity: 256 << 20, PageSize: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Stop(5 * time.Second)
	ctx := context.Background()
	const size = 64 << 20
	var lat []time.Duration
	r, err := farmem.Open(ctx, farmem.Config{
		Size: size, Local: size / 8, Nodes: []string{node.Addr()},
		FaultObserver: func(_ int, d time.Duration) { lat = append(lat, d) },
	})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	page := make([]byte, 4096)
	for off := int64(0); off < size; off += 4096 {
		page[0] = byte(off >> 12)
		if _, err := r.WriteAt(page, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := r.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	lat = lat[:0]
	var rtt []time.Duration
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if _, err := r.ReadAt(page[:64], int64(rng.IntN(size/4096))*4096); err != nil {
			b.Fatal(err)
		}
		// The machine is shared and noisy: sample the raw round trip in
		// between, so that the ratio compares the same moments.
		if i++; i%1000 == 0 {
			b.StopTimer()
			d, err := remote.RawRTT(ctx, node.Addr(), "bench-rtt", nil, 200)
			if err != nil {
				b.Fatal(err)
			}
			rtt = append(rtt, d...)
			b.StartTimer()
		}
	}
	b.StopTimer()
	if len(lat) > 0 && len(rtt) > 0 {
		f, t := median(lat), median(rtt)
		b.ReportMetric(float64(f.Nanoseconds())/1e3, "fault_p50_us")
		b.ReportMetric(float64(t.Nanoseconds())/1e3, "rtt_p50_us")
		b.ReportMetric(float64(f)/float64(t), "fault/rtt")
	}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkRemoteStoreRead is BenchmarkRemoteFault without the engine: one
// synchronous single-page read of a random page through the remote store,
// the floor under the engine's fault path.
func BenchmarkRemoteStoreRead(b *testing.B) {
	node, err := nodeproc.Start(nodeproc.Config{Capacity: 256 << 20, PageSize: 4096})
	if err != nil {
		b.Fatal(err)
	}
	defer node.Stop(5 * time.Second)
	ctx := context.Background()
	st, err := remote.New(ctx, remote.Config{Nodes: []string{node.Addr()}, Namespace: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	const pages = 16384
	buf := make([]byte, 4096)
	for p := range pages {
		c := store.Call{Op: store.OpWrite, Pages: []store.Page{{ID: store.PageID(p), Data: buf, Sum: store.Checksum(buf)}}}
		if err := st.Do(ctx, &c); err != nil {
			b.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var lat []time.Duration
	c := store.Call{Op: store.OpRead, Pages: []store.Page{{Data: buf}}, Done: make(chan *store.Call, 1)}
	b.ResetTimer()
	for b.Loop() {
		c.Pages[0].ID = store.PageID(rng.IntN(pages))
		t0 := time.Now()
		if err := st.Do(ctx, &c); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	rtt, err := remote.RawRTT(ctx, node.Addr(), "bench-rtt", nil, 2000)
	if err != nil {
		b.Fatal(err)
	}
	f, t := median(lat), median(rtt)
	b.ReportMetric(float64(f.Nanoseconds())/1e3, "read_p50_us")
	b.ReportMetric(float64(t.Nanoseconds())/1e3, "rtt_p50_us")
	b.ReportMetric(float64(f)/float64(t), "read/rtt")
}
