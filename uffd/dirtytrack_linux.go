//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

const helperWPFault = "wp-fault"

// runWPHandler is the minimal write-protect handler: one goroutine that
// blocks in Read and resolves every WP fault with one UFFDIO_WRITEPROTECT
// (clear, wake) of its page — what the pager does for the first write to a
// clean page. At exit it prints "faults N" on stdout.
func runWPHandler() error {
	f, err := FromFD(helperFDUffd, FeaturePagefaultFlagWP|FeatureWPHugetlbfsShmem)
	if err != nil {
		return err
	}
	defer f.Close()
	stop := os.NewFile(helperFDStop, "stop")
	go func() {
		_, _ = io.Copy(io.Discard, stop)
		_ = f.Shutdown()
	}()
	ps := f.PageSize()
	mask := ^uintptr(ps - 1)
	ready := os.NewFile(helperFDReady, "ready")
	if _, err := ready.Write([]byte{1}); err != nil {
		return fmt.Errorf("ready: %w", err)
	}
	ready.Close()
	var buf [64]Msg
	faults := 0
	for {
		n, err := f.Read(buf[:])
		if errors.Is(err, ErrClosed) {
			fmt.Printf("faults %d\n", faults)
			return nil
		}
		if err != nil {
			return err
		}
		for i := range buf[:n] {
			m := &buf[i]
			if m.Event != EventPagefault {
				continue
			}
			if m.Flags()&FlagWP == 0 {
				return fmt.Errorf("fault at %#x with flags %#x: not a write-protect fault", m.Address(), m.Flags())
			}
			if err := f.WriteProtect(m.Address()&mask, ps, false, false); err != nil {
				return err
			}
			faults++
		}
	}
}

func latencyOf(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	p50, p99 := percentiles(d)
	return Latency{P50: p50, P99: p99, N: len(d)}
}

// dirtyTrackingBatches are the batch sizes measured, those that fit.
var dirtyTrackingBatches = []int{1, 32, 512}

func batchCost(pages, regions int, d []time.Duration) BatchCost {
	c := BatchCost{Pages: pages, Regions: regions, PerCall: latencyOf(d)}
	if pages > 0 {
		per := make([]time.Duration, len(d))
		for i, x := range d {
			per[i] = x / time.Duration(pages)
		}
		c.PerPage = latencyOf(per)
	}
	return c
}

// MeasureDirtyTracking measures the two ways of tracking which pages of a
// memfd mapping are written (see DirtyTrackingResult): the synchronous
// write-protect fault per first write, with its handler in a separate
// process (this binary re-executed: the caller must call MaybeRunHelper
// first thing in main, as for MeasureBareFault), against
// UFFD_FEATURE_WP_ASYNC with PAGEMAP_SCAN. Each store is timed on its own;
// batch operations per call. It needs pages >= 1 and rounds >= 1; batch
// sizes above pages are left out.
func MeasureDirtyTracking(pages, rounds int) (DirtyTrackingResult, error) {
	res := DirtyTrackingResult{Pages: pages, Rounds: rounds}
	if pages <= 0 || rounds <= 0 {
		return res, fmt.Errorf("uffd: MeasureDirtyTracking: %d pages, %d rounds: need at least one of each", pages, rounds)
	}
	if err := measureAsync(&res); err != nil {
		return res, fmt.Errorf("uffd: MeasureDirtyTracking: WP_ASYNC: %w", err)
	}
	if err := measureSync(&res); err != nil {
		return res, fmt.Errorf("uffd: MeasureDirtyTracking: sync WP: %w", err)
	}
	return res, nil
}

// wpRegion is a memfd of n pages mapped shared, registered for write
// protection on a fresh userfaultfd with the given features, every page
// populated by a store.
type wpRegion struct {
	memfd int
	mem   []byte
	f     *FD
}

func newWPRegion(n int, need Features) (*wpRegion, error) {
	ps := os.Getpagesize()
	r := &wpRegion{memfd: -1}
	var err error
	if r.memfd, err = MemfdCreate("farmem-dirty-tracking", int64(n*ps)); err != nil {
		return nil, err
	}
	if r.mem, err = MapShared(r.memfd, n*ps); err != nil {
		r.close()
		return nil, err
	}
	if r.f, err = Open(Options{Need: need}); err != nil {
		r.close()
		return nil, err
	}
	if _, err = r.f.Register(Addr(r.mem), len(r.mem), ModeWP); err != nil {
		r.close()
		return nil, err
	}
	for i := 0; i < len(r.mem); i += ps {
		r.mem[i] = 1
	}
	return r, nil
}

