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
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not found: cannot check the hand-made ABI against <linux/userfaultfd.h>")
	}
	if _, err := os.Stat("/usr/include/linux/userfaultfd.h"); err != nil {
		t.Skip("/usr/include/linux/userfaultfd.h missing (install linux-libc-dev): cannot check the ABI")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "abi.c")
	bin := filepath.Join(dir, "abi")
	if err := os.WriteFile(src, []byte(abiProbe), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run probe: %v", err)
	}
	kernel := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseUint(line[i+1:], 10, 64)
		if err != nil {
			t.Fatalf("bad probe line %q", line)
		}
		kernel[line[:i]] = v
	}
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
