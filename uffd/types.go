package uffd

import (
	"strings"
	"unsafe"
)

// Features is the feature mask negotiated with UFFDIO_API (the
// UFFD_FEATURE_* bits of <linux/userfaultfd.h>).
type Features uint64

// Feature bits, with the kernel's values.
const (
	FeaturePagefaultFlagWP  Features = 1 << 0  // UFFD_FEATURE_PAGEFAULT_FLAG_WP: write-protect mode and WP faults
	FeatureEventFork        Features = 1 << 1  // UFFD_FEATURE_EVENT_FORK
	FeatureEventRemap       Features = 1 << 2  // UFFD_FEATURE_EVENT_REMAP
	FeatureEventRemove      Features = 1 << 3  // UFFD_FEATURE_EVENT_REMOVE: madvise(MADV_REMOVE/DONTNEED) events
	FeatureMissingHugetlbfs Features = 1 << 4  // UFFD_FEATURE_MISSING_HUGETLBFS
	FeatureMissingShmem     Features = 1 << 5  // UFFD_FEATURE_MISSING_SHMEM: missing mode on shmem/memfd
	FeatureEventUnmap       Features = 1 << 6  // UFFD_FEATURE_EVENT_UNMAP
	FeatureSigbus           Features = 1 << 7  // UFFD_FEATURE_SIGBUS: SIGBUS instead of fault events
	FeatureThreadID         Features = 1 << 8  // UFFD_FEATURE_THREAD_ID: Msg.PTID is filled
	FeatureMinorHugetlbfs   Features = 1 << 9  // UFFD_FEATURE_MINOR_HUGETLBFS
	FeatureMinorShmem       Features = 1 << 10 // UFFD_FEATURE_MINOR_SHMEM: minor mode on shmem/memfd
	FeatureExactAddress     Features = 1 << 11 // UFFD_FEATURE_EXACT_ADDRESS
	FeatureWPHugetlbfsShmem Features = 1 << 12 // UFFD_FEATURE_WP_HUGETLBFS_SHMEM: write-protect on shmem/memfd
	FeatureWPUnpopulated    Features = 1 << 13 // UFFD_FEATURE_WP_UNPOPULATED
	FeaturePoison           Features = 1 << 14 // UFFD_FEATURE_POISON
	FeatureWPAsync          Features = 1 << 15 // UFFD_FEATURE_WP_ASYNC: kernel resolves WP faults itself (PAGEMAP_SCAN)
	FeatureMove             Features = 1 << 16 // UFFD_FEATURE_MOVE
)

var featureNames = [...]string{
	"PAGEFAULT_FLAG_WP", "EVENT_FORK", "EVENT_REMAP", "EVENT_REMOVE",
	"MISSING_HUGETLBFS", "MISSING_SHMEM", "EVENT_UNMAP", "SIGBUS", "THREAD_ID",
	"MINOR_HUGETLBFS", "MINOR_SHMEM", "EXACT_ADDRESS", "WP_HUGETLBFS_SHMEM",
	"WP_UNPOPULATED", "POISON", "WP_ASYNC", "MOVE",
}

// String lists the set bits by their kernel names, joined with "|".
func (f Features) String() string {
	if f == 0 {
		return "0"
	}
	var names []string
	for i := 0; i < 64; i++ {
		if f&(1<<i) == 0 {
			continue
		}
		if i < len(featureNames) {
			names = append(names, featureNames[i])
		} else {
			names = append(names, "BIT"+itoa(i))
		}
	}
	return strings.Join(names, "|")
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return string(rune('0'+i/10)) + string(rune('0'+i%10))
}

// Mode is the UFFDIO_REGISTER mode: which kinds of faults on the range are
// reported.
type Mode uint64

// Register modes.
const (
	// ModeMissing reports faults on pages that are not present (for shmem and
	// memfd: not in the page cache). Resolve with Copy or ZeroPage.
	ModeMissing Mode = 1 << 0
	// ModeWP reports writes to pages that were write-protected (Copy with
	// CopyWP, or WriteProtect). Resolve with WriteProtect(..., false, ...).
	ModeWP Mode = 1 << 1
	// ModeMinor reports faults on pages that are in the page cache but not
	// mapped in the faulting page table. Resolve with Continue.
	ModeMinor Mode = 1 << 2
)

// Ioctls is the bitmask of range ioctls the kernel supports on a registered
// range, as returned by Register (bit n is ioctl number n).
type Ioctls uint64

