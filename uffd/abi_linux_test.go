//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// abiProbe prints "NAME VALUE" for every size, offset and constant this
// package defines by hand. Constants newer than the installed header are
// guarded with #ifdef and simply not printed.
const abiProbe = `
#include <stdio.h>
#include <stddef.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#define P(n, v) printf("%s %llu\n", n, (unsigned long long)(v))
#define S(t) P("sizeof " #t, sizeof(struct t))
#define O(t, f) P("offsetof " #t "." #f, offsetof(struct t, f))
int main(void) {
	S(uffdio_api); O(uffdio_api, api); O(uffdio_api, features); O(uffdio_api, ioctls);
	S(uffdio_range); O(uffdio_range, start); O(uffdio_range, len);
	S(uffdio_register); O(uffdio_register, range); O(uffdio_register, mode); O(uffdio_register, ioctls);
	S(uffdio_copy); O(uffdio_copy, dst); O(uffdio_copy, src); O(uffdio_copy, len); O(uffdio_copy, mode); O(uffdio_copy, copy);
	S(uffdio_zeropage); O(uffdio_zeropage, range); O(uffdio_zeropage, mode); O(uffdio_zeropage, zeropage);
	S(uffdio_writeprotect); O(uffdio_writeprotect, range); O(uffdio_writeprotect, mode);
	S(uffdio_continue); O(uffdio_continue, range); O(uffdio_continue, mode); O(uffdio_continue, mapped);
	S(uffd_msg); O(uffd_msg, event); O(uffd_msg, arg.pagefault.flags); O(uffd_msg, arg.pagefault.address);
	O(uffd_msg, arg.pagefault.feat.ptid); O(uffd_msg, arg.fork.ufd); O(uffd_msg, arg.remove.start);
	O(uffd_msg, arg.remove.end); O(uffd_msg, arg.remap.from); O(uffd_msg, arg.remap.to); O(uffd_msg, arg.remap.len);
	P("UFFD_API", UFFD_API);
	P("UFFDIO_API", UFFDIO_API); P("UFFDIO_REGISTER", UFFDIO_REGISTER); P("UFFDIO_UNREGISTER", UFFDIO_UNREGISTER);
	P("UFFDIO_WAKE", UFFDIO_WAKE); P("UFFDIO_COPY", UFFDIO_COPY); P("UFFDIO_ZEROPAGE", UFFDIO_ZEROPAGE);
	P("UFFDIO_WRITEPROTECT", UFFDIO_WRITEPROTECT); P("UFFDIO_CONTINUE", UFFDIO_CONTINUE);
#ifdef USERFAULTFD_IOC_NEW
	P("USERFAULTFD_IOC_NEW", USERFAULTFD_IOC_NEW);
#endif
	P("UFFD_EVENT_PAGEFAULT", UFFD_EVENT_PAGEFAULT); P("UFFD_EVENT_FORK", UFFD_EVENT_FORK);
	P("UFFD_EVENT_REMAP", UFFD_EVENT_REMAP); P("UFFD_EVENT_REMOVE", UFFD_EVENT_REMOVE); P("UFFD_EVENT_UNMAP", UFFD_EVENT_UNMAP);
	P("UFFD_PAGEFAULT_FLAG_WRITE", UFFD_PAGEFAULT_FLAG_WRITE); P("UFFD_PAGEFAULT_FLAG_WP", UFFD_PAGEFAULT_FLAG_WP);
#ifdef UFFD_PAGEFAULT_FLAG_MINOR
	P("UFFD_PAGEFAULT_FLAG_MINOR", UFFD_PAGEFAULT_FLAG_MINOR);
#endif
	P("UFFDIO_REGISTER_MODE_MISSING", UFFDIO_REGISTER_MODE_MISSING); P("UFFDIO_REGISTER_MODE_WP", UFFDIO_REGISTER_MODE_WP);
#ifdef UFFDIO_REGISTER_MODE_MINOR
	P("UFFDIO_REGISTER_MODE_MINOR", UFFDIO_REGISTER_MODE_MINOR);
#endif
	P("UFFDIO_COPY_MODE_DONTWAKE", UFFDIO_COPY_MODE_DONTWAKE); P("UFFDIO_COPY_MODE_WP", UFFDIO_COPY_MODE_WP);
	P("UFFDIO_ZEROPAGE_MODE_DONTWAKE", UFFDIO_ZEROPAGE_MODE_DONTWAKE);
	P("UFFDIO_WRITEPROTECT_MODE_WP", UFFDIO_WRITEPROTECT_MODE_WP);
	P("UFFDIO_WRITEPROTECT_MODE_DONTWAKE", UFFDIO_WRITEPROTECT_MODE_DONTWAKE);
	P("UFFDIO_CONTINUE_MODE_DONTWAKE", UFFDIO_CONTINUE_MODE_DONTWAKE);
	P("_UFFDIO_REGISTER", _UFFDIO_REGISTER); P("_UFFDIO_UNREGISTER", _UFFDIO_UNREGISTER); P("_UFFDIO_WAKE", _UFFDIO_WAKE);
	P("_UFFDIO_COPY", _UFFDIO_COPY); P("_UFFDIO_ZEROPAGE", _UFFDIO_ZEROPAGE); P("_UFFDIO_WRITEPROTECT", _UFFDIO_WRITEPROTECT);
	P("_UFFDIO_CONTINUE", _UFFDIO_CONTINUE); P("_UFFDIO_API", _UFFDIO_API);
#ifdef UFFD_USER_MODE_ONLY
	P("UFFD_USER_MODE_ONLY", UFFD_USER_MODE_ONLY);
#endif
#define F(n) P(#n, n)
	F(UFFD_FEATURE_PAGEFAULT_FLAG_WP); F(UFFD_FEATURE_EVENT_FORK); F(UFFD_FEATURE_EVENT_REMAP);
	F(UFFD_FEATURE_EVENT_REMOVE); F(UFFD_FEATURE_MISSING_HUGETLBFS); F(UFFD_FEATURE_MISSING_SHMEM);
	F(UFFD_FEATURE_EVENT_UNMAP); F(UFFD_FEATURE_SIGBUS); F(UFFD_FEATURE_THREAD_ID);
#ifdef UFFD_FEATURE_MINOR_HUGETLBFS
	F(UFFD_FEATURE_MINOR_HUGETLBFS);
#endif
#ifdef UFFD_FEATURE_MINOR_SHMEM
	F(UFFD_FEATURE_MINOR_SHMEM);
#endif
#ifdef UFFD_FEATURE_EXACT_ADDRESS
	F(UFFD_FEATURE_EXACT_ADDRESS);
#endif
#ifdef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
	F(UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
#endif
#ifdef UFFD_FEATURE_WP_UNPOPULATED
	F(UFFD_FEATURE_WP_UNPOPULATED);
#endif
#ifdef UFFD_FEATURE_POISON
	F(UFFD_FEATURE_POISON);
#endif
#ifdef UFFD_FEATURE_WP_ASYNC
	F(UFFD_FEATURE_WP_ASYNC);
#endif
#ifdef UFFD_FEATURE_MOVE
	F(UFFD_FEATURE_MOVE);
#endif
	return 0;
}
`

