// Package faultproxy injects network and node faults between a far-memory
// client and a memory node, so that the resilient store (capability C1) can
// be tested and benchmarked against the failures it exists to survive.
//
// # The proxy
//
// A Proxy listens on its own address and forwards every accepted
// connection to a target address over a fresh connection. Each direction of
// each connection is a small pipeline: a reader stamps each chunk with the
// time it may be delivered, a writer delivers chunks in order once they are
// due and no blackhole is in force. On command it can
//
//   - blackhole: hold every byte in both directions; connections stay open
//     and nothing answers, new connections are accepted but the target is
//     not dialed. This is the failure that timeouts on connection errors
//     alone do not catch: Infiniswap (Gu et al., NSDI 2017) fails over when
//     RDMA reports a disconnect, and hangs on a node that is alive but
//     silent. farmem fails over on a deadline instead.
//   - delay: add latency to each chunk in each direction, order preserved.
//   - reset: abort every connection with an RST (SO_LINGER 0, close).
//   - cut: close every connection, and reset new ones while the cut lasts.
//
// Killing and restarting the backend itself is not the proxy's business:
// the caller supplies Hooks (the bench plugs in its embedded memnode).
//
// # Schedules
//
// A schedule is a list of timed events written as a spec,
//
//	blackhole@5s+3s,delay@10s+2s:50ms,reset@14s,kill@16s+2s
//
// (kind@start[+duration][:param]; docs/FAULTS.md has the grammar, the
// defaults and the overlap rule). Parse reads one, with named errors for
// every way a spec can be wrong; RandomSchedule draws one from a seed with
// a given number of events of every kind, for soak tests that must inject
// at least so many faults of each kind.
//
// Time is explicit: Schedule.At says which faults are in force at an
// offset and Schedule.Edges lists the instants at which something begins
// or ends, both pure. A Runner applies the edges to an Injector (the Proxy)
// and Hooks: Runner.Step(offset) applies every edge due by then, in order,
// so a late wake-up still applies a short fault rather than skipping it,
// and Runner.Run drives Step from a Clock, which tests replace with a fake
// one. Runner.Counts reports how many faults of each kind were injected.
//
// # Fault injection as a wrapper
//
// The design follows pebble's vfs/errorfs and toxiproxy: faults are injected
// by a wrapper around the real interface (here a TCP connection), so the
// code under test runs unchanged.
package faultproxy
