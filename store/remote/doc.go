// Package remote is the memnode client: a store.Store whose pages live in
// the RAM of one or more memnodes, reached over TCP with the protocol of
// internal/wire (see docs/PROTOCOL.md).
//
// # Placement
//
// Each page goes to one node, chosen by Lamping and Veach's jump consistent
// hash of its (mixed) page id: no table, an even spread, and when a node is
// added only 1/(n+1) of the pages would move. A Call is split per node and
// each node's share is cut into frames no larger than the node accepts
// (learned in the handshake); the Call completes when every frame has.
//
// # Connections
//
// Each node has two small pools of connections (Config.ConnsPerNode each),
// used in round-robin order. Every connection is multiplexed: callers write
// whole request frames (concurrent writes are combined into one system
// call) and replies are matched to requests by request id, so any number of
// requests are in flight per connection and replies may arrive in any
// order. On the pool that Submit uses, a resident reader goroutine per
// connection reads the replies. On the pool that Do uses, nobody reads an
// idle connection: the synchronous caller that sends on it reads its own
// reply (a leader/followers arrangement, see read.go), so that a fault's
// round trip costs what a bare blocking client's does, without a hand-off
// between goroutines; replies for others that arrive meanwhile are
// dispatched by it, and a goroutine takes over if some are still pending
// when its own call is done. Before reusing a connection that has been idle
// for a second, the client checks with a non-blocking peek that the memnode
// has not closed it (after its idle timeout, say).
//
// A connection that fails (reset, protocol violation, write timeout) fails
// every request pending on it with store.ErrUnavailable; the next call that
// picks its slot redials, with exponential backoff between failed dials
// during which calls fail fast. Each handshake reports the node's boot
// epoch; Epochs and Config.OnEpochChange expose it, so that a caller can
// tell a memnode that restarted empty from one that lost a page.
//
// # Deadlines
//
// A Call's context bounds it: when the context ends, every frame still
// pending is taken off its connection and the Call completes with an error
// wrapping the context's error (a caller reading its own reply is
// interrupted between frames). A reply that arrives later finds no pending
// request and is discarded, so the store never writes a caller's buffer
// after the Call's completion.
//
// # Checksums and allocation
//
// Writes carry each page's CRC32C, which the memnode verifies; reads are
// verified again here, on the bytes copied into the caller's Page.Data. The
// read path decodes each reply into a reused per-connection buffer and
// copies each page straight into Page.Data: a Call costs a constant number of
// small allocations (its bookkeeping), never one per page.
//
// # Raw reference
//
// RawRTT is a deliberately minimal client (one connection, synchronous
// single-page reads) whose round-trip time is the physical reference that
// benchmarks compare the full fault path against.
package remote
