// Package memnode is the memory node of farmem: a server that lends its RAM
// as fixed-size pages to many clients over TCP, speaking the protocol of
// internal/wire (documented in docs/PROTOCOL.md).
//
// # Namespaces, capacity and authentication
//
// A client connection opens with a handshake that names a namespace; every
// request on that connection touches only that namespace's pages. Namespaces
// outlive connections, so a client that reconnects finds its pages; they do
// not outlive the process. Capacity is global: when every page slot is taken,
// a write of a new page answers "full" for that page (overwrites of present
// pages still succeed), nothing stored is lost and the connection stays up;
// freeing pages makes room. With a token configured, a handshake must present
// it (compared in constant time with crypto/subtle) or is refused.
//
// # Boot epoch
//
// The memnode draws a random 64-bit epoch at start and reports it in every
// handshake and stat reply. Memory is volatile, so a memnode that restarts
// comes back empty; a changed epoch is how a client learns that it must
// restore its pages from a backup (capability C1) rather than trust
// "not found".
//
// # Storage
//
// Pages live in a slab: chunks of 256 page slots with their CRC32C checksums,
// allocated lazily up to the capacity, and freed slots go to a free list for
// reuse. Each namespace indexes its pages with 32 sharded maps from page id to
// a uint32 slot (maps without pointers, which the garbage collector does not
// scan), so the Go heap holds one object per chunk, not one per page. A page
// is stored only if its checksum verifies on receipt, and every read verifies
// the bytes it is about to send against the stored checksum: a page corrupted
// in memory answers "corrupt", never bad data (end-to-end checksums).
//
// # Connections
//
// Each connection is served by one goroutine in the style of pipelining
// servers such as Redis: it reads a request, handles it inline and appends
// the reply to an output buffer, which it writes when no further complete
// request is already buffered (or when it has grown large). A pipelined
// burst of requests is answered with one write system call; a lone request
// is answered at once. A client that sends faster than it reads is pushed
// back through TCP flow control. A malformed frame is answered with an
// Error frame and closes only that connection; an idle connection is closed
// after Config.IdleTimeout.
//
// # Shutdown and observability
//
// Shutdown stops accepting, lets each connection finish the requests it has
// read and flush the replies, then closes it. Registry exposes Prometheus
// metrics (pages used and capacity, requests and page operations by op,
// errors by kind, connections, bytes in and out); AdminHandler serves them
// with /debug/pprof.
package memnode
