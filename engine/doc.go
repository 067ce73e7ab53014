// Package engine is the heart of farmem's far-memory data path: a page table,
// a frame pool that is the region's DRAM budget, the fault path that brings
// pages in from a store, and eviction that writes them back.
//
// # Model
//
// A region of Size bytes is cut into pages of PageSize bytes. At any instant a
// page is in exactly one state:
//
//	zero      never written back; its content is all zeros and no store holds it
//	stored    its content lives in the store, not in DRAM
//	loading   a fetch from the store is in flight into a reserved frame
//	resident  its content is in a DRAM frame (clean or dirty)
//	evicting  a write-back of its frame is in flight; the frame is read-only
//
// The page table keeps one 8-byte entry per page (state and frame index), so
// its metadata is 8/PageSize of the region: 0.2% at 4 KiB pages.
//
// # Frames
//
// Frames live in one off-heap arena (an anonymous mapping, invisible to the Go
// garbage collector) sized by the DRAM budget. Stores read into and write from
// frame memory directly: the fault path copies a page once, into the caller's
// buffer, and allocates nothing on the Go heap per page (batches and their
// store Calls come from a sync.Pool).
//
// # Fault path
//
// acquire pins a run of pages. Resident pages are pinned at once; zero pages
// get a zeroed frame; stored pages get a frame reserved in the loading state
// and are fetched together in one batched store Call. A second goroutine that
// finds a page loading waits for that fetch instead of issuing its own
// (single flight). A goroutine waits only while it holds no pins and no
// reservations, so waiting can never form a cycle.
//
// # Eviction
//
// A simple CLOCK: each frame has a reference bit set on access; the hand skips
// and clears referenced frames and picks unreferenced, unpinned ones. Dirty
// victims are written back in one batched Call before their frames are
// reused (invariant: a frame is reused only after its page is durable in the
// store). A background reclaimer keeps a pool of free frames between a low and
// a high watermark (like Linux's kswapd), so most faults find a free frame; a
// fault that finds none reclaims directly. The pipelined reclaimer of C4
// replaces this writer later.
//
// # Concurrency
//
// One mutex guards the page table and frame metadata; it is held only for
// metadata updates, never across I/O or copies. Every method of Engine is safe
// for concurrent use, except Close, which must not race with other calls.
package engine
