//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Options configures Open.
type Options struct {
	// Want lists features to enable when the kernel offers them.
	Want Features
	// Need lists features that must be available: Open fails with
	// ErrFeature when one is missing. They are enabled too.
	Need Features
	// UserModeOnly asks for UFFD_USER_MODE_ONLY: faults raised by the kernel
	// on the range (a read(2) into it, say) are not reported but fail with
	// EFAULT. Leave it off for transparent memory: a syscall that writes into
	// the mapping must block for the page like any load.
	UserModeOnly bool
	// Device skips the userfaultfd system call and opens /dev/userfaultfd
	// (USERFAULTFD_IOC_NEW) directly. Open falls back to the device anyway
	// when the system call is refused (EPERM, ENOSYS).
	Device bool
}

// FD is a userfaultfd. Its range ioctls (Copy, ZeroPage, Wake, WriteProtect,
// Continue) are safe for concurrent use from many goroutines; Read and
// TryRead should be called from one goroutine at a time. Close must not race
// with any other method.
type FD struct {
	fd        int
	features  Features
	available Features
	pageSize  int

	stopFD  int // eventfd written by Shutdown; -1 until first needed
	stopMu  sync.Mutex
	stopped bool
	closed  bool
}

// Probe reports the features the running kernel offers, using a throwaway
// userfaultfd (the API handshake can be done only once per descriptor).
func Probe() (Features, error) {
	fd, err := openRaw(Options{})
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	api := uffdioAPI{API: uffdAPI}
	if err := ioctl(fd, ioctlUFFDIO_API, unsafe.Pointer(&api)); err != nil {
		return 0, fmt.Errorf("uffd: UFFDIO_API probe: %w", err)
	}
	return Features(api.Features), nil
}

// Open creates a userfaultfd for the calling process's address space
// (O_CLOEXEC|O_NONBLOCK), does the UFFDIO_API handshake and enables
// (Want|Need) & available features. The descriptor is bound to this
// process's memory: it can be passed to another process (SCM_RIGHTS), which
// then handles this process's faults.
func Open(opts Options) (*FD, error) {
	avail, err := Probe()
	if err != nil {
		return nil, err
	}
	if missing := opts.Need &^ avail; missing != 0 {
		return nil, fmt.Errorf("%w: %v (kernel offers %v)", ErrFeature, missing, avail)
	}
	enable := (opts.Want | opts.Need) & avail
	fd, err := openRaw(opts)
	if err != nil {
		return nil, err
	}
	api := uffdioAPI{API: uffdAPI, Features: uint64(enable)}
	if err := ioctl(fd, ioctlUFFDIO_API, unsafe.Pointer(&api)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("uffd: UFFDIO_API features %v: %w", enable, err)
	}
	f := newFD(fd, enable)
	f.available = avail
	return f, nil
}

// FromFD wraps a userfaultfd received from another process, on which the
// creator already did the API handshake with the given features. The FD
// takes ownership of fd (Close closes it). fd is switched to non-blocking
// mode, which Read relies on.
func FromFD(fd int, features Features) (*FD, error) {
	if fd < 0 {
		return nil, fmt.Errorf("uffd: FromFD: bad descriptor %d", fd)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		return nil, fmt.Errorf("uffd: FromFD: %w", err)
	}
	return newFD(fd, features), nil
}

func newFD(fd int, features Features) *FD {
	return &FD{fd: fd, features: features, available: features, pageSize: os.Getpagesize(), stopFD: -1}
}

func openRaw(opts Options) (int, error) {
	flags := unix.O_CLOEXEC | unix.O_NONBLOCK
	if opts.UserModeOnly {
		flags |= uffdUserModeOnly
	}
	if !opts.Device {
		fd, _, errno := unix.Syscall(unix.SYS_USERFAULTFD, uintptr(flags), 0, 0)
		if errno == 0 {
			return int(fd), nil
		}
		if errno != unix.EPERM && errno != unix.ENOSYS {
			return -1, fmt.Errorf("uffd: userfaultfd syscall: %w", errno)
		}
	}
	dev, err := unix.Open("/dev/userfaultfd", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("uffd: open /dev/userfaultfd: %w", err)
	}
	defer unix.Close(dev)
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(dev), ioctlUSERFAULTFD_IOC_NEW, uintptr(flags))
	if errno != 0 {
		return -1, fmt.Errorf("uffd: USERFAULTFD_IOC_NEW: %w", errno)
	}
	return int(fd), nil
}

func ioctl(fd int, req uintptr, arg unsafe.Pointer) error {
	for {
		_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), req, uintptr(arg))
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return errno
		}
		return nil
	}
}

// Fd returns the descriptor number (to pass it to another process).
func (f *FD) Fd() int { return f.fd }

// Features returns the features enabled on this descriptor.
func (f *FD) Features() Features { return f.features }

// Available returns the features the kernel offered at Open (for an FD from
// FromFD: the enabled features).
func (f *FD) Available() Features { return f.available }

