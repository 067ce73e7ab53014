package uffd

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// EvictionWay is one way of fencing an eviction against the application's
// writes.
type EvictionWay string

const (
	// EvictSyncFence is the pager's eviction today, on a userfaultfd with
	// synchronous write protection: UFFDIO_WRITEPROTECT the dirty victims
	// (one ioctl per run of adjacent dirty pages; clean pages are
	// protected already), copy the dirty ones out through the pager's
	// mapping of the memfd, and punch every victim out (one PUNCH_HOLE per
	// run of adjacent victims).
	EvictSyncFence EvictionWay = "sync-fence"
	// EvictPinned is the pinned eviction, on a userfaultfd with WP_ASYNC:
	// vmsplice every victim from the pager's mapping into a pipe (one call
	// with an iovec per page: the pipe holds the pages, not copies), punch
	// them out (one PUNCH_HOLE per run), read them out of the pipe, and run
	// one PAGEMAP_SCAN (ScanWrittenAndProtect) over the batch's address
	// range: the pages it reports were written since they were last
	// protected and need writing back; the others left a uffd-wp marker.
	EvictPinned EvictionWay = "pinned"
)

// EvictionStep is one step of an eviction, per evicted page.
type EvictionStep struct {
	// Name: "writeprotect", "copy", "punch" (sync fence); "vmsplice",
	// "punch", "read", "scan" (pinned).
	Name    string
	PerPage Latency
}

// EvictionCost is the cost of evicting batches of Batch pages one way.
type EvictionCost struct {
	Way EvictionWay
	// Scattered: the victims are every EvictionStride-th page, so that
	// each is a run of its own; otherwise they are adjacent (one run).
	Scattered bool
	// Dirty: the application wrote every victim since it was installed
	// (write-protected) — the write-back case; otherwise none of them.
	Dirty bool
	Batch int
	// PerBatch is the wall time of one batch's eviction; PerPage the same
	// samples divided by Batch. Steps splits PerPage by step (each step's
	// own percentiles: they do not add up to PerPage's).
	PerBatch, PerPage Latency
	Steps             []EvictionStep
	// Syscalls is the number of system calls of one batch's eviction.
	Syscalls int
}

// EvictionResult is what MeasureEviction measured: Rounds batches of Batch
// pages per case, every case once per round, interleaved.
type EvictionResult struct {
	Pages, Batch, Rounds int
	// PipeBytes is the capacity of the pipe the pinned eviction used
	// (F_SETPIPE_SZ: at least Batch pages, rounded up to a power of two).
	PipeBytes int
	Costs     []EvictionCost
}

// EvictionStride is the distance in pages between two victims of a
// scattered batch.
const EvictionStride = 4

// Cost returns the measured cost of one case, and whether it was measured.
func (r EvictionResult) Cost(way EvictionWay, scattered, dirty bool) (EvictionCost, bool) {
	for _, c := range r.Costs {
		if c.Way == way && c.Scattered == scattered && c.Dirty == dirty {
			return c, true
		}
	}
	return EvictionCost{}, false
}

// String formats the result as a table, in microseconds per page.
func (r EvictionResult) String() string {
	var b strings.Builder
	us := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Nanoseconds())/1e3, 'f', 2, 64) }
	fmt.Fprintf(&b, "eviction, batches of %d pages x %d rounds (pipe %d KiB); µs per page, p50 / p99\n",
		r.Batch, r.Rounds, r.PipeBytes>>10)
	for _, c := range r.Costs {
		layout, state := "adjacent", "clean"
		if c.Scattered {
			layout = "scattered"
		}
		if c.Dirty {
			state = "dirty"
		}
		fmt.Fprintf(&b, "%-10s %-9s %-5s %8s / %8s  (%d syscalls)", c.Way, layout, state, us(c.PerPage.P50), us(c.PerPage.P99), c.Syscalls)
		for _, s := range c.Steps {
			fmt.Fprintf(&b, "  %s %s", s.Name, us(s.PerPage.P50))
		}
		b.WriteByte('\n')
	}
	return b.String()
}
