// Package health decides, for one memory node, whether a far-memory client
// should trust it: a pure state machine over the events a driver observes
// (answers and their latencies, timeouts, connection errors, probes,
// resync progress, ticks of time), returning routing decisions and the
// background work to start. It is the health half of capability C1,
// resilient remote memory; the resilient store drives it.
//
// # Why a deadline, not a disconnect
//
// Infiniswap (Gu et al., NSDI 2017) keeps a disk backup of remote pages but
// fails over only when RDMA reports a disconnect, so a node that is alive
// and silent hangs every fault that touches it. Here every remote read
// carries a deadline, and missed deadlines, not only broken connections,
// move the node through the states
//
//	healthy → suspect → down → resyncing → healthy
//
// Healthy: reads wait for the node up to the deadline, then fall back to
// the backup. Suspect (one missed deadline): reads are still sent, so that
// on-time answers can clear the suspicion, but faults no longer wait for
// them: the backup answers at once. Down (DownAfter missed deadlines in a
// row, SuspectTimeout without an on-time answer, or a connection error):
// nothing goes to the node, written pages join the outage set, and a probe
// runs every ProbeInterval. Resyncing (a probe got through): the outage set
// is copied back, or every page if the node came back with a new boot
// epoch (it restarted empty); a node is healthy again only when that resync
// is done. docs/FAULTS.md has the full transition table.
//
// # The adaptive deadline
//
//	deadline = clamp(K × p99, Floor, Ceiling)      defaults K=4, 2 ms, 100 ms
//
// over the last Window (256) answered latencies, late answers included so
// that a slow link raises the deadline rather than failing every read;
// Initial (default: the ceiling) until MinSamples (16) latencies are in.
// The latencies sit in a fixed ring, and the percentile is recomputed every
// 16 samples by sorting a fixed scratch copy: no allocation per event.
//
// # Events in, decisions out
//
// As in etcd's raft core, the machine does no I/O and reads no clock: each
// Event carries its time, and Step returns a Decision. Trace files under
// testdata/ replay it exactly (see ParseTrace for the format, and run the
// tests with -rewrite to regenerate the expected decisions); a rapid
// property test checks that no read is ever routed to a down node and that
// no node becomes healthy after being down without a completed resync.
package health
