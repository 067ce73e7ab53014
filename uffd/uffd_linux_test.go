//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestProbeAndOpen(t *testing.T) {
	avail, err := Probe()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kernel offers %v", avail)
	f, err := Open(Options{Want: FeaturePagefaultFlagWP | FeatureMissingShmem | (1 << 62)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Features()&(1<<62) != 0 {
		t.Errorf("unoffered bit enabled: %v", f.Features())
	}
	if want := (FeaturePagefaultFlagWP | FeatureMissingShmem) & avail; f.Features() != want {
		t.Errorf("enabled %v, want %v", f.Features(), want)
	}
	if f.Available() != avail {
		t.Errorf("Available %v, Probe %v", f.Available(), avail)
	}
}

func TestOpenNeedsMissingFeature(t *testing.T) {
	_, err := Open(Options{Need: 1 << 62})
	if !errors.Is(err, ErrFeature) {
		t.Fatalf("Open with an impossible Need: %v, want ErrFeature", err)
	}
}

func TestOpenDevice(t *testing.T) {
	if _, err := os.Stat("/dev/userfaultfd"); err != nil {
		t.Skip("/dev/userfaultfd not present")
	}
	f, err := Open(Options{Device: true, Want: FeatureMissingShmem})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Features()&FeatureMissingShmem == 0 {
		t.Errorf("features %v", f.Features())
	}
}

func TestShutdownWakesRead(t *testing.T) {
	f, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := make(chan error, 1)
	go func() {
		var buf [4]Msg
		_, err := f.Read(buf[:])
		got <- err
	}()
	if err := f.Shutdown(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-got:
		if !errors.Is(err, ErrClosed) {
			t.Fatalf("Read after Shutdown: %v", err)
		}
	case <-time.After(hangGuard):
		t.Fatal("Shutdown did not wake Read")
	}
	var buf [1]Msg
	if _, err := f.Read(buf[:]); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Read: %v", err)
	}
	if n, err := f.TryRead(buf[:]); n != 0 || err != nil {
		t.Fatalf("TryRead with nothing pending: %d %v", n, err)
	}
}

