//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

// The pinned eviction of a batch (one vmsplice of many pages, one punch of
// the run, one read), and the two things that break the pin fence: a hole
// pinned by mistake, and a large (THP) folio in the memfd.

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// pinPages vmsplices pages [first, first+n) of the test's view of a into a
// pipe with one call, as MeasureEviction does.
func pinPages(t testing.TB, a *app, first, n int) *pagePipe {
	t.Helper()
	pp, err := newPagePipe(n)
	if err != nil {
		t.Fatal(err)
	}
	iov := make([]unix.Iovec, n)
	for k := range iov {
		iov[k].Base = &a.view[(first+k)*a.ps]
		iov[k].SetLen(a.ps)
	}
	if calls, err := pp.pin(iov); err != nil || calls != 1 {
		pp.close()
		t.Fatalf("vmsplice of %d pages: %d calls, %v", n, calls, err)
	}
	return pp
}

// TestEvictPinBatch: with one vmsplice of a whole batch, a write to any
// page of the batch after the vmsplice and before the punch is in the
// pipe's copy, and the scan after the punch tells exactly the written
// pages from the others.
func TestEvictPinBatch(t *testing.T) {
	needScan(t, FeatureMissingShmem)
	const n = 32
	a := startApp(t, n, ModeMissing|ModeWP, wpAsyncTracking)
	s := a.scanner(0)
	a.send(cmdRead, 0, 0)
	a.fault(0, 0)
	if _, err := a.uffd.Copy(a.addr(0), a.pageOf(0x11, n), CopyWP); err != nil {
		t.Fatal(err)
	}
	a.reply("first read")
	if got := a.written(s, n); len(got) != 0 {
		t.Fatalf("installed pages read as written: %v", got)
	}
	pp := pinPages(t, a, 0, n)
	defer pp.close()
	racing := map[int]byte{0: 0x20, 7: 0x27, 8: 0x28, 30: 0x3e, 31: 0x3f}
	for pg, v := range racing {
		a.send(cmdWrite, pg, v)
		a.reply("write after the vmsplice")
	}
	if err := PunchHole(a.memfd, 0, int64(n*a.ps)); err != nil {
		t.Fatal(err)
	}
	saved := make([]byte, n*a.ps)
	if _, err := pp.drain(saved); err != nil {
		t.Fatal(err)
	}
	for pg := range n {
		want, ok := racing[pg]
		if !ok {
			want = 0x11
		}
		p := saved[pg*a.ps : (pg+1)*a.ps]
		if p[0] != want || !a.uniform(p) {
			t.Errorf("page %d in the pipe: %#x (uniform %v), want %#x", pg, p[0], a.uniform(p), want)
		}
	}
	got := a.written(s, n)
	if len(got) != len(racing) {
		t.Fatalf("written after the punch: %v, want the %d racing pages", got, len(racing))
	}
	for _, pg := range got {
		if _, ok := racing[pg]; !ok {
			t.Errorf("page %d reads as written", pg)
		}
	}
}

// TestEvictPinBatchUnderWrites: the application increments a counter in
// the middle page of a batch with plain loads and stores while the pager
// evicts the whole batch (one vmsplice, one punch, one read) and serves it
// back as fast as it can. No increment is lost.
func TestEvictPinBatchUnderWrites(t *testing.T) {
	needScan(t, FeatureMissingShmem)
	const n, mid = 16, 9
	a := startApp(t, n, ModeMissing|ModeWP, wpAsyncTracking)
	bad, ok, evictions := evictLoop(t, a, mid, n, 200, func(data []byte) {
		pp := pinPages(t, a, 0, n)
		if err := PunchHole(a.memfd, 0, int64(n*a.ps)); err != nil {
			t.Fatal(err)
		}
		if _, err := pp.drain(data); err != nil {
			t.Fatal(err)
		}
		pp.close()
	})
	t.Logf("%d evictions of %d pages, %d lost increments seen", evictions, n, bad)
	if evictions == 0 {
		t.Fatal("no eviction happened during the run")
	}
	if !ok || bad != 0 {
		t.Fatalf("batched pinned eviction lost writes: %d mismatches", bad)
	}
	a.noEvent()
}