// TestABIAgainstHeader compiles and runs a C program against
// <linux/userfaultfd.h> and compares every hand-made size, offset and
// constant with the kernel's. It skips when gcc or the header is missing.
func TestABIAgainstHeader(t *testing.T) {
	kernel := runProbe(t, "/usr/include/linux/userfaultfd.h", abiProbe)
	var m Msg
	var c uffdioCopy
	var z uffdioZeropage
	var r uffdioRegister
	var a uffdioAPI
	var w uffdioWriteprotect
	var k uffdioContinue
	ours := map[string]uint64{
		"sizeof uffdio_api":                  uint64(unsafe.Sizeof(a)),
		"offsetof uffdio_api.api":            uint64(unsafe.Offsetof(a.API)),
		"offsetof uffdio_api.features":       uint64(unsafe.Offsetof(a.Features)),
		"offsetof uffdio_api.ioctls":         uint64(unsafe.Offsetof(a.Ioctls)),
		"sizeof uffdio_range":                uint64(unsafe.Sizeof(uffdioRange{})),
		"offsetof uffdio_range.start":        uint64(unsafe.Offsetof(uffdioRange{}.Start)),
		"offsetof uffdio_range.len":          uint64(unsafe.Offsetof(uffdioRange{}.Len)),
		"sizeof uffdio_register":             uint64(unsafe.Sizeof(r)),
		"offsetof uffdio_register.range":     uint64(unsafe.Offsetof(r.Range)),
		"offsetof uffdio_register.mode":      uint64(unsafe.Offsetof(r.Mode)),
		"offsetof uffdio_register.ioctls":    uint64(unsafe.Offsetof(r.Ioctls)),
		"sizeof uffdio_copy":                 uint64(unsafe.Sizeof(c)),
		"offsetof uffdio_copy.dst":           uint64(unsafe.Offsetof(c.Dst)),
		"offsetof uffdio_copy.src":           uint64(unsafe.Offsetof(c.Src)),
		"offsetof uffdio_copy.len":           uint64(unsafe.Offsetof(c.Len)),
		"offsetof uffdio_copy.mode":          uint64(unsafe.Offsetof(c.Mode)),
		"offsetof uffdio_copy.copy":          uint64(unsafe.Offsetof(c.Copy)),
		"sizeof uffdio_zeropage":             uint64(unsafe.Sizeof(z)),
		"offsetof uffdio_zeropage.range":     uint64(unsafe.Offsetof(z.Range)),
		"offsetof uffdio_zeropage.mode":      uint64(unsafe.Offsetof(z.Mode)),
		"offsetof uffdio_zeropage.zeropage":  uint64(unsafe.Offsetof(z.Zeropage)),
		"sizeof uffdio_writeprotect":         uint64(unsafe.Sizeof(w)),
		"offsetof uffdio_writeprotect.range": uint64(unsafe.Offsetof(w.Range)),
		"offsetof uffdio_writeprotect.mode":  uint64(unsafe.Offsetof(w.Mode)),
		"sizeof uffdio_continue":             uint64(unsafe.Sizeof(k)),
		"offsetof uffdio_continue.range":     uint64(unsafe.Offsetof(k.Range)),
		"offsetof uffdio_continue.mode":      uint64(unsafe.Offsetof(k.Mode)),
		"offsetof uffdio_continue.mapped":    uint64(unsafe.Offsetof(k.Mapped)),
		"sizeof uffd_msg":                    uint64(unsafe.Sizeof(m)),
		"offsetof uffd_msg.event":            uint64(unsafe.Offsetof(m.Event)),
		// The union members all start at Arg; the accessors read these words.
		"offsetof uffd_msg.arg.pagefault.flags":     uint64(unsafe.Offsetof(m.Arg)),
		"offsetof uffd_msg.arg.pagefault.address":   uint64(unsafe.Offsetof(m.Arg)) + 8,
		"offsetof uffd_msg.arg.pagefault.feat.ptid": uint64(unsafe.Offsetof(m.Arg)) + 16,
		"offsetof uffd_msg.arg.fork.ufd":            uint64(unsafe.Offsetof(m.Arg)),
		"offsetof uffd_msg.arg.remove.start":        uint64(unsafe.Offsetof(m.Arg)),
		"offsetof uffd_msg.arg.remove.end":          uint64(unsafe.Offsetof(m.Arg)) + 8,
		"offsetof uffd_msg.arg.remap.from":          uint64(unsafe.Offsetof(m.Arg)),
		"offsetof uffd_msg.arg.remap.to":            uint64(unsafe.Offsetof(m.Arg)) + 8,
		"offsetof uffd_msg.arg.remap.len":           uint64(unsafe.Offsetof(m.Arg)) + 16,

		"UFFD_API":                          uffdAPI,
		"UFFDIO_API":                        uint64(ioctlUFFDIO_API),
		"UFFDIO_REGISTER":                   uint64(ioctlUFFDIO_REGISTER),
		"UFFDIO_UNREGISTER":                 uint64(ioctlUFFDIO_UNREGISTER),
		"UFFDIO_WAKE":                       uint64(ioctlUFFDIO_WAKE),
		"UFFDIO_COPY":                       uint64(ioctlUFFDIO_COPY),
		"UFFDIO_ZEROPAGE":                   uint64(ioctlUFFDIO_ZEROPAGE),
		"UFFDIO_WRITEPROTECT":               uint64(ioctlUFFDIO_WRITEPROTECT),
		"UFFDIO_CONTINUE":                   uint64(ioctlUFFDIO_CONTINUE),
		"USERFAULTFD_IOC_NEW":               uint64(ioctlUSERFAULTFD_IOC_NEW),
		"UFFD_EVENT_PAGEFAULT":              uint64(EventPagefault),
		"UFFD_EVENT_FORK":                   uint64(EventFork),
		"UFFD_EVENT_REMAP":                  uint64(EventRemap),
		"UFFD_EVENT_REMOVE":                 uint64(EventRemove),
		"UFFD_EVENT_UNMAP":                  uint64(EventUnmap),
		"UFFD_PAGEFAULT_FLAG_WRITE":         FlagWrite,
		"UFFD_PAGEFAULT_FLAG_WP":            FlagWP,
		"UFFD_PAGEFAULT_FLAG_MINOR":         FlagMinor,
		"UFFDIO_REGISTER_MODE_MISSING":      uint64(ModeMissing),
		"UFFDIO_REGISTER_MODE_WP":           uint64(ModeWP),
		"UFFDIO_REGISTER_MODE_MINOR":        uint64(ModeMinor),
		"UFFDIO_COPY_MODE_DONTWAKE":         uint64(CopyDontWake),
		"UFFDIO_COPY_MODE_WP":               uint64(CopyWP),
		"UFFDIO_ZEROPAGE_MODE_DONTWAKE":     zeropageModeDontWake,
		"UFFDIO_WRITEPROTECT_MODE_WP":       writeprotectModeWP,
		"UFFDIO_WRITEPROTECT_MODE_DONTWAKE": writeprotectModeDontWake,
		"UFFDIO_CONTINUE_MODE_DONTWAKE":     continueModeDontWake,
		"_UFFDIO_REGISTER":                  IoctlRegister,
		"_UFFDIO_UNREGISTER":                IoctlUnregister,
		"_UFFDIO_WAKE":                      IoctlWake,
		"_UFFDIO_COPY":                      IoctlCopy,
		"_UFFDIO_ZEROPAGE":                  IoctlZeroPage,
		"_UFFDIO_WRITEPROTECT":              IoctlWriteProtect,
		"_UFFDIO_CONTINUE":                  IoctlContinue,
		"_UFFDIO_API":                       IoctlAPI,
		"UFFD_USER_MODE_ONLY":               uffdUserModeOnly,
	}
	for i, name := range featureNames {
		ours["UFFD_FEATURE_"+name] = 1 << i
	}
	checked := 0
	for name, want := range kernel {
		got, ok := ours[name]
		if !ok {
			t.Errorf("probe printed %s, which the test does not know", name)
			continue
		}
		if got != want {
			t.Errorf("%s: ours %#x, kernel header %#x", name, got, want)
		}
		checked++
	}
	for name := range ours {
		if _, ok := kernel[name]; !ok {
			t.Logf("%s: not in the installed header, unchecked", name)
		}
	}
	t.Logf("checked %d values against <linux/userfaultfd.h>", checked)
	if unsafe.Sizeof(m) != MsgSize {
		t.Errorf("Msg is %d bytes, MsgSize says %d", unsafe.Sizeof(m), MsgSize)
	}
}

