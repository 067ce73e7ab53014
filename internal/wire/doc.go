// Package wire defines the binary frames that memnode clients and servers
// exchange: their layout, encoders that append to caller buffers, and
// decoders that validate a body and return views into it.
//
// # Framing
//
// Every frame is a 16-byte header (magic "FM", version, type, body length,
// request id; see Header for the diagram) followed by the body. Length-prefixed
// framing with a hard limit (MaxBodyLimit, and the smaller limit a memnode
// announces in its Welcome) lets a receiver read a frame with two reads into a
// reused buffer and refuse an oversized one before reading it.
//
// # Sessions
//
// A client opens a connection with Hello (version in the header, page size,
// namespace, token) and the memnode answers Welcome (boot epoch, capacity,
// used, max body, page size) or Error. After that the client may pipeline any
// number of Read, Write, Free and Stat requests, each with its own request id;
// the memnode answers each with a reply carrying the same id, possibly out of
// order — the multiplexing of one connection by request id that HTTP/2 and
// many RPC systems use. Read and Write carry batches of pages; each page of
// a Write carries its CRC32C, and each page of a ReadReply carries the CRC32C
// stored with it (end-to-end checksums: the receiver always verifies).
//
// # Errors
//
// Failures of a whole request travel as Error frames with a Code; failures of
// one page travel as that page's status in the reply. Code.Err maps a code to
// a named error of this package and CodeOf maps back. Every malformation the
// decoder finds is a named error that matches ErrBadFrame, after which the
// connection's framing cannot be trusted and the receiver closes it.
//
// # Allocation
//
// Decoders never copy page data: Pages.At and ReadReply.Next return slices
// of the body buffer, which ReadFrame fills and reuses. Only Error frames
// allocate (their message), which is off the hot path.
package wire
