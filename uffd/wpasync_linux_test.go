//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

// Experiments on what WP_ASYNC leaves of the synchronous write fence that the
// pager's eviction needs (docs/TRANSPARENT.md, "What is missing"). Each test
// states the finding it pins down; they run on the real kernel and fail if
// the kernel behaves otherwise.

import (
	"errors"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// wpAsyncTracking is the feature set of a region tracked by WP_ASYNC and
// served by missing faults.
const wpAsyncTracking = FeatureWPAsync | FeatureMissingShmem

// TestWPAsyncResolvesEveryWPFault: on a userfaultfd with WP_ASYNC, no write
// to a write-protected page reaches the handler — not after CopyWP, not
// after UFFDIO_WRITEPROTECT — while missing faults on the same descriptor
// stay synchronous. Write protection cannot fence writers there.
func TestWPAsyncResolvesEveryWPFault(t *testing.T) {
	needScan(t, FeatureMissingShmem)
	a := startApp(t, 2, ModeMissing|ModeWP, wpAsyncTracking)
	s := a.scanner(0)

	a.send(cmdRead, 0, 0)
	a.fault(0, 0) // missing: still delivered, the reader blocks until Copy
	if _, err := a.uffd.Copy(a.addr(0), a.pageOf(0x11, 1), CopyWP); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.reply("read of page 0"); v != 0x11 {
		t.Fatalf("read %#x", v)
	}
	if got := a.written(s, 1); len(got) != 0 {
		t.Fatalf("page installed with CopyWP reads as written: %v", got)
	}
	a.send(cmdWrite, 0, 0x22)
	a.reply("write to a page installed with CopyWP") // would hang on a sync WP fault
	a.noEvent()
	if err := a.uffd.WriteProtect(a.addr(0), a.ps, true, false); err != nil {
		t.Fatal(err)
	}
	a.send(cmdWrite, 0, 0x33)
	a.reply("write to a page protected by UFFDIO_WRITEPROTECT")
	a.noEvent()
	if got := a.written(s, 1); len(got) != 1 || got[0] != 0 {
		t.Fatalf("written %v, want [0]", got)
	}
	if a.viewPage(0)[0] != 0x33 {
		t.Fatalf("view %#x", a.viewPage(0)[0])
	}
}

// TestWPAsyncOneModePerRange: asynchronous write protection is a property of
// the userfaultfd, and a range can be registered with only one userfaultfd
// (EBUSY), so one range cannot mix modes. Two userfaultfds of one process
// can cover two ranges, one asynchronous, one synchronous.
func TestWPAsyncOneModePerRange(t *testing.T) {
	needScan(t, FeatureWPHugetlbfsShmem|FeaturePagefaultFlagWP)
	ps := unix.Getpagesize()
	fd, err := MemfdCreate("one-mode", int64(8*ps))
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	mem, err := MapShared(fd, 8*ps)
	if err != nil {
		t.Fatal(err)
	}
	defer Unmap(mem)
	async, err := Open(Options{Need: FeatureWPAsync})
	if err != nil {
		t.Fatal(err)
	}
	defer async.Close()
	sync, err := Open(Options{Need: FeaturePagefaultFlagWP | FeatureWPHugetlbfsShmem})
	if err != nil {
		t.Fatal(err)
	}
	defer sync.Close()
	base := Addr(mem)
	if _, err := async.Register(base, 4*ps, ModeWP); err != nil {
		t.Fatal(err)
	}
	defer async.Unregister(base, 4*ps)
	if _, err := sync.Register(base, 4*ps, ModeWP); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("second userfaultfd on the same range: %v, want EBUSY", err)
	}
	if _, err := sync.Register(base+uintptr(4*ps), 4*ps, ModeWP); err != nil {
		t.Fatalf("second userfaultfd on the next range: %v", err)
	}
	defer sync.Unregister(base+uintptr(4*ps), 4*ps)
	s, err := OpenPagemap(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r, _, err := s.Scan(base, base+uintptr(8*ps), ScanRequest{Require: PageWPAllowed, Return: PageWPAllowed})
	if err != nil {
		t.Fatal(err)
	}
	if len(r) != 1 || r[0].Start != uint64(base) || r[0].Pages(ps) != 4 {
		t.Fatalf("WPALLOWED regions %+v, want the first 4 pages only", r)
	}
	if _, _, err := s.Scan(base, base+uintptr(8*ps), ScanWrittenAndProtect); !errors.Is(err, ErrScanNotWPAsync) {
		t.Fatalf("checked scan over both: %v, want ErrScanNotWPAsync", err)
	}
}

// pinPage takes a reference to the page at view[off:off+ps] in a pipe
// (vmsplice without SPLICE_F_GIFT): the pipe buffer holds the page itself,
// not a copy, so it keeps seeing writes to the page until the page is
// unmapped everywhere.
func pinPage(t testing.TB, view []byte) (r, w int) {
	t.Helper()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	iov := []unix.Iovec{{Base: &view[0]}}
	iov[0].SetLen(len(view))
	n, err := unix.Vmsplice(p[1], iov, 0)
	if err != nil || n != len(view) {
		unix.Close(p[0])
		unix.Close(p[1])
		t.Fatalf("vmsplice: %d, %v", n, err)
	}
	return p[0], p[1]
}

// unpinPage reads the pinned page's contents out of the pipe and closes it.
func unpinPage(t testing.TB, r, w int, into []byte) {
	t.Helper()
	defer unix.Close(r)
	defer unix.Close(w)
	for got := 0; got < len(into); {
		n, err := unix.Read(r, into[got:])
		if err != nil || n == 0 {
			t.Fatalf("read pinned page: %d, %v", n, err)
		}
		got += n
	}
}

// TestEvictPinFence: a fence for eviction that needs no write protection.
// The pager takes a reference to the victim page (vmsplice into a pipe),
// punches it out of the memfd — which unmaps it from the application, whose
// next access is a synchronous missing fault — and only then copies the
// contents out of the pipe. A write that lands after the pager took the
// reference and before the punch is in the copy; the copy made before the
// punch (the eviction order of today) misses it. After the punch, the page
// table tells whether the page was written since it was last protected: a
// uffd-wp marker survives the punch (PageSwapped), a written page leaves
// none (PageWritten).
func TestEvictPinFence(t *testing.T) {
	needScan(t, FeatureMissingShmem)
	a := startApp(t, 2, ModeMissing|ModeWP, wpAsyncTracking)
	s := a.scanner(0)
	state := func(page int) Categories {
		r, _, err := s.Scan(a.addr(page), a.addr(page+1), ScanRequest{Return: PageWritten | PageSwapped | PagePresent})
		if err != nil || len(r) != 1 {
			t.Fatalf("state of page %d: %+v, %v", page, r, err)
		}
		return r[0].Categories
	}
	for page := range 2 {
		a.send(cmdRead, page, 0)
		a.fault(page, 0)
		if _, err := a.uffd.Copy(a.addr(page), a.pageOf(0x11, 1), CopyWP); err != nil {
			t.Fatal(err)
		}
		a.reply("first read")
	}

	// Page 0: written before and after the pager pinned it.
	a.send(cmdWrite, 0, 0x22)
	a.reply("write before eviction")
	r, w := pinPage(t, a.viewPage(0))
	naive := append([]byte(nil), a.viewPage(0)...) // today's copy-then-punch
	a.send(cmdWrite, 0, 0x33)
	a.reply("write racing the eviction")
	if err := PunchHole(a.memfd, 0, int64(a.ps)); err != nil {
		t.Fatal(err)
	}
	saved := make([]byte, a.ps)
	unpinPage(t, r, w, saved)
	if naive[0] != 0x22 || saved[0] != 0x33 || !a.uniform(saved) {
		t.Fatalf("copy before the punch %#x (want 0x22), pinned copy after it %#x (want 0x33)", naive[0], saved[0])
	}
	if st := state(0); st != PageWritten {
		t.Fatalf("page 0 after the punch: %v, want WRITTEN (no marker: written since protected)", st)
	}

	// Page 1: protected by a scan, not written, then evicted: the marker
	// stays, so the pager knows it needs no write-back.
	a.written(s, 2)
	r, w = pinPage(t, a.viewPage(1))
	if err := PunchHole(a.memfd, int64(a.ps), int64(a.ps)); err != nil {
		t.Fatal(err)
	}
	clean := make([]byte, a.ps)
	unpinPage(t, r, w, clean)
	if clean[0] != 0x11 {
		t.Fatalf("page 1 pinned copy %#x", clean[0])
	}
	if st := state(1); st != PageSwapped {
		t.Fatalf("page 1 after the punch: %v, want SWAPPED (the uffd-wp marker)", st)
	}

	// Both now fault as missing, synchronously; serve the pinned copies.
	for page, data := range [][]byte{saved, clean} {
		a.send(cmdRead, page, 0)
		a.fault(page, 0)
		if _, err := a.uffd.Copy(a.addr(page), data, CopyWP); err != nil {
			t.Fatal(err)
		}
		if v, uniform := a.reply("read after eviction"); v != data[0] || !uniform {
			t.Fatalf("page %d reads %#x after eviction, want %#x", page, v, data[0])
		}
	}
	if got := a.written(s, 2); len(got) != 0 {
		t.Fatalf("pages served with CopyWP read as written: %v", got)
	}
}

func (a *app) uniform(b []byte) bool {
	for _, v := range b {
		if v != b[0] {
			return false
		}
	}
	return true
}

// evictLoop runs cmdCounter on page counter of a while it makes the first
// pages pages resident (serving the missing fault on counter with one
// UFFDIO_COPY of them, write-protected) and evicts them with evict, over and
// over. evict gets the buffer the evicted contents go to, which the next
// install copies back. It returns the application's mismatch count, whether
// its reply was whole, and the number of evictions.
func evictLoop(t *testing.T, a *app, counter, pages int, steps byte, evict func(data []byte)) (bad int, ok bool, evictions int) {
	t.Helper()
	data := make([]byte, pages*a.ps)
	a.send(cmdCounter, counter, steps)
	resident := false
	fds := []unix.PollFd{{Fd: int32(a.sock), Events: unix.POLLIN}}
	deadline := time.Now().Add(hangGuard)
	for {
		if n, _ := unix.Poll(fds, 0); n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("counter did not finish within %v (%d evictions)", hangGuard, evictions)
		}
		if !resident {
			select {
			case m := <-a.events:
				if m.Event != EventPagefault || m.Address() != a.addr(counter) {
					t.Fatalf("unexpected event %v at %#x", m.Event, m.Address())
				}
				if _, err := a.uffd.Copy(a.addr(0), data, CopyWP); err != nil {
					t.Fatal(err)
				}
				resident = true
			case <-time.After(time.Millisecond):
			}
			continue
		}
		evict(data)
		resident = false
		evictions++
	}
	v, allGood := a.reply("counter")
	return int(v), allGood, evictions
}

