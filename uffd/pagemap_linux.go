//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// pmScanArg is struct pm_scan_arg of <linux/fs.h> (Linux 6.7), 96 bytes.
// The kernel refuses any other size with EINVAL, so a successful scan is a
// size check too; abi_linux_test.go checks the layout against the header.
type pmScanArg struct {
	Size              uint64
	Flags             uint64
	Start             uint64
	End               uint64
	WalkEnd           uint64 // written by the kernel: where the walk stopped
	Vec               uint64 // address of the []PageRegion
	VecLen            uint64
	MaxPages          uint64
	CategoryInverted  uint64
	CategoryMask      uint64
	CategoryAnyofMask uint64
	ReturnMask        uint64
}

// ioctlPAGEMAP_SCAN is _IOWR('f', 16, struct pm_scan_arg), on a
// /proc/PID/pagemap descriptor.
var ioctlPAGEMAP_SCAN = ioc(iocRead|iocWrite, 'f', 16, unsafe.Sizeof(pmScanArg{}))

// DefaultScanVec is the number of regions a PagemapScanner returns per
// ioctl when OpenPagemap is given no size.
const DefaultScanVec = 512

// PagemapScanner runs PAGEMAP_SCAN on one process's address space. It is
// opened once and keeps its output vector, so a scan allocates nothing. It
// is not safe for concurrent use: the regions a scan returns alias the
// vector and stay valid only until the next scan.
type PagemapScanner struct {
	fd       int
	pageSize int
	vec      []PageRegion
	arg      pmScanArg
}

// OpenPagemap opens /proc/PID/pagemap (pid 0: the calling process) for
// scanning, with room for vecLen regions per ioctl (DefaultScanVec when
// vecLen <= 0). Opening another process's pagemap needs ptrace read access
// to it (same user, or root). A scanner outlives nothing: once the process
// exits, scans fail.
func OpenPagemap(pid, vecLen int) (*PagemapScanner, error) {
	if vecLen <= 0 {
		vecLen = DefaultScanVec
	}
	name := "self"
	if pid != 0 {
		name = strconv.Itoa(pid)
	}
	path := "/proc/" + name + "/pagemap"
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("uffd: open %s: %w", path, err)
	}
	return &PagemapScanner{fd: fd, pageSize: os.Getpagesize(), vec: make([]PageRegion, vecLen)}, nil
}

// ScanSupported reports whether the running kernel has PAGEMAP_SCAN with
// the struct layout of this package: nil, or an error wrapping
// ErrScanNotSupported.
func ScanSupported() error {
	s, err := OpenPagemap(0, 1)
	if err != nil {
		return err
	}
	defer s.Close()
	// An empty range walks nothing but goes through every argument check.
	_, _, err = s.Scan(0, 0, ScanRequest{Return: PageWritten})
	return err
}

// Close closes the pagemap descriptor.
func (s *PagemapScanner) Close() error {
	if s.fd < 0 {
		return nil
	}
	err := unix.Close(s.fd)
	s.fd = -1
	return err
}

// VecLen returns the most regions one Scan can return.
func (s *PagemapScanner) VecLen() int { return len(s.vec) }