// TestVmspliceHoleAllocates: vmsplice of a page that is a hole in the memfd
// is a read fault on the pager's (unregistered) mapping: shmem allocates a
// zeroed page in the memfd, exactly like a touch. The application's next
// access then finds the page and raises no missing fault: it reads zeros
// instead of its data. The pager must never pin a page it has not
// installed (its residency map says which).
func TestVmspliceHoleAllocates(t *testing.T) {
	needFeatures(t, FeatureMissingShmem)
	a := startApp(t, 2, ModeMissing, FeatureMissingShmem)
	if off, err := unix.Seek(a.memfd, 0, unix.SEEK_DATA); !errors.Is(err, unix.ENXIO) {
		t.Fatalf("fresh memfd has data at %d (%v)", off, err)
	}
	pp := pinPages(t, a, 1, 1)
	if off, err := unix.Seek(a.memfd, 0, unix.SEEK_DATA); err != nil || off != int64(a.ps) {
		t.Fatalf("after vmsplice of hole page 1: data at %d (%v), want a page allocated at %d", off, err, a.ps)
	}
	got := make([]byte, a.ps)
	if _, err := pp.drain(got); err != nil {
		t.Fatal(err)
	}
	pp.close()
	if got[0] != 0 || !a.uniform(got) {
		t.Fatalf("pinned hole reads %#x", got[0])
	}
	if v := a.read(1); v != 0 { // no fault: the page is there now
		t.Fatalf("application reads %#x", v)
	}
	a.noEvent()
}

// envTHPDir names a directory on a tmpfs mounted with huge=always, for
// TestEvictPinLargeFolio (the memfds of this machine never get large
// folios: /sys/kernel/mm/transparent_hugepage/shmem_enabled is "never").
const envTHPDir = "FARMEM_UFFD_THP_TMPFS"

// TestEvictPinLargeFolio: when the victim is part of a large folio (shmem
// THP), the punch of one 4 KiB page cannot just drop it: the kernel zeroes
// the range in the folio and then tries to split it, which fails while the
// pipe holds a reference. The pipe then reads zeros, not the page's data,
// and the memfd still holds the (zeroed) page, so the application's next
// access raises no missing fault. The pin fence is only sound with order-0
// folios in the memfd. Skipped unless FARMEM_UFFD_THP_TMPFS names a
// huge=always tmpfs directory.
func TestEvictPinLargeFolio(t *testing.T) {
	dir := os.Getenv(envTHPDir)
	if dir == "" {
		t.Skipf("%s not set (mount -t tmpfs -o huge=always,size=16m none DIR)", envTHPDir)
	}
	const huge = 2 << 20
	ps := os.Getpagesize()
	fd, err := unix.Open(filepath.Join(dir, "evict-pin-thp"), unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(filepath.Join(dir, "evict-pin-thp"))
	defer unix.Close(fd)
	if err := unix.Ftruncate(fd, 2*huge); err != nil {
		t.Fatal(err)
	}
	mem, err := MapShared(fd, 2*huge)
	if err != nil {
		t.Fatal(err)
	}
	defer Unmap(mem)
	for i := range mem {
		mem[i] = 0x11
	}
	s, err := OpenPagemap(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	huges, err := s.ScanAll(Addr(mem), Addr(mem)+uintptr(len(mem)), ScanRequest{Require: PageHuge, Return: PageHuge}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if huges == 0 {
		t.Skipf("no large folio in %s: is it mounted huge=always?", dir)
	}
	t.Logf("%d of %d pages in large folios", huges, len(mem)/ps)

	const victim, control = 5, 6
	pp, err := newPagePipe(1)
	if err != nil {
		t.Fatal(err)
	}
	defer pp.close()
	iov := []unix.Iovec{{Base: &mem[victim*ps]}}
	iov[0].SetLen(ps)
	if _, err := pp.pin(iov); err != nil {
		t.Fatal(err)
	}
	for i := victim * ps; i < (victim+1)*ps; i++ {
		mem[i] = 0x33 // the write the fence must catch
	}
	if err := PunchHole(fd, int64(victim*ps), int64(ps)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, ps)
	if _, err := pp.drain(got); err != nil {
		t.Fatal(err)
	}
	off, err := unix.Seek(fd, int64(victim*ps), unix.SEEK_DATA)
	stillThere := err == nil && off == int64(victim*ps)
	t.Logf("pinned victim in a large folio: pipe reads %#x (want 0x33), memfd still holds the page: %v", got[0], stillThere)
	if got[0] == 0x33 && !stillThere {
		t.Fatal("the pin fence held on a large folio: the finding no longer holds")
	}
	if got[0] != 0 || !stillThere {
		t.Fatalf("pipe reads %#x, still there %v: want 0 and true (zeroed in place, not split)", got[0], stillThere)
	}

	// Control: without a pin, the punch splits the folio and frees the page.
	if err := PunchHole(fd, int64(control*ps), int64(ps)); err != nil {
		t.Fatal(err)
	}
	if off, err := unix.Seek(fd, int64(control*ps), unix.SEEK_DATA); err == nil && off == int64(control*ps) {
		t.Errorf("unpinned punch of page %d: the memfd still holds it", control)
	}
}
