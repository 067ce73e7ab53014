// Package uffd wraps Linux userfaultfd(2) in pure Go over golang.org/x/sys/unix:
// the ABI (constants, ioctl numbers, structs) defined by hand and checked
// against <linux/userfaultfd.h> by a test, the ioctls, event reading, the
// memfd helpers the pager needs, the PAGEMAP_SCAN ioctl for asynchronous
// dirty tracking, and measurements of the bare fault cost and of both ways
// of tracking writes.
//
// # Technique
//
// userfaultfd lets a process hand the page faults of a memory range to a
// handler that supplies the pages: it registers the range, and each fault on
// it becomes an event that the handler reads from a descriptor and resolves
// with UFFDIO_COPY (install data), UFFDIO_ZEROPAGE, UFFDIO_CONTINUE (map a
// page already in the shared file's page cache) or UFFDIO_WRITEPROTECT (clear
// the protection of a written page). Post-copy live migration in QEMU, and
// the snapshot-restore page-fault handlers of Firecracker and e2b, are built
// on it; so is farmem's transparent mode.
//
// # The separate-process shape
//
// The handler of a Go program's faults must not run inside that program. A
// goroutine blocked in a fault inside runtime code (runtime.memmove, that is
// any copy()) is not at an async safe point: the preemption signal cannot stop
// it, stop-the-world waits for it, and the handler goroutine never gets a P to
// resolve the fault. With GOMAXPROCS=1 even plain loads livelock
// (shared/notes/userfaultfd.md). So the application creates the userfaultfd
// (it is bound to the creator's address space), registers its mapping of a
// memfd, and passes the descriptor to the pager process over a Unix socket
// (package attach); the pager maps the same memfd to read the application's
// writes and to keep evicted contents, and installs pages with Copy. The
// tests of this package have the same shape: the faulting application is the
// test binary re-executed, and the test process only handles.
//
// # Using it
//
// Open does the API handshake, enabling the wanted features the kernel
// offers (Probe lists them); FromFD wraps a descriptor received from the
// application. Register the range (ModeMissing; ModeWP for dirty tracking;
// ModeMinor with Continue), then loop on Read, which blocks in poll(2) until
// events arrive or Shutdown is called, and fills a caller-provided []Msg
// without allocating. For each EventPagefault install the page at
// Msg.Address() rounded down to the page: Copy(dst, data, 0), or with CopyWP
// to install a clean page write-protected, so that the first write raises
// one fault with FlagWP|FlagWrite, which marks the page dirty and is resolved
// with WriteProtect(addr, size, false, false). One Copy per run of contiguous
// pages costs much less per page than one per page.
//
// Eviction: write-protect the page, copy it out through the handler's own
// mapping, then PunchHole it out of the memfd; the next access faults as
// missing again. MADV_DONTNEED on a shared mapping does not evict (the page
// stays in the page cache), and touching a hole through the handler's own
// mapping silently creates a zero page, so the handler keeps a residency map
// and never touches a page it has not installed.
//
// # Dirty tracking without a fault per write: WP_ASYNC and PAGEMAP_SCAN
//
// With FeatureWPAsync (Options.Want or Need) a range registered with ModeWP
// never reports write-protect faults: the kernel clears the protection of a
// written page itself and goes on. Which pages were written is read from the
// page tables with PAGEMAP_SCAN (Linux 6.7) on /proc/PID/pagemap:
// OpenPagemap opens it once — the application's, from the pager — and
// PagemapScanner.Scan with ScanWrittenAndProtect returns the pages written
// since the previous scan and write-protects them again in the same pass,
// atomically per page-table lock. Scan returns at most VecLen regions per
// call and the address where the walk stopped; ScanAll continues from it to
// the end of the range. Neither allocates. The first scan (or a
// WriteProtect of the range) arms the tracking: before it, every page,
// holes included, reads as written. On a memfd mapping WP_ASYNC needs
// neither FeatureWPHugetlbfsShmem nor FeatureWPUnpopulated: protecting a
// range also protects its holes (uffd-wp markers), so a later read of a hole
// does not count as a write.
//
// WP_ASYNC applies to every write-protect fault of the descriptor: pages
// installed with CopyWP or protected with WriteProtect are resolved by the
// kernel too, and a range belongs to one userfaultfd (a second registration
// fails with EBUSY), so write protection can no longer stop a writer.
// Missing faults on the same descriptor stay synchronous. Eviction can use
// them as the fence: take a reference to the victim page (vmsplice of the
// pager's mapping into a pipe), punch it out of the memfd, which unmaps it
// from the application (whose next access is a missing fault), and only
// then copy the contents out of the pipe; a write that races the eviction
// is in the copy. After the punch a protected, unwritten page keeps a
// uffd-wp marker (PageSwapped), a written one does not (PageWritten), which
// says whether the copy needs writing back. The tests in
// wpasync_linux_test.go pin each of these facts down.
//
// The pin fence holds only for order-0 pages: when the victim is part of a
// large folio (shmem THP), the punch zeroes it in place and the split
// fails while the pipe holds it, so the pipe reads zeros and the memfd
// keeps the page (TestEvictPinLargeFolio, on a huge=always tmpfs; memfds
// here get none: shmem_enabled is "never"). Never pin a hole: vmsplice
// faults it in through the pager's mapping, allocating a zeroed page in
// the memfd, and the application then reads zeros without a fault
// (TestVmspliceHoleAllocates). A pipe holds one page per buffer slot:
// size it with F_SETPIPE_SZ; past /proc/sys/fs/pipe-max-size (1 MiB, 256
// pages, here) it needs CAP_SYS_RESOURCE, which root lacks here.
//
// # Errors the kernel returns, and what they mean
//
// Copy, ZeroPage and Continue handle the answers Firecracker's and e2b's
// handlers learned to expect:
//   - EAGAIN with partial progress: the rest is retried at once. EAGAIN with
//     none means the range is changing under a non-cooperative event (remove,
//     unmap, remap) that waits for a reader of this descriptor; it is retried
//     a bounded number of times and then reported as ErrAgain, so a handler
//     that is also its own event reader can read events and retry instead of
//     spinning forever.
//   - EEXIST: the page is already there (a duplicate fault from a second
//     thread, or another worker won the race). It is not an error: the page is
//     skipped and its waiters woken; the result counts installed bytes only.
//   - ENOENT: the range is no longer registered: the application unmapped or
//     remapped it. ErrMappingGone; the fault is gone with it, drop it.
//   - ESRCH: the application's address space is gone (it exited).
//     ErrProcessGone; drop the region.
//
// # The bare fault cost, and the cost of dirty tracking
//
// MeasureBareFault times first touches of fresh pages served by a minimal
// handler in another process (one goroutine, poll, read, one Copy per
// fault): the floor under any pager's fault latency. MeasureDirtyTracking
// compares, on memfd mappings, the first store to a clean page under a
// synchronous WP fault (resolved by a minimal handler in another process:
// what the pager pays per first write today) and under WP_ASYNC, with the
// cost of one ScanWrittenAndProtect pass and of one WriteProtect for a few
// batch sizes (BenchmarkDirtyTracking reports them as metrics). A binary
// that calls either must call MaybeRunHelper first thing in main.
// docs/TRANSPARENT.md has the figures measured on these machines and the
// commands.
//
// MeasureEviction (BenchmarkEviction) times the eviction of a batch of
// pages both ways, the application in a helper process: the sync fence
// (UFFDIO_WRITEPROTECT per dirty run, copy out, PUNCH_HOLE per run)
// against the pinned eviction (one vmsplice, PUNCH_HOLE per run, read the
// pipe, one PAGEMAP_SCAN). Measured on these machines (2026-11-26, 3 runs
// of 1000 rounds, load 1.8-2.7), in µs per page, p50: for dirty pages in
// runs of 32 to 256, 1.4-2.0 fenced against 1.7-2.9 pinned; scattered
// dirty pages, 6.3-7.5 against 5.1-6.9 (one WRITEPROTECT per page
// saved); single pages 7.0-10.7 against 9.2-29; clean pages always cost
// more pinned (adjacent 0.6-0.8 against 1.5-2.1), which must vmsplice and
// read what the fence does not copy at all. PUNCH_HOLE dominates both
// (3.5-6.4 µs for a one-page call, 0.6-1.3 per page in runs of 32 or
// more): batching adjacent pages matters more than the choice of fence.
// Excluding the write-back, eviction costs about the same both ways; what
// WP_ASYNC gains is on the write side (0.8 µs per first store instead of
// 7-8). shared/notes/userfaultfd.md has the table. Its helper process
// (HelperEnv=evict-app) is dispatched by MaybeRunHelper, as the others.
//
// # Platforms
//
// Linux on architectures with the generic ioctl encoding (amd64, arm64,
// riscv64, loong64, s390x). Elsewhere every function returns ErrNotSupported
// (ErrScanNotSupported for the pagemap scanner). PAGEMAP_SCAN needs Linux
// 6.7; older kernels answer ErrScanNotSupported (ScanSupported tells).
package uffd