// Scan runs one PAGEMAP_SCAN ioctl over [start, end), both page aligned
// (start == end walks nothing). It returns the matching regions, which
// alias the scanner's vector (valid until the next call), and walkEnd, the
// address where the walk stopped: end when the whole range was walked, less
// when the vector filled up or MaxPages was reached. Continue from walkEnd
// to see the rest (ScanAll does). With ScanWPMatching, exactly the pages in
// the returned regions were re-protected; pages at and after walkEnd were
// not touched.
//
// Errors: ErrAlign for a bad range; ErrScanNotSupported when the kernel has
// no PAGEMAP_SCAN (ENOTTY, before Linux 6.7) or refuses a flag or category
// it does not know (EINVAL); ErrScanNotWPAsync when ScanCheckWPAsync is set
// and the range meets a mapping without asynchronous write protection
// (EPERM).
func (s *PagemapScanner) Scan(start, end uintptr, req ScanRequest) (regions []PageRegion, walkEnd uintptr, err error) {
	ps := uintptr(s.pageSize)
	if start%ps != 0 || end%ps != 0 || end < start {
		return nil, start, fmt.Errorf("%w: PAGEMAP_SCAN [%#x, %#x) (page %d)", ErrAlign, start, end, s.pageSize)
	}
	if req.MaxPages < 0 {
		return nil, start, fmt.Errorf("uffd: PAGEMAP_SCAN: MaxPages %d is negative", req.MaxPages)
	}
	s.arg = pmScanArg{
		Size:              uint64(unsafe.Sizeof(s.arg)),
		Flags:             uint64(req.Flags),
		Start:             uint64(start),
		End:               uint64(end),
		Vec:               uint64(uintptr(unsafe.Pointer(&s.vec[0]))),
		VecLen:            uint64(len(s.vec)),
		MaxPages:          uint64(req.MaxPages),
		CategoryInverted:  uint64(req.Inverted),
		CategoryMask:      uint64(req.Require),
		CategoryAnyofMask: uint64(req.AnyOf),
		ReturnMask:        uint64(req.Return),
	}
	var n uintptr
	var errno unix.Errno
	for {
		n, _, errno = unix.Syscall(unix.SYS_IOCTL, uintptr(s.fd), ioctlPAGEMAP_SCAN, uintptr(unsafe.Pointer(&s.arg)))
		// EINTR comes only with a fatal signal pending (the walk takes
		// the mmap lock killably); nothing was done, so it is safe to
		// repeat.
		if errno != unix.EINTR {
			break
		}
	}
	runtime.KeepAlive(s)
	if errno != 0 {
		return nil, start, fmt.Errorf("uffd: PAGEMAP_SCAN [%#x, %#x) flags %#x: %w", start, end, req.Flags, mapScanErr(errno))
	}
	if int(n) > len(s.vec) {
		panic("uffd: PAGEMAP_SCAN returned more regions than the vector holds")
	}
	return s.vec[:n], uintptr(s.arg.WalkEnd), nil
}

func mapScanErr(errno unix.Errno) error {
	switch errno {
	case unix.ENOTTY:
		return fmt.Errorf("%w (ENOTTY: needs Linux 6.7): %w", ErrScanNotSupported, errno)
	case unix.EINVAL:
		return fmt.Errorf("%w (EINVAL: argument size, flag or category unknown to this kernel): %w", ErrScanNotSupported, errno)
	case unix.EPERM:
		return fmt.Errorf("%w: %w", ErrScanNotWPAsync, errno)
	case unix.ESRCH:
		return fmt.Errorf("%w: %w", ErrProcessGone, errno)
	}
	return errno
}

// ScanAll scans all of [start, end), continuing from each walkEnd, and calls
// fn with the regions of each ioctl (aliasing the scanner's vector: copy
// what must outlive the call). It returns the number of matching pages.
// MaxPages, if set, bounds the total over the whole range. An error from fn
// stops the scan and is returned; with ScanWPMatching the pages passed to fn
// before that were re-protected, the rest of the range was not scanned.
func (s *PagemapScanner) ScanAll(start, end uintptr, req ScanRequest, fn func([]PageRegion) error) (int, error) {
	pages, limit := 0, req.MaxPages
	for start < end {
		if limit > 0 {
			req.MaxPages = limit - pages
		}
		regions, walkEnd, err := s.Scan(start, end, req)
		if err != nil {
			return pages, err
		}
		for _, r := range regions {
			pages += r.Pages(s.pageSize)
		}
		if len(regions) > 0 && fn != nil {
			if err := fn(regions); err != nil {
				return pages, err
			}
		}
		if limit > 0 && pages >= limit {
			break
		}
		if walkEnd <= start && len(regions) == 0 {
			return pages, fmt.Errorf("uffd: PAGEMAP_SCAN made no progress at %#x", start)
		}
		start = walkEnd
	}
	return pages, nil
}