// PageSize returns the page size the range ioctls align to.
func (f *FD) PageSize() int { return f.pageSize }

func (f *FD) checkRange(start uintptr, length int) error {
	ps := uintptr(f.pageSize)
	if length <= 0 || start%ps != 0 || uintptr(length)%ps != 0 {
		return fmt.Errorf("%w: start %#x length %d (page %d)", ErrAlign, start, length, f.pageSize)
	}
	return nil
}

// Register registers [start, start+length) with the given modes and returns
// the range ioctls the kernel supports on it. For a memfd/shmem mapping,
// ModeMissing needs FeatureMissingShmem in the kernel, ModeWP needs
// FeatureWPHugetlbfsShmem, ModeMinor needs FeatureMinorShmem (enabled).
func (f *FD) Register(start uintptr, length int, mode Mode) (Ioctls, error) {
	if err := f.checkRange(start, length); err != nil {
		return 0, err
	}
	r := uffdioRegister{Range: uffdioRange{Start: uint64(start), Len: uint64(length)}, Mode: uint64(mode)}
	if err := ioctl(f.fd, ioctlUFFDIO_REGISTER, unsafe.Pointer(&r)); err != nil {
		return 0, fmt.Errorf("uffd: UFFDIO_REGISTER %#x+%d mode %d: %w", start, length, mode, mapErr(err))
	}
	return Ioctls(r.Ioctls), nil
}

// Unregister removes the registration of [start, start+length). Threads
// blocked in faults on the range are woken and retry the access as if the
// range had never been registered.
func (f *FD) Unregister(start uintptr, length int) error {
	if err := f.checkRange(start, length); err != nil {
		return err
	}
	r := uffdioRange{Start: uint64(start), Len: uint64(length)}
	if err := ioctl(f.fd, ioctlUFFDIO_UNREGISTER, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("uffd: UFFDIO_UNREGISTER: %w", mapErr(err))
	}
	return nil
}

// Wake wakes the threads blocked in faults on [start, start+length); they
// retry the access (and fault again if the page is still absent).
func (f *FD) Wake(start uintptr, length int) error {
	if err := f.checkRange(start, length); err != nil {
		return err
	}
	r := uffdioRange{Start: uint64(start), Len: uint64(length)}
	if err := ioctl(f.fd, ioctlUFFDIO_WAKE, unsafe.Pointer(&r)); err != nil {
		return fmt.Errorf("uffd: UFFDIO_WAKE: %w", mapErr(err))
	}
	return nil
}

// maxAgain bounds the retries of an ioctl that keeps answering EAGAIN with
// no progress: the range is changing under a non-cooperative event that only
// a reader of this descriptor can complete, so spinning forever could
// deadlock a handler that is also its own event reader.
const maxAgain = 100

func mapErr(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %w", ErrMappingGone, err)
	case errors.Is(err, unix.ESRCH):
		return fmt.Errorf("%w: %w", ErrProcessGone, err)
	}
	return err
}

// fill drives one of the installing ioctls (COPY, ZEROPAGE, CONTINUE) over a
// page-aligned range, the way Firecracker's and e2b's handlers learned to:
//   - a partial result (n > 0 bytes done, EAGAIN) continues with the rest;
//   - EAGAIN with no progress (the range is changing) is retried a bounded
//     number of times, then reported as ErrAgain;
//   - EEXIST (the page is already there: a duplicate fault, or a racing
//     install) skips that page and wakes its waiters;
//   - ENOENT and ESRCH become ErrMappingGone and ErrProcessGone.
//
// call performs one ioctl for [off, length) and returns the kernel's count
// field and the errno. fill returns the bytes installed by this call.
func (f *FD) fill(name string, start uintptr, length int, wake bool, call func(off int) (int64, error)) (int, error) {
	ps := f.pageSize
	done, installed, again := 0, 0, 0
	for done < length {
		n, err := call(done)
		if n > 0 {
			done += int(n)
			installed += int(n)
			again = 0
		}
		if err == nil {
			if n <= 0 {
				// Success without a count would loop forever; the kernel
				// never does this, so treat it as a broken invariant.
				panic("uffd: " + name + " succeeded without progress")
			}
			continue
		}
		switch {
		case errors.Is(err, unix.EAGAIN):
			if n > 0 {
				continue
			}
			again++
			if again > maxAgain {
				return installed, fmt.Errorf("uffd: %s %#x+%d: %w", name, start+uintptr(done), length-done, ErrAgain)
			}
			runtime.Gosched()
		case errors.Is(err, unix.EEXIST):
			if wake {
				if werr := f.Wake(start+uintptr(done), ps); werr != nil {
					return installed, werr
				}
			}
			done += ps
		default:
			return installed, fmt.Errorf("uffd: %s %#x+%d: %w", name, start+uintptr(done), length-done, mapErr(err))
		}
	}
	return installed, nil
}