// pagemapProbe prints the PAGEMAP_SCAN ABI of <linux/fs.h> (Linux 6.7), or
// nothing when the installed header predates it.
const pagemapProbe = `
#include <stdio.h>
#include <stddef.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#define P(n, v) printf("%s %llu\n", n, (unsigned long long)(v))
#define S(t) P("sizeof " #t, sizeof(struct t))
#define O(t, f) P("offsetof " #t "." #f, offsetof(struct t, f))
#define F(n) P(#n, n)
int main(void) {
#ifdef PAGEMAP_SCAN
	S(pm_scan_arg); O(pm_scan_arg, size); O(pm_scan_arg, flags); O(pm_scan_arg, start); O(pm_scan_arg, end);
	O(pm_scan_arg, walk_end); O(pm_scan_arg, vec); O(pm_scan_arg, vec_len); O(pm_scan_arg, max_pages);
	O(pm_scan_arg, category_inverted); O(pm_scan_arg, category_mask); O(pm_scan_arg, category_anyof_mask);
	O(pm_scan_arg, return_mask);
	S(page_region); O(page_region, start); O(page_region, end); O(page_region, categories);
	F(PAGEMAP_SCAN); F(PM_SCAN_WP_MATCHING); F(PM_SCAN_CHECK_WPASYNC);
	F(PAGE_IS_WPALLOWED); F(PAGE_IS_WRITTEN); F(PAGE_IS_FILE); F(PAGE_IS_PRESENT);
	F(PAGE_IS_SWAPPED); F(PAGE_IS_PFNZERO); F(PAGE_IS_HUGE);
#ifdef PAGE_IS_SOFT_DIRTY
	F(PAGE_IS_SOFT_DIRTY);
#endif
#ifdef PAGE_IS_GUARD
	F(PAGE_IS_GUARD);
#endif
#endif
	return 0;
}
`

