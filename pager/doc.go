// Package pager is farmem's pager daemon: it serves the page faults of
// regions that applications map as plain memory (farmem.Map), through the
// userfaultfd each application hands it over the attach protocol (package
// attach), with pages kept in a far tier (a store.Store: memnodes, a file,
// memory).
//
// # Technique
//
// An out-of-process userfaultfd page-fault handler, the shape of
// Firecracker's and e2b's snapshot-restore handlers, used as a far-memory
// pager as in the user-space far-memory systems that build on userfaultfd
// (Fastswap's and Infiniswap's data path done in user space rather than in
// the kernel's swap layer). Dirty tracking by write-protect faults (or, opt
// in, by WP_ASYNC and PAGEMAP_SCAN), eviction
// by punching pages out of a shared memfd, CLOCK replacement.
//
// # Where pages live
//
// A region is a memfd that the application and the pager both map shared.
// The memfd is the DRAM tier: a resident page lives there and only there,
// and Config.Local bounds the resident pages of all regions together. The
// pager does not keep a second copy in an engine frame pool (package engine
// caches pages in its own off-heap frames; putting it behind the memfd would
// hold hot pages twice and would keep dirty write-backs in pager memory that
// dies with the pager). Pages that are not resident live in the far tier
// only. The pager's own state is a residency map of one byte per page
// (0.02% of the region at 4 KiB pages) and small reusable buffers.
//
// # Page states
//
//	absent    a hole in the memfd; content in the far tier, or zero if never written back
//	loading   a fetch and UFFDIO_COPY are in flight
//	clean     resident, write-protected, equal to its far copy (or zero)
//	dirty     resident and writable
//	busy      resident; a worker is clearing its write protection
//	evicting  being write-protected, copied out, written back and punched
//
// The pager reads an application page through its own view only in the
// resident states: touching a hole through the view would silently allocate
// a zero page (the residency map exists to prevent that).
//
// # Faults
//
// Each region has one event reader, blocked in poll(2) on its userfaultfd
// (uffd.Read). Of every batch of events it hands all but the last to a
// bounded pool of workers shared by all regions and serves the last itself,
// so a lone fault costs no goroutine hand-off and a burst is served
// concurrently. A missing fault claims its page and up to Config.Prefetch
// absent pages after it, reserves budget (waiting for the reclaimer when the
// budget is full), fetches the pages the far tier holds in one store call
// (the others are zero), and installs the whole run with one UFFDIO_COPY,
// which wakes the faulting threads. Pages are installed write-protected
// (clean), except the faulting page of a write fault, which is installed
// writable and dirty at once, saving a second fault. UFFDIO_COPY's EEXIST
// (duplicate fault) is a wake, and EAGAIN a retry (package uffd).
//
// A write to a clean page raises a write-protect fault: the page goes busy,
// its protection is cleared (which wakes the writer), and it becomes dirty.
//
// # Eviction
//
// A reclaimer keeps the resident pages between watermarks below the budget.
// It picks victims by CLOCK (the reference bit is set on install and on the
// first write; accesses that do not fault are invisible, so this is
// second-chance FIFO), and for each batch: marks them evicting, write-protects
// the dirty ones (UFFDIO_WRITEPROTECT; afterwards no write can land, and a
// writer waits in a write-protect fault), copies them out through its view,
// writes them to the far tier in one store call, with Config.Meta records
// them as written there in one transaction, punches them out of the memfd
// (FALLOC_FL_PUNCH_HOLE; MADV_DONTNEED would leave them in the page cache),
// marks them absent and wakes the waiters. A writer that waited then faults
// again as missing and gets its page back from the far tier. Clean pages are
// only punched. Nothing is punched before its write-back succeeded and was
// recorded.
//
// # Asynchronous dirty tracking
//
// Config.DirtyTracking "async" (farmem pager --dirty-tracking async) asks
// the application's userfaultfd for UFFD_FEATURE_WP_ASYNC (optional: a
// region whose kernel does not enable it is served as "wp", logged). Pages
// are still installed write-protected, but the kernel resolves the first
// write to each (about 0.8 µs instead of a 7-8 µs fault round trip to the
// pager), so no write-protect fault reaches the pager (one that does is
// counted spurious), and the pager can no longer stop a writer while it
// copies a victim out. Eviction uses the pin-punch-copy fence instead
// (async_linux.go): vmsplice the victims from the pager's view into a pipe,
// punch them out of the memfd (from then on the application's access is a
// missing fault, which waits while the page is evicting), read them out of
// the pipe (every write before the punch is in that copy), and
// PAGEMAP_SCAN the victims in /proc/<pid>/pagemap (pid from the attach's
// SO_PEERCRED): a victim is clean only if the punch left a uffd-wp marker
// (protected since its install and never written); every other victim is
// written back. Only then are they absent.
//
// The punch comes before the write-back, so between the two a dirty
// victim's content exists only in the pager's memory. A pager crash there
// loses it, and nothing records which pages. So async mode refuses
// Config.Meta (its purpose is exactly that crash), refuses access sampling,
// and a re-attach of a region whose userfaultfd has WP_ASYNC is refused
// with ErrNotRecoverable by every pager: a pager crash loses an async
// region (the application's accesses to absent pages block, and
// farmem.Map reports ErrPagerLost), it is never served stale or zero
// pages. Async mode also needs shmem huge pages off (ErrShmemHuge at New):
// a punch of a pinned page inside a large folio zeroes it in place.
//
// # Access sampling
//
// Accesses that do not fault are invisible to the pager. With
// Config.SampleInterval, clean pages are periodically staged out of the
// mapping into pager memory; a re-access is a cheap fault served from the
// staging slot that marks the page used (TPP's hint faults), and pages left
// staged for an interval are the reclaimer's first, free victims
// (sample_linux.go).
//
// # Pager death and recovery
//
// The application keeps its userfaultfd and memfd: when the pager dies,
// faults on absent pages block (never zeros), and farmem.Map's Mapping
// reports ErrPagerLost and offers the region to a pager on the same socket.
// A restarted pager takes it back (attach re-attach), rebuilds the residency
// map from the memfd with SEEK_DATA/SEEK_HOLE (resident pages survived and
// are authoritative; they are treated as dirty), finds the others in the
// far tier under the same region id, and wakes the whole range so that
// faults the dead pager read but never served are raised again. This needs
// a far tier that outlives the pager (memnodes: RemoteStores; with a local
// backup file per region that also survives memnodes restarting empty:
// ResilientStores).
//
// Everything the pager holds in memory can be rebuilt from the memfd and
// the far tier except one bit per page: "the far tier holds this page".
// Without it, a page absent from both was either never written (zero) or
// lost by the far tier (a memnode restarted empty while no pager ran), and
// a restarted pager can only take it as never written.
//
// # Persistent metadata
//
// Config.Meta (farmem pager --meta FILE) keeps that bit durable: a region
// table in a persistent-memory pool (package pmem; msync on a regular file,
// cache-line flushes on DAX), changed only by redo transactions of package
// pmem/journal (meta.go has the on-media layout). A new region gets a
// record (id, size, page size, far-tier namespace prefix) and a zeroed
// bitset, linked from the pool's root object, in one transaction. An
// eviction batch sets the bits of the pages it wrote back in one
// transaction, durable after the far-tier write-back has completed and
// before the pages are punched out of the memfd; a page whose bit is set
// already costs nothing, so only first write-backs pay. So at any crash
// every page is resident in the memfd or recorded as written (or clean
// with its bit set earlier, or zero). Record and bitset are freed when the
// application detaches, and kept when the pager shuts down or dies.
//
// On a re-attach, an absent page whose bit is set must be in the far tier:
// if the far tier no longer has it, the fault is ErrLostPage and the
// faulting thread waits (the fetch is retried on a goroutine of its own, so
// the region's other faults are served), never zeros; an absent page whose
// bit is clear was never written and is installed as zeros without a
// fetch. A re-attach whose record disagrees with it (size, page size,
// namespace prefix) is refused (ErrMetaMismatch, ErrNotRecoverable); a
// region without a record (attached under a pager without the table) is
// served as without it. A metadata file that is not a whole pool of this
// layout is refused by name (ErrMetaCorrupt, ErrMetaLayout).
package pager
