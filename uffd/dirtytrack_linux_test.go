//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"strconv"
	"testing"
	"time"
)

// TestMeasureDirtyTracking runs the measurement briefly and checks that its
// results are sane: every latency positive and ordered, the sample counts
// and batch sizes right. No timing is asserted.
func TestMeasureDirtyTracking(t *testing.T) {
	needScan(t, FeaturePagefaultFlagWP|FeatureWPHugetlbfsShmem)
	const pages, rounds = 64, 3
	r, err := MeasureDirtyTracking(pages, rounds)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%v", r)
	sane := func(name string, l Latency, n int) {
		t.Helper()
		if l.N != n || l.P50 <= 0 || l.P99 < l.P50 {
			t.Errorf("%s: %+v, want %d positive samples with p99 >= p50", name, l, n)
		}
	}
	sane("sync WP", r.SyncWP, pages*rounds)
	sane("async WP", r.AsyncWP, pages*rounds)
	wantScan := []int{0, 1, 32}
	if len(r.Scan) != len(wantScan) {
		t.Fatalf("%d scan sizes, want %v", len(r.Scan), wantScan)
	}
	for i, c := range r.Scan {
		if c.Pages != wantScan[i] {
			t.Errorf("scan %d: %d pages, want %d", i, c.Pages, wantScan[i])
		}
		// The written pages are spread out: one region each.
		if c.Regions != c.Pages {
			t.Errorf("scan of %d pages returned %d regions", c.Pages, c.Regions)
		}
		sane("scan per call", c.PerCall, rounds)
		if c.Pages > 0 {
			sane("scan per page", c.PerPage, rounds)
		} else if c.PerPage != (Latency{}) {
			t.Errorf("per-page figure for an empty scan: %+v", c.PerPage)
		}
	}
	if len(r.WriteProtect) != 2 || r.WriteProtect[0].Pages != 1 || r.WriteProtect[1].Pages != 32 {
		t.Fatalf("write-protect sizes %+v, want 1 and 32", r.WriteProtect)
	}
	for _, c := range r.WriteProtect {
		sane("writeprotect per call", c.PerCall, rounds)
		sane("writeprotect per page", c.PerPage, rounds)
	}
	if _, err := MeasureDirtyTracking(0, 1); err == nil {
		t.Error("MeasureDirtyTracking(0, 1) succeeded")
	}
	if _, err := MeasureDirtyTracking(1, 0); err == nil {
		t.Error("MeasureDirtyTracking(1, 0) succeeded")
	}
}

// BenchmarkDirtyTracking reports MeasureDirtyTracking over 1024 pages, one
// round per iteration (ns/op is the wall time of a round), as custom metrics in µs: sync-wp and async-wp are
// the first store to a clean page (p50, p99); scan-N the PAGEMAP_SCAN pass
// that collects and re-protects N written pages (per call, and per page);
// wprotect-N one UFFDIO_WRITEPROTECT of N pages.
func BenchmarkDirtyTracking(b *testing.B) {
	const pages = 1024
	r, err := MeasureDirtyTracking(pages, b.N)
	if err != nil {
		b.Fatal(err)
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	b.ReportMetric(us(r.SyncWP.P50), "sync-wp-p50-µs")
	b.ReportMetric(us(r.SyncWP.P99), "sync-wp-p99-µs")
	b.ReportMetric(us(r.AsyncWP.P50), "async-wp-p50-µs")
	b.ReportMetric(us(r.AsyncWP.P99), "async-wp-p99-µs")
	for _, c := range r.Scan {
		n := strconv.Itoa(c.Pages)
		b.ReportMetric(us(c.PerCall.P50), "scan-"+n+"-call-p50-µs")
		b.ReportMetric(us(c.PerCall.P99), "scan-"+n+"-call-p99-µs")
		if c.Pages > 0 {
			b.ReportMetric(us(c.PerPage.P50), "scan-"+n+"-page-p50-µs")
		}
	}
	for _, c := range r.WriteProtect {
		n := strconv.Itoa(c.Pages)
		b.ReportMetric(us(c.PerCall.P50), "wprotect-"+n+"-call-p50-µs")
		b.ReportMetric(us(c.PerCall.P99), "wprotect-"+n+"-call-p99-µs")
		b.ReportMetric(us(c.PerPage.P50), "wprotect-"+n+"-page-p50-µs")
	}
	if testing.Verbose() {
		b.Logf("\n%v", r)
	}
}
