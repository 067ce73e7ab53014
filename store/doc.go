// Package store defines the Store interface that every tier backend of farmem
// implements, and the in-process and file-backed implementations.
//
// # Contract
//
// A Store holds fixed-size pages of one region, named by PageID (the page's
// index in the region). All requests are batched and asynchronous: a caller
// fills a Call with an Op and a slice of Pages and hands it to Submit, which
// returns at once (or after bounded flow control) and later sends the Call on
// its Done channel exactly once. A caller may keep many Calls in flight; Do is
// the synchronous wrapper.
//
// The caller owns every byte slice in a Call. The store reads Page.Data of a
// write and fills Page.Data of a read only between Submit and the send on
// Done, and never keeps a reference afterwards. Calls may complete in any
// order.
//
// Every page carries a CRC32C (Castagnoli) checksum from the moment it leaves
// DRAM: a write supplies Page.Sum (see Checksum), the store keeps it with the
// data, and a read returns it and verifies the data against it. A mismatch is
// reported as a per-page error that wraps ErrCorrupt; data that fails its
// checksum is never returned as good.
//
// A read of a page the store does not hold reports ErrNotFound for that page:
// a store never invents zeros. The engine knows which pages were never written
// and does not ask for them.
//
// Deadlines come from the context given to Submit. When it expires, the store
// completes the Call with an error wrapping the context's error and discards
// any late answer.
//
// # Implementations
//
//   - Mem: in process, for tests.
//   - NVM: a local file (the NVM or SSD tier), see nvm.go.
//   - remote: a memnode client, in package store/remote.
package store