// pagemapGolden is the PAGEMAP_SCAN ABI as include/uapi/linux/fs.h of Linux
// 6.7 to 6.18 defines it (PAGE_IS_SOFT_DIRTY from 6.8, PAGE_IS_GUARD from
// 6.14), for machines whose installed header predates it (Debian 12 ships
// the 6.1 header). The kernel itself checks the struct size: every scan
// passes it, and a wrong one is refused with EINVAL.
var pagemapGolden = map[string]uint64{
	"sizeof pm_scan_arg":                       96,
	"offsetof pm_scan_arg.size":                0,
	"offsetof pm_scan_arg.flags":               8,
	"offsetof pm_scan_arg.start":               16,
	"offsetof pm_scan_arg.end":                 24,
	"offsetof pm_scan_arg.walk_end":            32,
	"offsetof pm_scan_arg.vec":                 40,
	"offsetof pm_scan_arg.vec_len":             48,
	"offsetof pm_scan_arg.max_pages":           56,
	"offsetof pm_scan_arg.category_inverted":   64,
	"offsetof pm_scan_arg.category_mask":       72,
	"offsetof pm_scan_arg.category_anyof_mask": 80,
	"offsetof pm_scan_arg.return_mask":         88,
	"sizeof page_region":                       24,
	"offsetof page_region.start":               0,
	"offsetof page_region.end":                 8,
	"offsetof page_region.categories":          16,
	"PAGEMAP_SCAN":                             0xC0606610, // _IOWR('f', 16, struct pm_scan_arg)
	"PM_SCAN_WP_MATCHING":                      1 << 0,
	"PM_SCAN_CHECK_WPASYNC":                    1 << 1,
	"PAGE_IS_WPALLOWED":                        1 << 0,
	"PAGE_IS_WRITTEN":                          1 << 1,
	"PAGE_IS_FILE":                             1 << 2,
	"PAGE_IS_PRESENT":                          1 << 3,
	"PAGE_IS_SWAPPED":                          1 << 4,
	"PAGE_IS_PFNZERO":                          1 << 5,
	"PAGE_IS_HUGE":                             1 << 6,
	"PAGE_IS_SOFT_DIRTY":                       1 << 7,
	"PAGE_IS_GUARD":                            1 << 8,
}

