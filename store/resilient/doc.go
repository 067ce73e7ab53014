// Package resilient is capability C1, resilient remote memory: a
// store.Store that keeps every page on a remote primary (the memnodes of
// package store/remote) and a copy in a local backup (a store.NVM file), so
// that a network fault is never an application fault.
//
// The technique is Infiniswap's (Gu et al., NSDI 2017: remote pages with a
// local disk copy), with the change its evaluation calls for: Infiniswap
// fails over only when RDMA reports a disconnect, so a node that is alive
// and silent hangs it; here every remote read carries a deadline.
//
// # Writes
//
// A write goes to the backup and, if the page's node takes writes, to the
// node, in parallel. It succeeds when the backup has the page and either
// the node has it too or the page is recorded, durably, in the outage set.
// The engine frees a frame only after its write-back succeeded, so a page
// leaves DRAM only when the backup holds it and the remote holds it or is
// known (durably) to lack it. A backup without room fails the write with
// ErrBackupFull (a store.ErrFull): nothing is evicted without its copy.
//
// # Reads and the deadline
//
// Each node has a health.Machine (package store/health), a pure state
// machine that this package drives: calls, probes and resyncs feed it
// events, and its decision routes the next calls. A read of a page on a
// healthy node goes to the node with the node's deadline,
//
//	deadline = clamp(K × p99 of the last 256 answered latencies, Floor, Ceiling)
//	           defaults K = 4, Floor 2 ms, Ceiling 100 ms (Config.Health; Health.Fixed pins it)
//
// (each node gets 16 probe reads when the store opens, so that the
// deadline has adapted before the first fault), and when the deadline passes, the connection fails, or the answer is bad
// (checksum mismatch, "not found" for a page written here, or a checksum
// other than the newest write's, which a late or reordered remote write can
// leave), the backup serves the page and the remote answer is discarded. A
// bad remote copy is counted and joins the outage set, so it is rewritten
// to the node. A read of a page on a node that is suspect (one missed
// deadline), down, or being repopulated, or of a page in the outage set,
// goes to the backup at once: only the first fault of an incident waits
// for a deadline. (The machine would let reads of a node being resynced
// from its outage set go to the node; this driver keeps them on the
// backup until the resync is done, because the resync has the link and a
// read that missed its deadline behind it would throw the node back to
// down.) A suspect node gets one probe read per Tick in the
// background, so that its answers can clear the suspicion.
//
// # Outage set and resync
//
// While a node is down, nothing is sent to it; written pages go to the
// backup and join the outage set, a bitmap in memory and an append-only log
// in a sidecar file (backup path + ".outage", format in outage.go). A probe
// (a read of a page id no region uses) runs every ProbeInterval. When it
// gets through, the machine moves to resyncing and a background resync
// copies the node's outage pages from the backup, pipelined (ResyncDepth
// batches of ResyncBatch pages in flight) and rate-limited (ResyncRate
// pages a second); faults never wait for it. A node that answers with a new
// boot epoch restarted empty: it is repopulated with every page of the
// backup it homes (a full resync), reads going to the backup until that is
// done. The log also records, per node, the boot epoch at which it last
// held all its pages, so a client that restarts finds out which nodes
// restarted meanwhile, and which pages the others lack.
//
// A resync copy can race a new write of the same page. Each page's newest
// checksum is kept in memory (8 bytes per page: the CRC32C and two flags,
// set at the start of each write); a copy whose page changed meanwhile is put back in
// the outage set, and a read that gets an older version from the node
// fails over. Between them, a read never returns anything but the newest
// version.
//
// # Metrics
//
// Counters returns the totals as a struct (farmem bench puts them in its
// JSON); with Config.Registerer they are also Prometheus metrics named
// farmem_resilient_*: failovers, backup reads, timeouts, connection
// errors, corrupt/lost/stale remote pages, outage-set size, resynced pages,
// resyncs, and per node its state and read deadline. docs/FAULTS.md has
// the full list, and measurements.
package resilient
