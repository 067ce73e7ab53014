package pmem

import "errors"

// ErrCorrupt marks every error that reports damaged persistent state; test for
// it with errors.Is to tell corruption from misuse.
var ErrCorrupt = errors.New("pmem: corrupt")

// corruption wraps a specific corruption error so that errors.Is matches both
// the specific sentinel and ErrCorrupt.
type corruption struct{ err error }

func (c corruption) Error() string        { return c.err.Error() }
func (c corruption) Is(target error) bool { return target == ErrCorrupt }
func (c corruption) Unwrap() error        { return c.err }

// Corrupt returns err marked as corruption (errors.Is(err, ErrCorrupt) holds).
// Sub-packages use it for their own corruption sentinels.
func Corrupt(err error) error { return corruption{err} }

// Pool creation and opening.
var (
	// ErrBadMagic is returned when a file does not start with the pool magic.
	ErrBadMagic = Corrupt(errors.New("pmem: not a farmem pool (bad magic)"))
	// ErrBadVersion is returned for a pool written by an unknown format version.
	ErrBadVersion = Corrupt(errors.New("pmem: unsupported pool format version"))
	// ErrHeaderChecksum is returned when the pool header checksum does not match.
	ErrHeaderChecksum = Corrupt(errors.New("pmem: pool header checksum mismatch"))
	// ErrBadGeometry is returned when header fields (size, journal area, heap)
	// are inconsistent with each other or with the file.
	ErrBadGeometry = Corrupt(errors.New("pmem: pool header geometry is inconsistent"))
	// ErrNoRoot is returned when neither root slot holds a valid root.
	ErrNoRoot = errors.New("pmem: pool has no root object")
	// ErrLayout is returned when a pool is opened with a layout id other than
	// the one it was created with.
	ErrLayout = errors.New("pmem: pool layout id mismatch")
	// ErrBadOptions is returned for invalid creation or open options.
	ErrBadOptions = errors.New("pmem: invalid options")
	// ErrExists is returned by Create when the file already exists.
	ErrExists = errors.New("pmem: pool file already exists")
	// ErrNotSupported is returned on platforms without mmap/msync or without a
	// cache-line flush instruction, for the operations that need them.
	ErrNotSupported = errors.New("pmem: not supported on this platform")
	// ErrClosed is returned by operations on a closed pool.
	ErrClosed = errors.New("pmem: pool is closed")
)

// Allocation.
var (
	// ErrOutOfSpace is returned when the heap has no free run large enough.
	ErrOutOfSpace = errors.New("pmem: heap out of space")
	// ErrBadFree is returned when freeing an offset that is not the start of
	// an allocated block.
	ErrBadFree = errors.New("pmem: free of an offset that is not an allocated block")
	// ErrBadAllocMap is returned when the persistent allocation map is not
	// well formed (a continuation unit with no block start).
	ErrBadAllocMap = Corrupt(errors.New("pmem: allocation map is corrupt"))
	// ErrOutOfRange is returned for an access outside the pool.
	ErrOutOfRange = errors.New("pmem: offset/length outside the pool")
)
