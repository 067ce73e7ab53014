// Package journal implements failure-atomic transactions over a pmem pool
// with micro-journals (C6) and commit coalescing (C7).
//
// # Micro-journals
//
// The pool holds K journals of S bytes, both fixed at pool creation (see
// Header for the on-media format). A transaction takes a free journal from
// the DRAM free list, waiting up to Options.BeginTimeout before returning
// ErrNoFreeJournal, and logs its writes as entries of (offset, length,
// bytes). A transaction that does not fit its journal gets ErrTxTooLarge on
// the Write that overflows: journals are not chained, because a chain would
// need its own commit record and recovery ordering across journals, and a
// named error is never a silent truncation. Many small fixed journals, one
// transaction each, rather than one shared log, keep committers from
// contending on a log tail; the per-transaction log itself is the classic
// one of PMDK's libpmemobj (undo) and Mnemosyne (redo).
//
// Two modes share the format. Redo buffers new values in the journal,
// persists the journal (the commit point) and then applies it, one fence per
// commit; undo logs each old value, persists it, then stores in place
// (log-before-store), which lets a transaction read its own writes and roll
// back after a panic, at one fence per write plus two at the end. C5's
// TxBegin/TxEnd builds on either.
//
// # Commit ids, watermark and recovery
//
// Commit ids ascend globally; they are taken under a lock when a redo
// journal is sealed. A redo journal stays on the in-flight list after it is
// applied, until the pool's watermark W — a single 8-byte word meaning
// "every transaction with id <= W has its home writes durable" — passes its
// id; only then does it return to the free list. The watermark written by a
// persist round vouches only for homes made durable by an earlier round, so
// a crash that tears a round never persists W without what W promises.
// Recovery rolls back every active undo journal, then replays, in ascending
// commit id order, every valid redo journal above W, discarding torn ones
// (checksum mismatch: commits never acknowledged). An undo transaction's
// release waits until no earlier redo journal can be replayed over its new
// values.
//
// # Commit coalescing
//
// With Options.Coalesce, commits follow the group-commit scheme of database
// write-ahead logs: a
// committer flushes its journal body on its own processor, seals the header
// with the next id and joins the pending list; the committer that holds the
// persist lock is the leader and persists every pending journal — their
// header lines, the watermark — with one fence. Followers yield briefly,
// then sleep until the round ends. Options.MaxWait lets a leader wait for
// the group to grow; with zero, groups form while the previous round's fence
// is in flight. Stats and the pool's fence counter give fences per
// transaction.
package journal
