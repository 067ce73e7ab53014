//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"errors"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// needScan skips when the kernel has no PAGEMAP_SCAN or no WP_ASYNC.
func needScan(t *testing.T, need Features) {
	t.Helper()
	if err := ScanSupported(); err != nil {
		if errors.Is(err, ErrScanNotSupported) {
			t.Skipf("no PAGEMAP_SCAN: %v", err)
		}
		t.Fatal(err)
	}
	needFeatures(t, need|FeatureWPAsync)
}

// scanner opens the application's pagemap, as the pager does.
func (a *app) scanner(vecLen int) *PagemapScanner {
	a.t.Helper()
	s, err := OpenPagemap(a.cmd.Process.Pid, vecLen)
	if err != nil {
		a.t.Fatal(err)
	}
	a.t.Cleanup(func() { s.Close() })
	return s
}

// pagesOf lists the page numbers (relative to the application's mapping)
// covered by regions.
func (a *app) pagesOf(regions []PageRegion) []int {
	var pages []int
	for _, r := range regions {
		for p := uintptr(r.Start); p < uintptr(r.End); p += uintptr(a.ps) {
			pages = append(pages, int((p-a.base)/uintptr(a.ps)))
		}
	}
	return pages
}

// written collects the pages the dirty-tracking scan reports over the whole
// mapping (re-protecting them).
func (a *app) written(s *PagemapScanner, pages int) []int {
	a.t.Helper()
	var got []int
	if _, err := s.ScanAll(a.base, a.addr(pages), ScanWrittenAndProtect, func(r []PageRegion) error {
		got = append(got, a.pagesOf(r)...)
		return nil
	}); err != nil {
		a.t.Fatal(err)
	}
	return got
}

func TestCategoriesString(t *testing.T) {
	for _, c := range []struct {
		c    Categories
		want string
	}{
		{0, "0"},
		{PageWritten, "WRITTEN"},
		{PageWPAllowed | PagePresent | PageGuard, "WPALLOWED|PRESENT|GUARD"},
		{1 << 40, "BIT40"},
	} {
		if got := c.c.String(); got != c.want {
			t.Errorf("%#x: %q, want %q", uint64(c.c), got, c.want)
		}
	}
}

