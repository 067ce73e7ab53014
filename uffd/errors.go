package uffd

import "errors"

// Errors returned by this package. Wrapped errors keep the underlying errno
// (test with errors.Is against both the sentinel and, where it matters, the
// unix.Errno).
var (
	// ErrNotSupported: userfaultfd is not available on this operating system
	// or architecture (see uffd_other.go).
	ErrNotSupported = errors.New("uffd: userfaultfd not supported on this platform")
	// ErrFeature: a feature named in Options.Need is not offered by the kernel.
	ErrFeature = errors.New("uffd: required feature not available")
	// ErrClosed: Shutdown or Close was called; a blocked Read returns it.
	ErrClosed = errors.New("uffd: shut down")
	// ErrAlign: an address or length is not a positive multiple of the page
	// size.
	ErrAlign = errors.New("uffd: address or length not page aligned")
	// ErrMappingGone: the kernel answered ENOENT: the destination range is no
	// longer registered (the application unmapped or remapped it). The fault
	// that asked for the page is gone too; drop the request.
	ErrMappingGone = errors.New("uffd: mapping gone (ENOENT)")
	// ErrProcessGone: the kernel answered ESRCH: the address space of the
	// process that created the userfaultfd has exited.
	ErrProcessGone = errors.New("uffd: process gone (ESRCH)")
	// ErrAgain: the kernel kept answering EAGAIN without progress. The range
	// is changing under a non-cooperative event (remove, unmap, remap, fork)
	// that has not been read yet: read the pending events, then retry.
	ErrAgain = errors.New("uffd: range changing, read pending events and retry (EAGAIN)")
	// ErrScanNotSupported: the kernel has no PAGEMAP_SCAN ioctl (ENOTTY,
	// before Linux 6.7), or refused the argument size, a flag or a category
	// it does not know (EINVAL).
	ErrScanNotSupported = errors.New("uffd: PAGEMAP_SCAN not supported")
	// ErrScanNotWPAsync: a scan with ScanCheckWPAsync met a mapping that is
	// not registered for write protection on a userfaultfd with
	// FeatureWPAsync (EPERM).
	ErrScanNotWPAsync = errors.New("uffd: range not under asynchronous write protection")
	// ErrHelper: the helper process of MeasureBareFault or
	// MeasureDirtyTracking failed.
	ErrHelper = errors.New("uffd: helper process failed")
)
