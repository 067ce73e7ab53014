package uffd

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Latency is the median and 99th percentile of N samples.
type Latency struct {
	P50, P99 time.Duration
	N        int
}

// BatchCost is the cost of one batched operation over Pages pages.
type BatchCost struct {
	// Pages is the number of pages the operation handles per call:
	// written pages collected and re-protected (scan), or pages protected
	// (UFFDIO_WRITEPROTECT).
	Pages int
	// Regions is the number of regions a scan returned per call (the
	// written pages are spread out, so that up to Pages regions come
	// back); 0 for UFFDIO_WRITEPROTECT.
	Regions int
	// PerCall is the latency of one call; PerPage the same samples
	// divided by Pages (zero when Pages is 0).
	PerCall, PerPage Latency
}

// DirtyTrackingResult is what MeasureDirtyTracking measured, all on memfd
// mappings of Pages pages, over Rounds rounds.
type DirtyTrackingResult struct {
	Pages, Rounds int
	// SyncWP is the first store to a write-protected page whose fault is
	// resolved by a minimal handler in another process (UFFDIO_WRITEPROTECT
	// to clear): what dirty tracking costs the pager today, per page
	// written between two evictions.
	SyncWP Latency
	// AsyncWP is the same first store under UFFD_FEATURE_WP_ASYNC, where
	// the kernel clears the protection itself.
	AsyncWP Latency
	// Scan is one PAGEMAP_SCAN pass over the whole mapping that collects
	// and re-protects the written pages (ScanWrittenAndProtect), for a few
	// numbers of written pages; the first entry has none written (the
	// cost of a scan that finds nothing).
	Scan []BatchCost
	// WriteProtect is one UFFDIO_WRITEPROTECT (protect) of a range of
	// that many written pages, for comparison.
	WriteProtect []BatchCost
}

// String formats the result as a small table, in microseconds.
func (r DirtyTrackingResult) String() string {
	var b strings.Builder
	us := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Nanoseconds())/1e3, 'f', 3, 64) }
	fmt.Fprintf(&b, "dirty tracking, %d pages x %d rounds (µs, p50 / p99)\n", r.Pages, r.Rounds)
	fmt.Fprintf(&b, "first store, sync WP fault (handler in another process): %s / %s\n", us(r.SyncWP.P50), us(r.SyncWP.P99))
	fmt.Fprintf(&b, "first store, WP_ASYNC (kernel resolves):                 %s / %s\n", us(r.AsyncWP.P50), us(r.AsyncWP.P99))
	for _, c := range r.Scan {
		fmt.Fprintf(&b, "PAGEMAP_SCAN WP_MATCHING, %4d written (%4d regions): per call %s / %s, per page %s / %s\n",
			c.Pages, c.Regions, us(c.PerCall.P50), us(c.PerCall.P99), us(c.PerPage.P50), us(c.PerPage.P99))
	}
	for _, c := range r.WriteProtect {
		fmt.Fprintf(&b, "UFFDIO_WRITEPROTECT of %4d written pages:           per call %s / %s, per page %s / %s\n",
			c.Pages, us(c.PerCall.P50), us(c.PerCall.P99), us(c.PerPage.P50), us(c.PerPage.P99))
	}
	return b.String()
}