// Copy installs the pages in src at dst (UFFDIO_COPY) and, unless mode has
// CopyDontWake, wakes the threads faulting on them. len(src) must be a
// multiple of the page size and dst page aligned. One call per run of
// contiguous pages is cheaper than one per page.
//
// It returns the bytes installed by this call. Pages already present (EEXIST:
// a duplicate fault, or another worker won the race) are skipped and their
// waiters woken, so a result below len(src) with a nil error means some pages
// were there already. On ErrMappingGone or ErrProcessGone the faults are gone
// with the mapping: drop the request.
func (f *FD) Copy(dst uintptr, src []byte, mode CopyMode) (int, error) {
	if err := f.checkRange(dst, len(src)); err != nil {
		return 0, err
	}
	base := uintptr(unsafe.Pointer(&src[0]))
	n, err := f.fill("UFFDIO_COPY", dst, len(src), mode&CopyDontWake == 0, func(off int) (int64, error) {
		c := uffdioCopy{
			Dst:  uint64(dst) + uint64(off),
			Src:  uint64(base) + uint64(off),
			Len:  uint64(len(src) - off),
			Mode: uint64(mode),
		}
		err := ioctl(f.fd, ioctlUFFDIO_COPY, unsafe.Pointer(&c))
		return c.Copy, err
	})
	runtime.KeepAlive(src)
	return n, err
}

// ZeroPage maps the zero page over [start, start+length) (UFFDIO_ZEROPAGE;
// on shmem a zeroed page is allocated). Semantics and result as Copy.
func (f *FD) ZeroPage(start uintptr, length int, dontWake bool) (int, error) {
	if err := f.checkRange(start, length); err != nil {
		return 0, err
	}
	var mode uint64
	if dontWake {
		mode = zeropageModeDontWake
	}
	return f.fill("UFFDIO_ZEROPAGE", start, length, !dontWake, func(off int) (int64, error) {
		z := uffdioZeropage{Range: uffdioRange{Start: uint64(start) + uint64(off), Len: uint64(length - off)}, Mode: mode}
		err := ioctl(f.fd, ioctlUFFDIO_ZEROPAGE, unsafe.Pointer(&z))
		return z.Zeropage, err
	})
}

// Continue resolves minor faults on [start, start+length) (UFFDIO_CONTINUE):
// it maps the pages already in the page cache of the shared file. Semantics
// and result as Copy.
func (f *FD) Continue(start uintptr, length int, dontWake bool) (int, error) {
	if err := f.checkRange(start, length); err != nil {
		return 0, err
	}
	var mode uint64
	if dontWake {
		mode = continueModeDontWake
	}
	return f.fill("UFFDIO_CONTINUE", start, length, !dontWake, func(off int) (int64, error) {
		c := uffdioContinue{Range: uffdioRange{Start: uint64(start) + uint64(off), Len: uint64(length - off)}, Mode: mode}
		err := ioctl(f.fd, ioctlUFFDIO_CONTINUE, unsafe.Pointer(&c))
		return c.Mapped, err
	})
}

// WriteProtect sets (protect) or clears write protection on
// [start, start+length) (UFFDIO_WRITEPROTECT). Clearing it resolves a
// write-protect fault and wakes the writer unless dontWake. The range must be
// registered with ModeWP. EAGAIN is retried as in Copy.
func (f *FD) WriteProtect(start uintptr, length int, protect, dontWake bool) error {
	if err := f.checkRange(start, length); err != nil {
		return err
	}
	var mode uint64
	if protect {
		mode |= writeprotectModeWP
	}
	if dontWake {
		mode |= writeprotectModeDontWake
	}
	w := uffdioWriteprotect{Range: uffdioRange{Start: uint64(start), Len: uint64(length)}, Mode: mode}
	for again := 0; ; again++ {
		err := ioctl(f.fd, ioctlUFFDIO_WRITEPROTECT, unsafe.Pointer(&w))
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EAGAIN) {
			return fmt.Errorf("uffd: UFFDIO_WRITEPROTECT %#x+%d: %w", start, length, mapErr(err))
		}
		if again >= maxAgain {
			return fmt.Errorf("uffd: UFFDIO_WRITEPROTECT %#x+%d: %w", start, length, ErrAgain)
		}
		runtime.Gosched()
	}
}

// Close closes the descriptor. It must not race with other methods: stop a
// reader with Shutdown, wait for its Read to return, then Close. Threads still faulting on a registered range of the creating process stay
// blocked as long as any other copy of the descriptor is open (the creator's
// own copy, for one); when the last copy closes, the kernel wakes them and
// they fault like ordinary memory again.
func (f *FD) Close() error {
	f.stopMu.Lock()
	defer f.stopMu.Unlock()
	if f.closed {
		return nil
	}
	f.closed = true
	f.stopped = true
	if f.stopFD >= 0 {
		var one = [8]byte{1}
		_, _ = unix.Write(f.stopFD, one[:])
		_ = unix.Close(f.stopFD)
		f.stopFD = -1
	}
	return unix.Close(f.fd)
}