func TestBadInput(t *testing.T) {
	f, err := Open(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ps := os.Getpagesize()
	mem, err := unix.Mmap(-1, 0, 2*ps, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(mem)
	base := Addr(mem)
	for _, c := range []struct {
		name string
		err  error
	}{
		{"register unaligned", func() error { _, err := f.Register(base+1, ps, ModeMissing); return err }()},
		{"register zero length", func() error { _, err := f.Register(base, 0, ModeMissing); return err }()},
		{"copy empty", func() error { _, err := f.Copy(base, nil, 0); return err }()},
		{"copy odd length", func() error { _, err := f.Copy(base, make([]byte, 100), 0); return err }()},
		{"zeropage negative", func() error { _, err := f.ZeroPage(base, -ps, false); return err }()},
		{"wake unaligned", f.Wake(base+8, ps)},
		{"writeprotect odd", f.WriteProtect(base, ps+1, true, false)},
		{"continue unaligned", func() error { _, err := f.Continue(base+1, ps, false); return err }()},
		{"unregister unaligned", f.Unregister(base+1, ps)},
	} {
		if !errors.Is(c.err, ErrAlign) {
			t.Errorf("%s: %v, want ErrAlign", c.name, c.err)
		}
	}
	// A copy into a range that is not registered: the kernel says ENOENT.
	if _, err := f.Copy(base, make([]byte, ps), 0); !errors.Is(err, ErrMappingGone) {
		t.Errorf("copy into unregistered range: %v, want ErrMappingGone", err)
	}
	if _, err := FromFD(-1, 0); err == nil {
		t.Error("FromFD(-1) succeeded")
	}
}

// TestMissingCopy: missing faults (read and write) resolved with one
// UFFDIO_COPY each; a batched copy of a run of pages before any access;
// the application's writes visible through the handler's own mapping.
func TestMissingCopy(t *testing.T) {
	a := startApp(t, 8, ModeMissing, FeatureMissingShmem)
	a.send(cmdRead, 0, 0)
	a.fault(0, 0)
	if n, err := a.uffd.Copy(a.addr(0), a.pageOf(7, 1), 0); err != nil || n != a.ps {
		t.Fatalf("copy: %d %v", n, err)
	}
	if v, uniform := a.reply("read of page 0"); v != 7 || !uniform {
		t.Fatalf("page 0 reads %d (uniform %v), want 7", v, uniform)
	}

	a.send(cmdWrite, 1, 9)
	a.fault(1, FlagWrite)
	if _, err := a.uffd.Copy(a.addr(1), a.pageOf(0, 1), 0); err != nil {
		t.Fatal(err)
	}
	a.reply("write of page 1")
	if v := a.viewPage(1)[a.ps-1]; v != 9 {
		t.Fatalf("handler view of page 1: %d, want the application's 9", v)
	}

	// One ioctl for a run of four pages, before any access: no fault later.
	run := a.pageOf(3, 4)
	for i := range 4 {
		run[i*a.ps] = byte(3 + i)
		run[i*a.ps+1] = byte(3 + i)
	}
	if n, err := a.uffd.Copy(a.addr(2), run, 0); err != nil || n != len(run) {
		t.Fatalf("batched copy: %d %v", n, err)
	}
	for i := range 4 {
		a.send(cmdRead, 2+i, 0)
		if v, _ := a.reply("read of a batched page"); v != byte(3+i) {
			t.Fatalf("page %d reads %d, want %d", 2+i, v, 3+i)
		}
	}
	a.noEvent()
}

// TestCopyExisting: EEXIST is "already present, wake", not an error, and a
// batched copy over a present page still installs the others.
func TestCopyExisting(t *testing.T) {
	a := startApp(t, 4, ModeMissing, FeatureMissingShmem)
	if n, err := a.uffd.Copy(a.addr(1), a.pageOf(1, 1), 0); err != nil || n != a.ps {
		t.Fatalf("first copy: %d %v", n, err)
	}
	n, err := a.uffd.Copy(a.addr(1), a.pageOf(2, 1), 0)
	if err != nil || n != 0 {
		t.Fatalf("copy over a present page: installed %d err %v, want 0 and nil", n, err)
	}
	n, err = a.uffd.Copy(a.addr(0), a.pageOf(5, 4), 0)
	if err != nil || n != 3*a.ps {
		t.Fatalf("copy of 4 pages with page 1 present: installed %d err %v, want %d", n, err, 3*a.ps)
	}
	for page, want := range []byte{5, 1, 5, 5} {
		if v := a.read(page); v != want {
			t.Fatalf("page %d reads %d, want %d", page, v, want)
		}
	}
	a.noEvent()
}

func TestZeroPage(t *testing.T) {
	a := startApp(t, 2, ModeMissing, FeatureMissingShmem)
	a.send(cmdRead, 1, 0)
	a.fault(1, 0)
	if n, err := a.uffd.ZeroPage(a.addr(1), a.ps, false); err != nil || n != a.ps {
		t.Fatalf("zeropage: %d %v", n, err)
	}
	if v, uniform := a.reply("read of page 1"); v != 0 || !uniform {
		t.Fatalf("zero page reads %d", v)
	}
	if n, err := a.uffd.ZeroPage(a.addr(1), a.ps, false); err != nil || n != 0 {
		t.Fatalf("zeropage over a present page: %d %v, want 0 nil", n, err)
	}
	a.send(cmdWrite, 1, 4)
	a.reply("write of the zero page")
	if v := a.viewPage(1)[0]; v != 4 {
		t.Fatalf("view reads %d after the write, want 4", v)
	}
	a.noEvent()
}

func needFeatures(t *testing.T, need Features) {
	t.Helper()
	avail, err := Probe()
	if err != nil {
		t.Fatal(err)
	}
	if need&^avail != 0 {
		t.Skipf("kernel lacks %v", need&^avail)
	}
}

// TestWriteProtectDirty is dirty tracking by write protection: a clean page
// is installed protected (CopyWP); the first write raises exactly one WP
// fault, which marks the page dirty and unprotects it; later writes do not
// fault until the page is protected again.
func TestWriteProtectDirty(t *testing.T) {
	wp := FeaturePagefaultFlagWP | FeatureWPHugetlbfsShmem | FeatureMissingShmem
	needFeatures(t, wp)
	a := startApp(t, 2, ModeMissing|ModeWP, wp)
	a.send(cmdRead, 0, 0)
	a.fault(0, 0)
	if _, err := a.uffd.Copy(a.addr(0), a.pageOf(1, 1), CopyWP); err != nil {
		t.Fatal(err)
	}
	if v, _ := a.reply("read of page 0"); v != 1 {
		t.Fatalf("read %d", v)
	}
	dirty := false
	a.send(cmdWrite, 0, 5)
	a.fault(0, FlagWrite|FlagWP)
	if a.viewPage(0)[0] != 1 {
		t.Fatal("the write landed before its WP fault was resolved")
	}
	dirty = true
	if err := a.uffd.WriteProtect(a.addr(0), a.ps, false, false); err != nil {
		t.Fatal(err)
	}
	a.reply("write of page 0")
	if !dirty || a.viewPage(0)[0] != 5 {
		t.Fatalf("view %d after the write, want 5", a.viewPage(0)[0])
	}
	a.send(cmdWrite, 0, 6)
	a.reply("second write of page 0")
	a.noEvent()

	if err := a.uffd.WriteProtect(a.addr(0), a.ps, true, false); err != nil {
		t.Fatal(err)
	}
	a.send(cmdWrite, 0, 7)
	a.fault(0, FlagWrite|FlagWP)
	if err := a.uffd.WriteProtect(a.addr(0), a.ps, false, false); err != nil {
		t.Fatal(err)
	}
	a.reply("write after re-protection")
	if a.viewPage(0)[0] != 7 {
		t.Fatalf("view %d, want 7", a.viewPage(0)[0])
	}
}

// TestEvictPunchHole: punching the page out of the memfd makes the next
// access fault as missing again, and the new copy is what it reads.
func TestEvictPunchHole(t *testing.T) {
	a := startApp(t, 2, ModeMissing, FeatureMissingShmem)
	a.send(cmdRead, 1, 0)
	a.fault(1, 0)
	if _, err := a.uffd.Copy(a.addr(1), a.pageOf(0x11, 1), 0); err != nil {
		t.Fatal(err)
	}
	a.reply("first read")
	a.send(cmdWrite, 1, 0x22)
	a.reply("write")
	// Evict: copy out through the handler's view, then punch.
	saved := append([]byte(nil), a.viewPage(1)...)
	if err := PunchHole(a.memfd, int64(a.ps), int64(a.ps)); err != nil {
		t.Fatal(err)
	}
	a.send(cmdRead, 1, 0)
	a.fault(1, 0)
	if _, err := a.uffd.Copy(a.addr(1), saved, 0); err != nil {
		t.Fatal(err)
	}
	if v, uniform := a.reply("read after eviction"); v != 0x22 || !uniform {
		t.Fatalf("read %#x after eviction, want the written 0x22", v)
	}
}

// TestMinorContinue: a page in the memfd's page cache but not mapped by the
// application raises a minor fault, resolved with UFFDIO_CONTINUE.
func TestMinorContinue(t *testing.T) {
	needFeatures(t, FeatureMinorShmem)
	a := startApp(t, 2, ModeMinor, FeatureMinorShmem)
	copy(a.viewPage(0), a.pageOf(3, 1))
	a.send(cmdRead, 0, 0)
	a.fault(0, FlagMinor)
	if n, err := a.uffd.Continue(a.addr(0), a.ps, false); err != nil || n != a.ps {
		t.Fatalf("continue: %d %v", n, err)
	}
	if v, _ := a.reply("read after continue"); v != 3 {
		t.Fatalf("read %d, want 3", v)
	}
}

// TestRemoveUnmapEvents: non-cooperative events are delivered with their
// ranges, and a copy into an unmapped range is ErrMappingGone (ENOENT).
func TestRemoveUnmapEvents(t *testing.T) {
	want := FeatureMissingShmem | FeatureEventRemove | FeatureEventUnmap
	needFeatures(t, want)
	a := startApp(t, 4, ModeMissing, want)
	a.send(cmdRemove, 2, 0)
	m := a.event("remove")
	if start, end := m.Range(); m.Event != EventRemove || start != a.addr(2) || end != a.addr(3) {
		t.Fatalf("event %v [%#x,%#x), want remove [%#x,%#x)", m.Event, start, end, a.addr(2), a.addr(3))
	}
	a.reply("remove")
	a.send(cmdUnmap, 0, 0)
	m = a.event("unmap")
	if start, end := m.Range(); m.Event != EventUnmap || start != a.addr(0) || end != a.addr(4) {
		t.Fatalf("event %v [%#x,%#x), want unmap of the region", m.Event, start, end)
	}
	a.reply("unmap")
	if _, err := a.uffd.Copy(a.addr(0), a.pageOf(1, 1), 0); !errors.Is(err, ErrMappingGone) {
		t.Fatalf("copy after unmap: %v, want ErrMappingGone", err)
	}
}

// TestProcessGone: once the application exits, installs fail with a named
// error instead of succeeding into nothing.
func TestProcessGone(t *testing.T) {
	a := startApp(t, 1, ModeMissing, FeatureMissingShmem)
	a.stop()
	_, err := a.uffd.Copy(a.addr(0), a.pageOf(1, 1), 0)
	if !errors.Is(err, ErrProcessGone) && !errors.Is(err, ErrMappingGone) {
		t.Fatalf("copy after the application exited: %v", err)
	}
	t.Logf("copy after exit: %v", err)
}

func TestMeasureBareFault(t *testing.T) {
	p50, p99, err := MeasureBareFault(64)
	if err != nil {
		t.Fatal(err)
	}
	if p50 <= 0 || p99 < p50 {
		t.Fatalf("p50 %v p99 %v", p50, p99)
	}
	t.Logf("bare userfaultfd fault, 64 pages: p50 %v p99 %v", p50, p99)
	if _, _, err := MeasureBareFault(0); err == nil {
		t.Fatal("MeasureBareFault(0) succeeded")
	}
}

func BenchmarkBareFault(b *testing.B) {
	d, err := BareFaultSamples(b.N)
	if err != nil {
		b.Fatal(err)
	}
	var sum time.Duration
	for _, x := range d {
		sum += x
	}
	p50, p99 := percentiles(d)
	b.ReportMetric(float64(sum.Nanoseconds())/float64(len(d)), "ns/op")
	b.ReportMetric(float64(p50.Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(p99.Nanoseconds())/1e3, "p99-us")
}

// BenchmarkZeroFillFault is the baseline for BenchmarkBareFault: the first
// touch of a page of the same kind of memfd mapping, filled by the kernel
// with no userfaultfd involved.
func BenchmarkZeroFillFault(b *testing.B) {
	ps := os.Getpagesize()
	fd, err := MemfdCreate("zero-fill", int64(b.N*ps))
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	mem, err := MapShared(fd, b.N*ps)
	if err != nil {
		b.Fatal(err)
	}
	defer Unmap(mem)
	d := make([]time.Duration, b.N)
	var sink byte
	b.ResetTimer()
	for i := range b.N {
		t := time.Now()
		sink += mem[i*ps]
		d[i] = time.Since(t)
	}
	b.StopTimer()
	if sink != 0 {
		b.Fatal("fresh memfd pages are not zero")
	}
	p50, p99 := percentiles(d)
	b.ReportMetric(float64(p50.Nanoseconds())/1e3, "p50-us")
	b.ReportMetric(float64(p99.Nanoseconds())/1e3, "p99-us")
}

// TestDuplicateFaults: several threads fault on the same page before it is
// installed; each raises its own event. The first copy installs the page,
// the others meet EEXIST, which Copy turns into "already there, wake".
func TestDuplicateFaults(t *testing.T) {
	const threads = 3
	a := startApp(t, 1, ModeMissing, FeatureMissingShmem, fmt.Sprintf("GOMAXPROCS=%d", threads+1))
	a.send(cmdCrowd, 0, threads)
	for i := range threads {
		a.fault(0, 0)
		t.Logf("fault %d of %d on the page", i+1, threads)
	}
	installed := 0
	for i := range threads {
		n, err := a.uffd.Copy(a.addr(0), a.pageOf(byte(0x40+i), 1), 0)
		if err != nil {
			t.Fatalf("copy %d: %v", i, err)
		}
		installed += n
	}
	if installed != a.ps {
		t.Fatalf("installed %d bytes over %d copies, want one page", installed, threads)
	}
	if v, uniform := a.reply("crowded read"); v != 0x40 || !uniform {
		t.Fatalf("threads read %#x (agree %v), want the first copy's 0x40", v, uniform)
	}
	a.noEvent()
}