// pagemapOurs is this package's hand-made PAGEMAP_SCAN ABI, by the names the
// probe prints.
func pagemapOurs() map[string]uint64 {
	var a pmScanArg
	var r PageRegion
	ours := map[string]uint64{
		"sizeof pm_scan_arg":                       uint64(unsafe.Sizeof(a)),
		"offsetof pm_scan_arg.size":                uint64(unsafe.Offsetof(a.Size)),
		"offsetof pm_scan_arg.flags":               uint64(unsafe.Offsetof(a.Flags)),
		"offsetof pm_scan_arg.start":               uint64(unsafe.Offsetof(a.Start)),
		"offsetof pm_scan_arg.end":                 uint64(unsafe.Offsetof(a.End)),
		"offsetof pm_scan_arg.walk_end":            uint64(unsafe.Offsetof(a.WalkEnd)),
		"offsetof pm_scan_arg.vec":                 uint64(unsafe.Offsetof(a.Vec)),
		"offsetof pm_scan_arg.vec_len":             uint64(unsafe.Offsetof(a.VecLen)),
		"offsetof pm_scan_arg.max_pages":           uint64(unsafe.Offsetof(a.MaxPages)),
		"offsetof pm_scan_arg.category_inverted":   uint64(unsafe.Offsetof(a.CategoryInverted)),
		"offsetof pm_scan_arg.category_mask":       uint64(unsafe.Offsetof(a.CategoryMask)),
		"offsetof pm_scan_arg.category_anyof_mask": uint64(unsafe.Offsetof(a.CategoryAnyofMask)),
		"offsetof pm_scan_arg.return_mask":         uint64(unsafe.Offsetof(a.ReturnMask)),
		"sizeof page_region":                       uint64(unsafe.Sizeof(r)),
		"offsetof page_region.start":               uint64(unsafe.Offsetof(r.Start)),
		"offsetof page_region.end":                 uint64(unsafe.Offsetof(r.End)),
		"offsetof page_region.categories":          uint64(unsafe.Offsetof(r.Categories)),
		"PAGEMAP_SCAN":                             uint64(ioctlPAGEMAP_SCAN),
		"PM_SCAN_WP_MATCHING":                      uint64(ScanWPMatching),
		"PM_SCAN_CHECK_WPASYNC":                    uint64(ScanCheckWPAsync),
	}
	for i, name := range categoryNames {
		ours["PAGE_IS_"+name] = 1 << i
	}
	return ours
}

