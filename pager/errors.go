package pager

import "errors"

// Errors of the pager. Test with errors.Is.
var (
	// ErrNotSupported: the pager needs Linux userfaultfd (see
	// pager_other.go).
	ErrNotSupported = errors.New("pager: not supported on this platform")
	// ErrConfig: a Config field is invalid; the message names it.
	ErrConfig = errors.New("pager: invalid config")
	// ErrClosed: the Pager was closed.
	ErrClosed = errors.New("pager: closed")
	// ErrNotRecoverable: a re-attach named a region whose evicted pages this
	// pager cannot find (its far tier does not survive a pager restart).
	ErrNotRecoverable = errors.New("pager: region not recoverable")
	// ErrLostPage: the far tier does not hold a page that the pager wrote
	// there. The faulting thread is not served zeros: the fetch is retried
	// and the error counted and logged.
	ErrLostPage = errors.New("pager: page missing from the far tier")
)

// Errors of the persistent region table (Meta, farmem pager --meta).
var (
	// ErrMetaCorrupt: the metadata file is not a pool, or it is damaged
	// (bad magic, checksum, geometry, journal or table); also marked
	// pmem.ErrCorrupt when pmem found it.
	ErrMetaCorrupt = errors.New("pager: metadata pool is corrupt")
	// ErrMetaLayout: the file is a pool of another layout (another
	// program's pool, or another version of this table).
	ErrMetaLayout = errors.New("pager: metadata pool has a foreign layout")
	// ErrMetaFull: the table has no free slot, or the pool no room for a
	// new region's bitset.
	ErrMetaFull = errors.New("pager: metadata pool is full")
	// ErrMetaMismatch: a re-attach names a region whose record disagrees
	// with it (size, page size, or the far-tier namespace prefix).
	ErrMetaMismatch = errors.New("pager: region does not match its metadata record")
	// ErrShmemHuge: asynchronous dirty tracking was asked for while shmem
	// may use large folios (/sys/kernel/mm/transparent_hugepage/
	// shmem_enabled or a hugepages-*kB/shmem_enabled is not never/deny):
	// a punch of a pinned page in a large folio zeroes it in place, which
	// breaks the pin-punch-copy fence.
	ErrShmemHuge = errors.New("pager: async dirty tracking needs shmem huge pages off")
)
