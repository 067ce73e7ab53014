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
// Commit ids ascend globally; a redo journal takes the next one with an
// atomic add when it is sealed (a coalesced group's leader takes the ids
// of its whole group with one add). A redo journal waits, after it is
// applied and its homes are flushed, on its shard's retiring list until
// the pool's watermark W — a single 8-byte word meaning "every transaction
// with id <= W has its home writes durable" — passes its id; only then
// does it return to the free list.
//
// The watermark is computed from claims rather than kept up to date per
// transaction: a journal holds a claim from just before its commit id is
// taken until the fence of the round that flushed its homes, and W is one
// below the least of the next id and every claim. A round advances W only
// when it must — half of its shard's journals are retiring, a Begin found
// none free, Sync — so the common round touches only its own shard's
// lines, and W vouches only for homes that rounds which had ended made
// durable: a crash that tears a round never persists W without what W
// promises. Rounds may overlap and groups may become durable
// out of id order: a transaction's effects are applied only after its own
// round, so none depends on a transaction that is not yet durable.
// Recovery rolls back every active undo journal, then replays, in ascending
// commit id order, every valid redo journal above W, discarding torn ones
// (checksum mismatch: commits never acknowledged). An undo transaction's
// release waits until no earlier redo journal can be replayed over its new
// values.
//
// # Commit coalescing
//
// With Options.Coalesce, commits follow the group-commit scheme of database
// write-ahead logs, with one group per processor (Options.Shards, default
// GOMAXPROCS): a committer pushes its transaction on the lock-free pending
// stack of the shard of the processor it runs on; a committer that gets
// one of that shard's round slots (Options.Rounds, default 1) is the
// leader: it takes the whole stack, seals every journal of it (one atomic
// add for all their ids), persists them with one fence, and applies them
// to their homes. Followers yield through their processor's run queue,
// then sleep until the round ends. So each core's committers form their
// own groups, and the cores' leaders fence in parallel. Options.MaxWait
// lets a leader wait for the group to grow; with zero, groups form while
// the previous round's fence is in flight, and the last committer to
// arrive leads: one that sees another open transaction of its shard not
// yet pending yields once before it tries for a slot, so a group of two
// committers on one processor costs one goroutine switch. A committer
// alone on its shard leads its own round at once, yielding on one such
// commit in 16 so that goroutines waiting on its processor get to run.
//
// The leader applies its group rather than each committer after its
// wake-up: a committer descheduled between its round and its apply would
// hold an id that the watermark, and with it the recycling of every later
// journal, must wait for.
//
// # Who flushes
//
// SFENCE orders only the cache-line flushes of the core that executes it,
// so the goroutine that fences a round flushes every line the fence is
// meant to cover: the journals of its group (body and header), the homes of
// the transactions its shard applied since its previous round (of every
// shard, in a round that advances the watermark), and the watermark
// word. Committers only store. CLWB writes a line back from whichever cache
// holds it, so the leader may flush lines other goroutines wrote.
//
// Stats and the pool's fence counter give fences per transaction.
// BeginInto reuses a caller's Tx, so a committer allocates nothing per
// transaction.
package journal