// TestPagemapABI checks the hand-made PAGEMAP_SCAN ABI against
// <linux/fs.h> when the installed header has it, and always against the
// values transcribed from the kernel's header.
func TestPagemapABI(t *testing.T) {
	ours := pagemapOurs()
	compareABI(t, "the kernel's include/uapi/linux/fs.h (transcribed)", pagemapGolden, ours)
	for name := range ours {
		if _, ok := pagemapGolden[name]; !ok {
			t.Errorf("%s: no transcribed value", name)
		}
	}
	kernel := runProbe(t, "/usr/include/linux/fs.h", pagemapProbe)
	if len(kernel) == 0 {
		t.Logf("the installed <linux/fs.h> predates PAGEMAP_SCAN (Linux 6.7): checked against the transcribed values only")
		return
	}
	compareABI(t, "<linux/fs.h>", kernel, ours)
}

// runProbe compiles and runs a C probe that prints "NAME VALUE" lines and
// returns them. It skips the test when gcc or header is missing.
func runProbe(t *testing.T, header, src string) map[string]uint64 {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skipf("gcc not found: cannot check the hand-made ABI against %s", header)
	}
	if _, err := os.Stat(header); err != nil {
		t.Skipf("%s missing (install linux-libc-dev): cannot check the ABI", header)
	}
	dir := t.TempDir()
	cfile := filepath.Join(dir, "probe.c")
	bin := filepath.Join(dir, "probe")
	if err := os.WriteFile(cfile, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-o", bin, cfile).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run probe: %v", err)
	}
	values := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseUint(line[i+1:], 10, 64)
		if err != nil {
			t.Fatalf("bad probe line %q", line)
		}
		values[line[:i]] = v
	}
	return values
}

// compareABI reports every value of want that ours lacks or gets wrong.
func compareABI(t *testing.T, source string, want, ours map[string]uint64) {
	t.Helper()
	checked := 0
	for name, w := range want {
		got, ok := ours[name]
		if !ok {
			t.Errorf("%s printed %s, which the test does not know", source, name)
			continue
		}
		if got != w {
			t.Errorf("%s: ours %#x, %s %#x", name, got, source, w)
		}
		checked++
	}
	t.Logf("checked %d values against %s", checked, source)
}