// Ioctl numbers (the _UFFDIO_* values), for testing an Ioctls mask.
const (
	IoctlRegister     = 0x00
	IoctlUnregister   = 0x01
	IoctlWake         = 0x02
	IoctlCopy         = 0x03
	IoctlZeroPage     = 0x04
	IoctlWriteProtect = 0x06
	IoctlContinue     = 0x07
	IoctlAPI          = 0x3F
)

// Has reports whether ioctl number n (one of the Ioctl* constants) is
// supported.
func (m Ioctls) Has(n int) bool { return n >= 0 && n < 64 && m&(1<<uint(n)) != 0 }

// CopyMode modifies Copy.
type CopyMode uint64

// Copy modes.
const (
	// CopyDontWake installs the pages without waking the faulting threads;
	// call Wake afterwards (useful to install several runs and wake once).
	CopyDontWake CopyMode = 1 << 0
	// CopyWP installs the pages write-protected: the first write raises a
	// write-protect fault (needs ModeWP on the range). This is how clean
	// pages are installed for dirty tracking.
	CopyWP CopyMode = 1 << 1
)

// Event is the kind of a Msg.
type Event uint8

// Event kinds (UFFD_EVENT_*).
const (
	EventPagefault Event = 0x12
	EventFork      Event = 0x13
	EventRemap     Event = 0x14
	EventRemove    Event = 0x15
	EventUnmap     Event = 0x16
)

// String returns the event's name ("pagefault", "remove" ...).
func (e Event) String() string {
	switch e {
	case EventPagefault:
		return "pagefault"
	case EventFork:
		return "fork"
	case EventRemap:
		return "remap"
	case EventRemove:
		return "remove"
	case EventUnmap:
		return "unmap"
	}
	return "event?"
}

// Page-fault flags (UFFD_PAGEFAULT_FLAG_*), in Msg.Flags.
const (
	FlagWrite uint64 = 1 << 0 // the fault was a write
	FlagWP    uint64 = 1 << 1 // a write to a write-protected page (ModeWP)
	FlagMinor uint64 = 1 << 2 // a minor fault (ModeMinor)
)

// MsgSize is the size of one event record read from a userfaultfd.
const MsgSize = 32

// Msg is one event as read from a userfaultfd: struct uffd_msg, 32 bytes,
// packed, native byte order. The union arg is kept as three words and read
// through the accessors.
//
//	 0       1       2               4                               8
//	+-------+-------+---------------+-------------------------------+
//	| event | resv1 |     resv2     |             resv3             |
//	+-------+-------+---------------+-------------------------------+
//	|  8: Arg[0]  pagefault.flags | fork.ufd | remap.from | remove.start
//	| 16: Arg[1]  pagefault.address          | remap.to   | remove.end
//	| 24: Arg[2]  pagefault.feat.ptid (u32)  | remap.len
//	+---------------------------------------------------------------+
type Msg struct {
	Event     Event
	Reserved1 uint8
	Reserved2 uint16
	Reserved3 uint32
	Arg       [3]uint64
}

// Flags returns the page-fault flags (FlagWrite, FlagWP, FlagMinor) of an
// EventPagefault.
func (m *Msg) Flags() uint64 { return m.Arg[0] }

// Address returns the faulting address of an EventPagefault, rounded down to
// the page unless FeatureExactAddress was negotiated.
func (m *Msg) Address() uintptr { return uintptr(m.Arg[1]) }

// PTID returns the faulting thread id of an EventPagefault (FeatureThreadID
// only; otherwise 0).
func (m *Msg) PTID() uint32 { return *(*uint32)(unsafe.Pointer(&m.Arg[2])) }

// ForkFD returns the new userfaultfd of an EventFork.
func (m *Msg) ForkFD() int { return int(*(*uint32)(unsafe.Pointer(&m.Arg[0]))) }

// Range returns [start, end) of an EventRemove or EventUnmap.
func (m *Msg) Range() (start, end uintptr) { return uintptr(m.Arg[0]), uintptr(m.Arg[1]) }

// Remap returns the source, destination and length of an EventRemap.
func (m *Msg) Remap() (from, to uintptr, length uint64) {
	return uintptr(m.Arg[0]), uintptr(m.Arg[1]), m.Arg[2]
}

// Addr returns the address of b's first byte (the address to register or to
// pass to Copy), or 0 for an empty slice.
func Addr(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	return uintptr(unsafe.Pointer(&b[0]))
}