func TestScanBadInput(t *testing.T) {
	needScan(t, 0)
	s, err := OpenPagemap(0, 4)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ps := uintptr(s.pageSize)
	for _, c := range []struct {
		name       string
		start, end uintptr
		req        ScanRequest
		want       error
	}{
		{"unaligned start", ps + 1, 4 * ps, ScanRequest{Return: PageWritten}, ErrAlign},
		{"unaligned end", ps, 4*ps + 7, ScanRequest{Return: PageWritten}, ErrAlign},
		{"end before start", 4 * ps, ps, ScanRequest{Return: PageWritten}, ErrAlign},
		{"unknown category", 0, 0, ScanRequest{Return: 1 << 40}, ErrScanNotSupported},
		{"unknown flag", 0, 0, ScanRequest{Flags: 1 << 30}, ErrScanNotSupported},
	} {
		if _, _, err := s.Scan(c.start, c.end, c.req); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, _, err := s.Scan(0, 0, ScanRequest{MaxPages: -1}); err == nil {
		t.Error("negative MaxPages accepted")
	}
}

// TestScanCheckWPAsync: with ScanCheckWPAsync a mapping that is not under
// asynchronous write protection fails the scan instead of being skipped.
func TestScanCheckWPAsync(t *testing.T) {
	needScan(t, 0)
	ps := unix.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 2*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	mem[0] = 1
	s, err := OpenPagemap(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := s.Scan(Addr(mem), Addr(mem)+uintptr(2*ps), ScanWrittenAndProtect); !errors.Is(err, ErrScanNotWPAsync) {
		t.Fatalf("checked scan of an unregistered mapping: %v, want ErrScanNotWPAsync", err)
	}
	// Without the check it is skipped: nothing matches WPALLOWED.
	r, end, err := s.Scan(Addr(mem), Addr(mem)+uintptr(2*ps), ScanRequest{Require: PageWPAllowed, Return: PageWPAllowed})
	if err != nil || len(r) != 0 || end != Addr(mem)+uintptr(2*ps) {
		t.Fatalf("unchecked scan: %v regions, end %#x, %v", r, end, err)
	}
	// A plain category scan sees the written, present, anonymous page.
	r, _, err = s.Scan(Addr(mem), Addr(mem)+uintptr(2*ps), ScanRequest{Require: PagePresent, Return: PagePresent | PageFile})
	if err != nil || len(r) != 1 || r[0].Start != uint64(Addr(mem)) || r[0].Pages(ps) != 1 || r[0].Categories != PagePresent {
		t.Fatalf("present scan: %+v, %v", r, err)
	}
}

// TestScanWrittenAndProtect is dirty tracking by WP_ASYNC + PAGEMAP_SCAN, in
// the pager's shape: the application registers its memfd mapping for
// write protection on a userfaultfd with FeatureWPAsync; the test (the
// pager) protects the range with UFFDIO_WRITEPROTECT through the received
// descriptor and scans the application's /proc/PID/pagemap. Writes never
// raise an event; the scan reports exactly the written pages and
// re-protects them in the same pass.
func TestScanWrittenAndProtect(t *testing.T) {
	needScan(t, 0)
	const pages = 16
	a := startApp(t, pages, ModeWP, FeatureWPAsync)
	if a.uffd.Features()&FeatureWPAsync == 0 {
		t.Fatalf("WP_ASYNC not enabled: %v", a.uffd.Features())
	}
	s := a.scanner(0)
	// Populate some pages from the application before protecting, so the
	// range holds both present pages and holes.
	for p := 0; p < pages; p += 3 {
		a.send(cmdWrite, p, 1)
		a.reply("populating write")
	}
	if err := a.uffd.WriteProtect(a.base, pages*a.ps, true, false); err != nil {
		t.Fatal(err)
	}
	if got := a.written(s, pages); len(got) != 0 {
		t.Fatalf("written right after protecting: %v", got)
	}
	subset := []int{0, 1, 2, 5, 9, 15}
	for _, p := range subset {
		a.send(cmdWrite, p, 2)
		a.reply("write")
	}
	a.read(7) // a read of a hole must not count as a write
	a.read(3) // nor a read of a present page
	a.noEvent()
	if got := a.written(s, pages); !slices.Equal(got, subset) {
		t.Fatalf("written pages %v, want %v", got, subset)
	}
	if got := a.written(s, pages); len(got) != 0 {
		t.Fatalf("second scan found %v: the first did not re-protect", got)
	}
	a.send(cmdWrite, 9, 3)
	a.reply("write after the scan")
	a.send(cmdWrite, 12, 3)
	a.reply("write after the scan")
	if got := a.written(s, pages); !slices.Equal(got, []int{9, 12}) {
		t.Fatalf("after new writes: %v, want [9 12]", got)
	}
	for _, p := range subset {
		want := byte(2)
		if p == 9 {
			want = 3
		}
		if v := a.viewPage(p)[0]; v != want {
			t.Errorf("page %d holds %d, want %d", p, v, want)
		}
	}
	a.noEvent()
}

// TestScanContinuation: a vector of one region makes the scan stop after
// each run of written pages; walkEnd says where, and continuing from it
// finds the rest, exactly once. MaxPages stops the scan early the same way.
func TestScanContinuation(t *testing.T) {
	needScan(t, 0)
	const pages = 32
	a := startApp(t, pages, ModeWP, FeatureWPAsync)
	s := a.scanner(1)
	if s.VecLen() != 1 {
		t.Fatalf("VecLen %d", s.VecLen())
	}
	if err := a.uffd.WriteProtect(a.base, pages*a.ps, true, false); err != nil {
		t.Fatal(err)
	}
	// Runs: {3}, {4..6} merge with 3 into [3,7); {10}; {20, 21}; {31}.
	written := []int{3, 4, 5, 6, 10, 20, 21, 31}
	for _, p := range written {
		a.send(cmdWrite, p, 1)
		a.reply("write")
	}
	end := a.addr(pages)
	start, calls := a.base, 0
	var got []int
	wantRuns := [][]int{{3, 4, 5, 6}, {10}, {20, 21}, {31}}
	for start < end {
		r, walkEnd, err := s.Scan(start, end, ScanWrittenAndProtect)
		if err != nil {
			t.Fatal(err)
		}
		if len(r) > 1 {
			t.Fatalf("%d regions in a vector of 1", len(r))
		}
		if walkEnd <= start && len(r) == 0 {
			t.Fatalf("no progress at %#x", start)
		}
		if calls < len(wantRuns) {
			if ps := a.pagesOf(r); !slices.Equal(ps, wantRuns[calls]) {
				t.Fatalf("call %d returned pages %v, want %v", calls, ps, wantRuns[calls])
			}
			if walkEnd == end && calls < len(wantRuns)-1 {
				t.Fatalf("call %d walked to the end with runs left", calls)
			}
		}
		got = append(got, a.pagesOf(r)...)
		start = walkEnd
		calls++
	}
	if !slices.Equal(got, written) || calls < len(wantRuns) {
		t.Fatalf("continued scans found %v in %d calls, want %v", got, calls, written)
	}
	if again := a.written(s, pages); len(again) != 0 {
		t.Fatalf("pages left unprotected: %v", again)
	}

	// MaxPages: two pages per call, through ScanAll (whose limit is the
	// total) and by hand.
	for _, p := range written {
		a.send(cmdWrite, p, 2)
		a.reply("write")
	}
	big := a.scanner(0)
	req := ScanWrittenAndProtect
	req.MaxPages = 2
	r, walkEnd, err := big.Scan(a.base, end, req)
	if err != nil {
		t.Fatal(err)
	}
	if ps := a.pagesOf(r); !slices.Equal(ps, []int{3, 4}) || walkEnd != a.addr(5) {
		t.Fatalf("MaxPages 2: pages %v walkEnd page %d", ps, (walkEnd-a.base)/uintptr(a.ps))
	}
	req.MaxPages = 3
	n, err := big.ScanAll(walkEnd, end, req, func(r []PageRegion) error {
		if ps := a.pagesOf(r); !slices.Equal(ps, []int{5, 6, 10}) {
			t.Errorf("ScanAll MaxPages 3: pages %v", ps)
		}
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("ScanAll MaxPages 3: %d pages, %v", n, err)
	}
	if rest := a.written(s, pages); !slices.Equal(rest, []int{20, 21, 31}) {
		t.Fatalf("rest %v, want [20 21 31]", rest)
	}
}

// TestScanAllocatesNothing: a scanner reuses its vector and argument.
func TestScanAllocatesNothing(t *testing.T) {
	needScan(t, 0)
	s, err := OpenPagemap(0, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mem, err := unix.Mmap(-1, 0, 64*s.pageSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	for i := 0; i < len(mem); i += 2 * s.pageSize {
		mem[i] = 1
	}
	req := ScanRequest{Require: PagePresent, Return: PagePresent}
	fn := func([]PageRegion) error { return nil }
	allocs := testing.AllocsPerRun(50, func() {
		if n, err := s.ScanAll(Addr(mem), Addr(mem)+uintptr(len(mem)), req, fn); err != nil || n != 32 {
			t.Fatalf("ScanAll: %d pages, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per ScanAll", allocs)
	}
}