// TestEvictPinFenceUnderWrites: the application increments a counter in a
// page with plain loads and stores while the pager evicts the page and
// serves it back as fast as it can. With the pinned eviction no increment
// is ever lost. The copy-then-punch eviction is run as a control and only
// logged: whether it loses a write is up to the race.
func TestEvictPinFenceUnderWrites(t *testing.T) {
	needScan(t, FeatureMissingShmem)
	for _, c := range []struct {
		name string
		pin  bool
	}{{"pinned", true}, {"copy-then-punch", false}} {
		t.Run(c.name, func(t *testing.T) {
			a := startApp(t, 1, ModeMissing|ModeWP, wpAsyncTracking)
			bad, ok, evictions := evictLoop(t, a, 0, 1, 200, func(data []byte) {
				if c.pin { // pin, punch, then copy
					r, w := pinPage(t, a.viewPage(0))
					if err := PunchHole(a.memfd, 0, int64(a.ps)); err != nil {
						t.Fatal(err)
					}
					unpinPage(t, r, w, data)
					return
				}
				copy(data, a.viewPage(0))
				if err := PunchHole(a.memfd, 0, int64(a.ps)); err != nil {
					t.Fatal(err)
				}
			})
			t.Logf("%s: %d evictions, %d lost increments seen", c.name, evictions, bad)
			if evictions == 0 {
				t.Fatal("no eviction happened during the run")
			}
			if c.pin && (!ok || bad != 0) {
				t.Fatalf("pinned eviction lost writes: %d mismatches", bad)
			}
			a.noEvent()
		})
	}
}