func (r *wpRegion) close() {
	if r.f != nil {
		_ = r.f.Unregister(Addr(r.mem), len(r.mem))
		r.f.Close()
	}
	if r.mem != nil {
		Unmap(r.mem)
	}
	if r.memfd >= 0 {
		unix.Close(r.memfd)
	}
}

// measureAsync fills AsyncWP and Scan. Nothing here can block on a
// handler, so it runs in this process.
func measureAsync(res *DirtyTrackingResult) error {
	pages, rounds := res.Pages, res.Rounds
	r, err := newWPRegion(pages, FeatureWPAsync)
	if err != nil {
		return err
	}
	defer r.close()
	s, err := OpenPagemap(0, 0)
	if err != nil {
		return err
	}
	defer s.Close()
	ps := os.Getpagesize()
	start, end := Addr(r.mem), Addr(r.mem)+uintptr(len(r.mem))
	regions := 0
	count := func(rs []PageRegion) error { regions += len(rs); return nil }
	arm := func(want int) error {
		regions = 0
		n, err := s.ScanAll(start, end, ScanWrittenAndProtect, count)
		if err == nil && want >= 0 && n != want {
			err = fmt.Errorf("scan found %d written pages, want %d", n, want)
		}
		return err
	}
	if err := arm(pages); err != nil {
		return err
	}

	d := make([]time.Duration, 0, pages*rounds)
	for round := range rounds {
		for i := 0; i < len(r.mem); i += ps {
			t := time.Now()
			r.mem[i] = byte(round)
			d = append(d, time.Since(t))
		}
		if err := arm(pages); err != nil {
			return err
		}
	}
	res.AsyncWP = latencyOf(d)

	for _, n := range append([]int{0}, dirtyTrackingBatches...) {
		if n > pages {
			continue
		}
		stride := 1
		if n > 0 {
			stride = pages / n
		}
		d := make([]time.Duration, 0, rounds)
		perCall := 0
		for round := range rounds {
			for k := range n {
				r.mem[k*stride*ps] = byte(round)
			}
			t := time.Now()
			err := arm(n)
			d = append(d, time.Since(t))
			if err != nil {
				return err
			}
			perCall = regions
		}
		res.Scan = append(res.Scan, batchCost(n, perCall, d))
	}
	return nil
}

// measureSync fills SyncWP and WriteProtect, with the WP handler in a
// helper process.
func measureSync(res *DirtyTrackingResult) error {
	pages, rounds := res.Pages, res.Rounds
	r, err := newWPRegion(pages, FeaturePagefaultFlagWP|FeatureWPHugetlbfsShmem)
	if err != nil {
		return err
	}
	defer r.close()
	h, err := startHelper(helperWPFault, r.f)
	if err != nil {
		return err
	}
	h.watch(func() { _ = r.f.Unregister(Addr(r.mem), len(r.mem)) })
	ps := os.Getpagesize()
	base := Addr(r.mem)

	d := make([]time.Duration, 0, pages*rounds)
	var runErr error
	for round := range rounds {
		if runErr = r.f.WriteProtect(base, len(r.mem), true, false); runErr != nil {
			break
		}
		for i := 0; i < len(r.mem); i += ps {
			t := time.Now()
			r.mem[i] = byte(round)
			d = append(d, time.Since(t))
		}
	}
	res.SyncWP = latencyOf(d)

	for _, n := range dirtyTrackingBatches {
		if n > pages || runErr != nil {
			continue
		}
		d := make([]time.Duration, 0, rounds)
		for round := range rounds {
			// Unprotected and written, so that protecting changes every
			// page-table entry, as the scan does for written pages.
			if runErr = r.f.WriteProtect(base, n*ps, false, false); runErr != nil {
				break
			}
			for k := range n {
				r.mem[k*ps] = byte(round)
			}
			t := time.Now()
			runErr = r.f.WriteProtect(base, n*ps, true, false)
			d = append(d, time.Since(t))
			if runErr != nil {
				break
			}
		}
		res.WriteProtect = append(res.WriteProtect, batchCost(n, 0, d))
	}
	out, err := h.stop()
	if runErr != nil {
		return runErr
	}
	if err != nil {
		return err
	}
	var faults int
	if _, err := fmt.Sscanf(string(bytes.TrimSpace([]byte(out))), "faults %d", &faults); err != nil {
		return fmt.Errorf("%w: helper printed %q", ErrHelper, out)
	}
	if faults != pages*rounds {
		return fmt.Errorf("%w: helper resolved %d write-protect faults, want %d (one per page per round)", ErrHelper, faults, pages*rounds)
	}
	return nil
}
