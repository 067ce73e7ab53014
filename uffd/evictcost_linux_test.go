//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"os"
	"strconv"
	"testing"
	"time"
)

// TestMeasureEviction runs the measurement briefly for a few batch sizes
// and checks its shape: every case there, the sample counts and syscall
// counts right. MeasureEviction itself checks every copy out, every scan
// and that every victim left the memfd, each round. No timing is asserted.
func TestMeasureEviction(t *testing.T) {
	needScan(t, FeatureMissingShmem|FeaturePagefaultFlagWP|FeatureWPHugetlbfsShmem)
	for _, batch := range []int{1, 3, 32} {
		const rounds = 4
		r, err := MeasureEviction((rounds-1)*batch+1, batch) // rounded up to whole batches
		if err != nil {
			t.Fatalf("batch %d: %v", batch, err)
		}
		t.Logf("\n%v", r)
		if r.Rounds != rounds || r.Batch != batch || r.PipeBytes < batch*os.Getpagesize() {
			t.Errorf("batch %d: rounds %d, batch %d, pipe %d", batch, r.Rounds, r.Batch, r.PipeBytes)
		}
		if len(r.Costs) != 8 {
			t.Fatalf("batch %d: %d cases, want 8", batch, len(r.Costs))
		}
		for _, way := range []EvictionWay{EvictSyncFence, EvictPinned} {
			for _, scattered := range []bool{false, true} {
				for _, dirty := range []bool{false, true} {
					c, ok := r.Cost(way, scattered, dirty)
					if !ok {
						t.Fatalf("batch %d: no %s scattered=%v dirty=%v", batch, way, scattered, dirty)
					}
					if c.PerPage.N != rounds || c.PerBatch.N != rounds || c.PerPage.P99 < c.PerPage.P50 || c.PerBatch.P50 <= 0 {
						t.Errorf("%s scattered=%v dirty=%v: %+v / %+v", way, scattered, dirty, c.PerBatch, c.PerPage)
					}
					runs := 1
					if scattered {
						runs = batch
					}
					var want, steps int
					switch way {
					case EvictSyncFence:
						want, steps = runs, 3 // punch per run
						if dirty {
							want += runs // write-protect per run
						}
					case EvictPinned:
						want, steps = 1+runs+1+1, 4 // vmsplice, punch per run, read, scan
					}
					if c.Syscalls != want || len(c.Steps) != steps {
						t.Errorf("%s scattered=%v dirty=%v: %d syscalls, %d steps; want %d, %d", way, scattered, dirty, c.Syscalls, len(c.Steps), want, steps)
					}
				}
			}
		}
	}
	if _, err := MeasureEviction(0, 1); err == nil {
		t.Error("MeasureEviction(0, 1) succeeded")
	}
	if _, err := MeasureEviction(1, 0); err == nil {
		t.Error("MeasureEviction(1, 0) succeeded")
	}
}

// BenchmarkEviction reports MeasureEviction for batches of 1, 32 and 256
// pages, one round per iteration (ns/op is the wall time of one round of
// all eight cases, setup included), as custom metrics in µs per evicted
// page: {sync,pin}-{adj,scat}-{clean,dirty}-{p50,p99}. Run it with
// -benchtime=Nx for N rounds per batch size.
func BenchmarkEviction(b *testing.B) {
	for _, batch := range []int{1, 32, 256} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) {
			r, err := MeasureEviction(b.N*batch, batch)
			if err != nil {
				b.Fatal(err)
			}
			us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
			for _, c := range r.Costs {
				name := map[EvictionWay]string{EvictSyncFence: "sync", EvictPinned: "pin"}[c.Way]
				name += map[bool]string{false: "-adj", true: "-scat"}[c.Scattered]
				name += map[bool]string{false: "-clean", true: "-dirty"}[c.Dirty]
				b.ReportMetric(us(c.PerPage.P50), name+"-p50-µs")
				b.ReportMetric(us(c.PerPage.P99), name+"-p99-µs")
			}
			if testing.Verbose() {
				b.Logf("\n%v", r)
			}
		})
	}
}
