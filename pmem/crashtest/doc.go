// Package crashtest checks that the persistent structures of package pmem
// and package journal recover to a correct state from every crash the
// simulator can produce.
//
// # Method
//
// Each workload runs twice from the same seed on a simulated pool
// (pmem.Sim). The first run counts fences; the second installs a fence hook
// that, at every fence, takes the image as of the previous fence boundary
// and a share of the requested random images — that boundary plus a random
// subset of the lines written but not yet durable (pmem.Sim.CrashClone, in
// the spirit of pebble's vfs.CrashClone and of Yat/Jaaru-style exhaustive
// crash-state exploration). Each image is recovered by journal.Open on a
// fresh pool and checked against the workload's model, which knows which
// transactions were acknowledged and which were in flight at that fence.
// Optionally the recovery itself is crashed at each of its fences and
// recovered again. Finally the recovered pool must accept a new transaction.
//
// # Workloads
//
//   - bank: transfers between accounts, redo, undo and explicit groups of
//     disjoint redo transfers sharing one fence; the sum is invariant,
//     acknowledged transfers are present, in-flight ones all-or-nothing.
//   - hashmap: a persistent chained hash map with allocated nodes; the
//     recovered map equals the model after a prefix of the transactions
//     that covers every acknowledged one, and the allocator holds exactly
//     the reachable blocks.
//   - alloc-churn: random allocations and frees in redo and undo
//     transactions, with the slot array periodically moved and the root
//     switched; no leak, no double use, block contents intact.
package crashtest
