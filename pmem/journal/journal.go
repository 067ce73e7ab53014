package journal

import (
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/farmem/farmem/pmem"
	"github.com/farmem/farmem/pmem/internal/sched"
)

// Options configure the journals of an opened pool.
type Options struct {
	// Coalesce enables commit coalescing (C7): concurrent redo commits form
	// groups and one leader persists the whole group with one fence. Without
	// it every commit flushes its own journal and fences alone.
	Coalesce bool
	// MaxWait is how long a group leader waits for more committers before it
	// persists the group (only with Coalesce). Zero means no deliberate wait:
	// a group still grows while the previous group's fence is in flight.
	MaxWait time.Duration
	// GroupSize ends the leader's MaxWait early once this many commits have
	// joined (0: wait the full MaxWait).
	GroupSize int
	// BeginTimeout bounds how long Begin waits for a free journal before it
	// returns ErrNoFreeJournal. Zero means one second.
	BeginTimeout time.Duration
	// Rounds is how many coalesced persist rounds of one shard may have
	// their flushes and fence in flight at once (only with Coalesce);
	// committers that find every round slot of their shard busy wait and
	// join the next group. Zero means 1: on the two-core machine measured,
	// a second round in flight made groups smaller and throughput lower
	// (docs/PMEM.md).
	Rounds int
	// Shards is the number of commit groups, each with its own pending
	// list, leader and round slots (and its own free list and applied
	// list, with or without Coalesce). A transaction joins the shard of
	// the processor it began on, so each core's committers form their own
	// groups and the cores fence in parallel. Zero means GOMAXPROCS at
	// Open; 1 is a single global group.
	Shards int
	// ShardOf, when set, chooses the shard (modulo Shards) that a
	// transaction begins in or commits to, in place of the processor the
	// caller runs on. It exists for deterministic tests: the crash suite
	// drives several shards from one goroutine with a seeded choice, so
	// that a seed replays exactly the same fences.
	ShardOf func() int
}

// Recovery reports what Open found and did.
type Recovery struct {
	Watermark  uint64 // watermark before recovery
	Replayed   int    // redo transactions replayed
	RolledBack int    // undo transactions rolled back
	Torn       int    // torn (unacknowledged) commits discarded
	Stale      int    // redo journals at or below the watermark, ignored
	NextID     uint64 // first commit id handed out after recovery
}

// Journals is the set of K micro-journals of a pool, with the DRAM free
// lists, the in-flight bookkeeping and the commit groups. It is safe for
// concurrent use; each Tx belongs to one goroutine.
type Journals struct {
	p     *pmem.Pool
	h     pmem.Header
	opts  Options
	alloc *pmem.Allocator

	// shards are the commit groups, one per processor by default (see
	// shard). A transaction belongs to the shard of the processor it
	// began on.
	shards []shard

	// freeWaiters counts Begins in takeJournal's slow path; freeSig wakes
	// one of them.
	freeSig     chan struct{}
	freeWaiters atomic.Int32

	// byProc maps a processor id to its shard (shardHere), so that the
	// lookup costs no division; inline, as a small heap array would share
	// its line with whatever the allocator put beside it.
	byProc [16]*shard

	// nextID is the next commit id, taken with an atomic add: by a
	// coalesced group's leader for the whole group, by an uncoalesced
	// committer for itself, by an undo transaction at Begin. It is the
	// one word of Journals that every core writes every round, so it has
	// its lines to itself: beside the fields every Begin and round reads
	// (p, h, shards, claims...), each add by one core cost the other a
	// cache miss on them (a profile of four committers showed the miss
	// on shardHere's read of len(shards)).
	_      [128]byte
	nextID atomic.Uint64
	_      [120]byte

	// claims[i] is nonzero while journal i holds the first (least) commit
	// id of a group whose homes are not yet durable: a lower bound of that
	// id, stored before the ids are taken, then the id itself. The other
	// journals of the group claim nothing: a group's records are pushed
	// on the applied stack in one step, so one round flushes all of its
	// homes. The watermark stays below every claim (see advanceW). Each
	// shard's journals are contiguous at Open, so a core writes mostly its
	// own lines of this array.
	claims []sched.Word64

	// wMu serialises watermark advances: computing a new value and writing
	// it into the word. A round holds it for the computation only, never
	// across its flushes and fence, so rounds of different shards fence at
	// once.
	wMu      sched.SpinMutex
	wWord    uint64        // value in the word (flushed, maybe not yet fenced); under wMu
	wDurable atomic.Uint64 // largest value a round wrote into the word and then fenced

	maxRounds uint32 // round slots per shard
	per       int    // journals per shard at Open (see home)

	recs []appliedRec // applied-stack node of each journal

	failed atomic.Bool
	closed atomic.Bool
}

// shard is one commit group: its pending stack and leader slot, its
// applied stack, its free list and its committers' counts. With
// coalescing, committers that began on the same processor join the same
// group, and each group has its own leader, so the groups of a two-core
// machine persist on both cores at once, each leader flushing and fencing
// the lines of its own core's committers; a leader hands over to a
// follower on its own processor by yielding (sched.Yield), never through
// the global run queue. Nothing in a shard is needed for correctness: any
// round may persist any pending commit and flush any applied home.
type shard struct {
	shardState
	_ [(shardAlign - unsafe.Sizeof(shardState{})%shardAlign) % shardAlign]byte
}

// shardAlign keeps shards on separate cache-line pairs (the adjacent-line
// prefetcher pulls lines in pairs).
const shardAlign = 128

type shardState struct {
	// pending is a lock-free stack of commits awaiting a leader, linked
	// through Tx.pnext and taken whole; npending counts them.
	pending  atomic.Pointer[Tx]
	npending atomic.Int32
	// open counts coalescing redo transactions of the shard from Begin
	// until Commit or Abort returns: with npending, it tells a committer
	// whether yielding once may let another join its group (await).
	open atomic.Int32
	// alone counts the arrivals that found no other open transaction on
	// the shard (yieldToJoin).
	alone sched.Word32
	// inflight is the number of the shard's rounds between taking a
	// group and marking it persisted, at most Journals.maxRounds.
	inflight sched.Word32
	// applied is a lock-free stack of redo ids whose home writes are not
	// yet flushed; the next persist round pops it.
	applied atomic.Pointer[appliedRec]
	txs     atomic.Uint64 // committed transactions
	// groups and idle count the persist rounds run with this shard as
	// theirs, those that persisted commits and the others (one add per
	// round): the shard's own line, cheaper than a counter striped by
	// processor.
	groups, idle atomic.Uint64

	// condMu/cond let followers sleep until a round of the shard ends;
	// the leader takes condMu only when someone sleeps.
	sleepers atomic.Int32
	condMu   sync.Mutex
	cond     sync.Cond

	// The free list: a stack of journal indices under its own mutex (a
	// channel costs two runtime locks per transaction), and the journals
	// whose homes are durable but which wait for the durable watermark to
	// pass their ids; pop moves those to free once it has.
	freeMu   sched.SpinMutex
	free     []int
	retiring []retired

	// wantW is len(retiring) >= lowWater, stored only when it changes
	// (an atomic store is a locked instruction), for the round's test:
	// half of the shard's journals waiting make its rounds advance the
	// watermark.
	wantW       atomic.Bool
	fullBackoff atomic.Int32 // rounds left that skip a wanted advance (persist)
	lowWater    int32        // the same in every shard: half a shard's share of the journals
}

type retired struct {
	idx int
	id  uint64
}

// appliedRec is a node of the applied stack: a redo transaction whose
// entries have been stored to their homes but not flushed. The persist
// round that pops it flushes the homes itself, before its own fence. There
// is one per journal (Journals.recs): a journal is not reused before the
// round that popped its record has ended.
type appliedRec struct {
	id    uint64
	idx   int
	homes [][2]uint64 // (offset, length) of each home range
	next  *appliedRec
	// homeBuf backs homes for up to two ranges: a small heap array would
	// share its line with other journals' records, written on the other
	// core.
	homeBuf [2][2]uint64
}

// pushApplied pushes the chain first..last (linked through next) on the
// shard's applied stack in one step.
func (sh *shard) pushApplied(first, last *appliedRec) {
	for {
		old := sh.applied.Load()
		last.next = old
		if sh.applied.CompareAndSwap(old, first) {
			return
		}
	}
}

// Open recovers the journals of p and returns them ready for transactions.
// Recovery rolls back every active undo journal, then replays, in ascending
// commit id order, every valid redo journal above the watermark; it discards
// torn commits. Open fails with ErrJournalCorrupt on a structurally corrupt
// journal and leaves the pool unchanged in that case.
func Open(p *pmem.Pool, o Options) (*Journals, Recovery, error) {
	if o.BeginTimeout <= 0 {
		o.BeginTimeout = time.Second
	}
	h := p.Header()
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	if o.Shards <= 0 {
		o.Shards = runtime.GOMAXPROCS(0)
	}
	j := &Journals{p: p, h: h, opts: o, shards: make([]shard, o.Shards), freeSig: make(chan struct{}, 1), maxRounds: uint32(o.Rounds), recs: make([]appliedRec, h.Journals), claims: make([]sched.Word64, h.Journals)}
	// Each shard starts with a contiguous block of journals; a round
	// advances the watermark once half of its block waits for it.
	j.per = max(1, (int(h.Journals)+o.Shards-1)/o.Shards)
	for k := range j.shards {
		sh := &j.shards[k]
		sh.lowWater = int32(max(1, j.per/2))
		sh.cond.L = &sh.condMu
		sh.free = make([]int, 0, h.Journals)
	}
	for i := range j.recs {
		j.recs[i].homes = j.recs[i].homeBuf[:0]
	}
	for id := range j.byProc {
		j.byProc[id] = &j.shards[id%len(j.shards)]
	}
	rec, err := j.recover()
	if err != nil {
		return nil, rec, err
	}
	if j.alloc, err = pmem.NewAllocator(p); err != nil {
		return nil, rec, err
	}
	for i := int(h.Journals) - 1; i >= 0; i-- {
		sh := j.home(i)
		sh.free = append(sh.free, i)
	}
	return j, rec, nil
}

func (j *Journals) journal(i int) (uint64, []byte) {
	off := j.h.JournalOff + uint64(i)*uint64(j.h.JournalSize)
	return off, j.p.Mem()[off : off+uint64(j.h.JournalSize)]
}

func (j *Journals) recover() (Recovery, error) {
	mem := j.p.Mem()
	w, infos, err := Inspect(mem, j.h)
	rec := Recovery{Watermark: w}
	if err != nil {
		return rec, err
	}
	maxID := w
	var redo, undo []Info
	for _, inf := range infos {
		switch inf.Status {
		case "torn":
			rec.Torn++
			continue
		case "redo-pending":
			redo = append(redo, inf)
		case "redo-applied":
			rec.Stale++
		case "undo-active":
			undo = append(undo, inf)
		}
		maxID = max(maxID, inf.Header.ID)
	}
	// Undo first (uncommitted; isolation keeps them disjoint from redo
	// transactions), newest first.
	sort.Slice(undo, func(a, b int) bool { return undo[a].Header.ID > undo[b].Header.ID })
	for _, inf := range undo {
		_, jb := j.journal(inf.Index)
		es, _ := DecodeEntries(jb[HeaderSize:], 0, 0, inf.Header.ID, j.h.Size)
		for k := len(es) - 1; k >= 0; k-- {
			copy(mem[es[k].Off:], es[k].Data)
			j.p.Flush(es[k].Off, uint64(len(es[k].Data)))
		}
		rec.RolledBack++
	}
	sort.Slice(redo, func(a, b int) bool { return redo[a].Header.ID < redo[b].Header.ID })
	for _, inf := range redo {
		_, jb := j.journal(inf.Index)
		es, err := DecodeEntries(jb[HeaderSize:], inf.Header.Count, inf.Header.Used, 0, j.h.Size)
		if err != nil {
			return rec, err
		}
		for _, e := range es {
			copy(mem[e.Off:], e.Data)
			j.p.Flush(e.Off, uint64(len(e.Data)))
		}
		rec.Replayed++
	}
	if len(undo) == 0 && len(redo) == 0 {
		// Every id up to maxID is resolved (replayed, rolled back, stale or
		// torn), so the watermark may pass all of them; the next round
		// writes it. Stopping at w would leave W below ids that no
		// transaction will ever complete again (an undo id, say), and
		// journals would never be recycled.
		j.wWord = w
		j.wDurable.Store(w)
		j.nextID.Store(maxID + 1)
		rec.NextID = maxID + 1
		return rec, nil
	}
	if err := j.p.Fence(); err != nil {
		return rec, err
	}
	// The replayed and rolled-back state is durable; now retire the journals.
	if maxID != w {
		le.PutUint64(mem[pmem.WatermarkOff:], maxID)
		j.p.Flush(pmem.WatermarkOff, 8)
	}
	for _, inf := range undo {
		off, jb := j.journal(inf.Index)
		Header{State: StateFree, ID: inf.Header.ID}.encode(jb)
		j.p.Flush(off, HeaderSize)
	}
	if err := j.p.Fence(); err != nil {
		return rec, err
	}
	j.wWord = maxID
	j.wDurable.Store(maxID)
	j.nextID.Store(maxID + 1)
	rec.NextID = maxID + 1
	return rec, nil
}

// Pool returns the pool the journals belong to.
func (j *Journals) Pool() *pmem.Pool { return j.p }

// Allocator returns the pool's allocator, loaded after recovery.
func (j *Journals) Allocator() *pmem.Allocator { return j.alloc }

// Stats counts committed transactions and persist groups.
type Stats struct {
	Txs    uint64 // committed transactions
	Groups uint64 // commit groups persisted (one fence each)
	Rounds uint64 // all persist rounds: groups plus watermark-only syncs
}

// Stats returns transaction and group counts since Open.
func (j *Journals) Stats() Stats {
	var st Stats
	for k := range j.shards {
		sh := &j.shards[k]
		st.Txs += sh.txs.Load()
		g := sh.groups.Load()
		st.Groups += g
		st.Rounds += g + sh.idle.Load()
	}
	return st
}

// Begin starts a transaction in the given mode on a free journal, waiting up
// to Options.BeginTimeout for one.
func (j *Journals) Begin(mode Mode) (*Tx, error) {
	tx := new(Tx)
	if err := j.BeginInto(tx, mode); err != nil {
		return nil, err
	}
	return tx, nil
}

// BeginInto is Begin into a Tx the caller owns, so that a committer can run
// transaction after transaction without allocating (as a PMDK thread reuses
// its lane). tx must be new (the zero Tx) or finished: Commit or Abort has
// returned; otherwise BeginInto returns ErrTxInUse. Nothing of the journals
// keeps a reference to tx once Commit or Abort has returned.
func (j *Journals) BeginInto(tx *Tx, mode Mode) error {
	if tx.j != nil && !tx.done {
		return ErrTxInUse
	}
	if mode != Redo && mode != Undo {
		return fmt.Errorf("%w: %d", ErrBadMode, mode)
	}
	if err := j.usable(); err != nil {
		return err
	}
	sh := j.shardHere()
	idx, err := j.takeJournal(sh)
	if err != nil {
		return err
	}
	off, jb := j.journal(idx)
	tx.reset(j, sh, idx, off, jb, mode)
	if mode == Redo && j.opts.Coalesce {
		tx.open = true
		sh.open.Add(1)
	}
	if mode == Undo {
		// The undo id is taken now: it binds the entries. Undo transactions
		// never leave a journal behind that recovery could replay, so their
		// id holds no claim: the watermark may pass it at once.
		tx.id = j.nextID.Add(1) - 1
	}
	return nil
}

func (j *Journals) usable() error {
	if j.closed.Load() {
		return ErrClosed
	}
	if j.failed.Load() {
		return ErrFailed
	}
	return nil
}

// shardHere returns the shard of the processor the caller runs on.
func (j *Journals) shardHere() *shard {
	if len(j.shards) == 1 {
		return &j.shards[0]
	}
	if j.opts.ShardOf != nil {
		return &j.shards[j.opts.ShardOf()%len(j.shards)]
	}
	id := sched.ProcID()
	if id < len(j.byProc) {
		return j.byProc[id]
	}
	return &j.shards[id%len(j.shards)]
}

// pop pops a free journal of the shard, if any; when the free list is
// empty it first moves the retiring journals at or below the durable
// watermark w to it.
func (sh *shard) pop(w uint64) (int, bool) {
	sh.freeMu.Lock()
	if len(sh.free) == 0 && len(sh.retiring) > 0 {
		sh.reap(w)
	}
	n := len(sh.free)
	if n == 0 {
		sh.freeMu.Unlock()
		return 0, false
	}
	i := sh.free[n-1]
	sh.free = sh.free[:n-1]
	sh.freeMu.Unlock()
	return i, true
}

// reap moves the retiring journals at or below the durable watermark w to
// the free list; freeMu is held.
func (sh *shard) reap(w uint64) {
	keep := sh.retiring[:0]
	for _, rt := range sh.retiring {
		if rt.id <= w {
			sh.free = append(sh.free, rt.idx)
		} else {
			keep = append(keep, rt)
		}
	}
	sh.retiring = keep
	sh.noteRetiring()
}

// noteRetiring updates wantW after a change of retiring; freeMu is held.
func (sh *shard) noteRetiring() {
	want := int32(len(sh.retiring)) >= sh.lowWater
	if want != sh.wantW.Load() {
		sh.wantW.Store(want)
	}
}

// tryTake pops a free journal, from the shard sh if it has one, else from
// another shard.
func (j *Journals) tryTake(sh *shard) (int, bool) {
	w := j.wDurable.Load()
	if i, ok := sh.pop(w); ok {
		return i, true
	}
	for k := range j.shards {
		if o := &j.shards[k]; o != sh {
			if i, ok := o.pop(w); ok {
				return i, true
			}
		}
	}
	return 0, false
}

// putFree returns journal idx to the free list of shard sh and wakes a
// waiting Begin.
func (j *Journals) putFree(sh *shard, idx int) {
	sh.freeMu.Lock()
	sh.free = append(sh.free, idx)
	sh.freeMu.Unlock()
	// A send on freeSig takes the channel's lock; skip it when nobody
	// waits (a waiter counts itself before it last looks at the lists).
	if j.freeWaiters.Load() > 0 {
		j.signalFree()
	}
}

func (j *Journals) signalFree() {
	select {
	case j.freeSig <- struct{}{}:
	default:
	}
}

func (j *Journals) freeCount() int {
	n := 0
	for k := range j.shards {
		sh := &j.shards[k]
		sh.freeMu.Lock()
		n += len(sh.free)
		sh.freeMu.Unlock()
	}
	return n
}

// slowYields bounds how many times a Begin that finds no free journal
// yields (and syncs) before it sleeps.
const slowYields = 256

func (j *Journals) takeJournal(sh *shard) (int, error) {
	if i, ok := j.tryTake(sh); ok {
		return i, nil
	}
	j.freeWaiters.Add(1)
	defer j.freeWaiters.Add(-1)
	// Journals may be waiting only for the watermark; a sync frees them.
	// Or the watermark waits for a transaction whose committer holds an
	// id and is descheduled (it is sealed, not yet applied): yield for a
	// while, so that it runs, before sleeping on a timer. 64 journals
	// last tens of microseconds at full speed, so this is the common
	// case of running out, and a sleep here idled whole processors.
	for k := 0; k < slowYields; k++ {
		// A full round flushes applied homes and advances the watermark;
		// it fences only when it has something to flush.
		if _, err := j.persist(sh, nil, true); err != nil {
			return 0, err
		}
		if i, ok := j.tryTake(sh); ok {
			return i, nil
		}
		yield()
	}
	t := time.NewTimer(j.opts.BeginTimeout)
	defer t.Stop()
	for {
		if i, ok := j.tryTake(sh); ok {
			// One signal may stand for several freed journals: pass it on.
			if j.freeCount() > 0 {
				j.signalFree()
			}
			return i, nil
		}
		select {
		case <-j.freeSig:
		case <-t.C:
			if i, ok := j.tryTake(sh); ok {
				return i, nil
			}
			return 0, fmt.Errorf("%w (%v, %d journals)", ErrNoFreeJournal, j.opts.BeginTimeout, j.h.Journals)
		case <-time.After(5 * time.Millisecond):
			// Retire journals that the committers left behind meanwhile.
			if _, err := j.persist(sh, nil, true); err != nil {
				return 0, err
			}
		}
	}
}

// persist is one persist round. It flushes, on the calling goroutine, every
// line its one fence is meant to make durable: the journals of the group g
// (linked through pnext; nil for a round without commits) (body and
// header, sealed before), the home ranges of the applied ids it pops, and
// the watermark word if it advances it. After its fence it applies the
// group to the homes and pushes its records on sh's applied stack (the
// next round of sh flushes those homes). The popped ids' homes are then
// durable: their claims are dropped and their journals wait on shard
// sh's retiring list until the durable watermark passes them. The round
// reports whether it flushed anything; a round with nothing to flush
// issues no fence.
//
// A round pops the applied stack of its own shard only, which keeps a
// core's rounds on the lines that core wrote; a full round (Sync, a Begin
// out of journals, or a shard with lowWater journals retiring) pops every
// shard's stack, so that a shard whose committers went elsewhere cannot
// hold the watermark back, and advances the watermark.
//
// Committers flush nothing themselves: SFENCE orders only the flushes of
// the core that issues it, so the goroutine that fences must be the one
// that flushed (see pmem.Domain). That also leaves one write-back wait per
// round, on the leader, and none on the committers.
//
// Rounds may overlap, so a round's group can become durable before an
// earlier group. No transaction depends on one that is not yet
// acknowledged (its effects are applied only after its own round), so
// recovery's rule is unchanged: replay every valid journal above the
// watermark in id order, discard torn ones.
func (j *Journals) persist(sh *shard, g *Tx, full bool) (bool, error) {
	wanted := false
	if !full && sh.wantW.Load() {
		if sh.fullBackoff.Load() > 0 {
			sh.fullBackoff.Add(-1)
		} else {
			full, wanted = true, true
		}
	}
	var recs *appliedRec
	if full {
		for k := range j.shards {
			recs = chainApplied(recs, j.shards[k].applied.Swap(nil))
		}
	} else {
		recs = sh.applied.Swap(nil)
	}
	var w uint64
	if full {
		// After the pops: the claims of the ids popped now still stand,
		// so the value covers only homes made durable by rounds that
		// have ended.
		w = j.advanceW()
	}
	if g == nil && recs == nil && w == 0 {
		return false, nil
	}
	// On the stack for the usual round; a big one grows onto the heap.
	var buf [32]pmem.Range
	rs := buf[:0]
	for tx := g; tx != nil; tx = tx.pnext {
		rs = append(rs, pmem.Range{Off: tx.base, Len: uint64(HeaderSize + tx.used)})
	}
	for a := recs; a != nil; a = a.next {
		for _, h := range a.homes {
			rs = append(rs, pmem.Range{Off: h[0], Len: h[1]})
		}
	}
	if w != 0 {
		rs = append(rs, pmem.Range{Off: pmem.WatermarkOff, Len: 8})
	}
	// Counted before the flushes: see PersistRanges.
	if g != nil {
		sh.groups.Add(1)
	} else {
		sh.idle.Add(1)
	}
	var err error
	if testHookPreFence != nil && recs != nil {
		j.p.FlushRanges(rs)
		testHookPreFence()
		err = j.p.Fence()
	} else {
		err = j.p.PersistRanges(rs)
	}
	if err != nil {
		j.failed.Store(true)
		return true, fmt.Errorf("%w: %v", ErrFailed, err)
	}
	if g != nil {
		// The group is durable: apply it to the homes now and push its
		// records for the next round. (After SFENCE the measured CPU
		// runs loads during the write-backs but not 2 KiB of copies,
		// bench/micro/fence_overlap.c, and the profile puts the wait in
		// apply; applying here rather than in the callers was within
		// noise, and so was applying from a DRAM copy of the entries.) The home stores become visible only after the
		// flushed lines are durable, which is what redo needs: no home
		// changes before its journal is durable.
		var first, last *appliedRec
		n := uint64(0)
		for tx := g; tx != nil; tx = tx.pnext {
			tx.apply()
			a := j.applied(tx)
			if first == nil {
				last = a
			}
			a.next, first = first, a
			n++
		}
		sh.pushApplied(first, last)
		sh.txs.Add(n) // once per group, not a locked add per committer
	}
	if w != 0 {
		j.raiseDurable(w)
	}
	if recs != nil || full {
		j.endRound(sh, recs, full)
	}
	if wanted && sh.wantW.Load() {
		// The watermark could not pass enough of the shard's retiring
		// journals (a claim holder has not finished): the next rounds
		// stay on the shard's own lines rather than scan every claim
		// again. A Begin that runs out still forces a full round.
		sh.fullBackoff.Store(fullBackoffRounds)
	}
	return true, nil
}

// fullBackoffRounds is how many rounds of a shard skip advancing the
// watermark after an advance left half of its journals retiring. Without
// it every round of the shard scanned all claims — lines the other core
// keeps writing — while one claim holder was descheduled: 1.2% of the
// rounds took over 50 µs, and the p99 of 8 uncoalesced committers with
// 1024 journals was 210 µs.
const fullBackoffRounds = 32

// chainApplied puts the stack a on top of the chain recs.
func chainApplied(recs, a *appliedRec) *appliedRec {
	if a == nil {
		return recs
	}
	last := a
	for last.next != nil {
		last = last.next
	}
	last.next = recs
	return a
}

// testHookPreFence, when set by a test, runs in every round that flushes
// applied homes, between its flushes and its fence: the window in which
// another round may advance the watermark.
var testHookPreFence func()

// advanceW computes the highest watermark the durable homes allow and, if
// it is above the word's value, writes it into the word and returns it
// (the round flushes it); otherwise it returns 0.
//
// The value is one below the least of nextID and every claim. nextID is
// read first: an id taken before that read had its claim stored before it
// was taken, so the scan sees the claim (or its removal, once the id's
// homes are durable); an id taken after it is at least the value read. A
// claim is dropped only after the fence of the round that flushed its
// homes, so the value vouches only for homes that rounds which have ended
// made durable, and a crash that tears the round writing it cannot
// persist the word without those homes.
func (j *Journals) advanceW() uint64 {
	j.wMu.Lock()
	defer j.wMu.Unlock()
	m := j.nextID.Load() // first: see the comment above
	w := min(m, j.leastClaim()) - 1
	if w <= j.wWord {
		return 0
	}
	le.PutUint64(j.p.Mem()[pmem.WatermarkOff:], w)
	j.wWord = w
	return w
}

// raiseDurable records, after the fence of the round that wrote w into the
// word, that the watermark w is durable, and wakes a waiting Begin: the
// journals at or below it may be reused. Only the round that wrote a value
// records it; the word may meanwhile hold a larger value that is not yet
// fenced.
func (j *Journals) raiseDurable(w uint64) {
	for {
		old := j.wDurable.Load()
		if w <= old || j.wDurable.CompareAndSwap(old, w) {
			break
		}
	}
	if j.freeWaiters.Load() > 0 {
		j.signalFree()
	}
}

// endRound runs after the fence of a round that flushed the homes of recs:
// it parks their journals on sh's retiring list and drops their claims.
// After a full round it also frees sh's journals that the durable
// watermark has passed, so that the shard's next rounds are not full again
// for the same journals.
func (j *Journals) endRound(sh *shard, recs *appliedRec, full bool) {
	var held *shard // the shard whose freeMu is held
	if full {
		// The ids retired now are above every value the watermark may
		// have reached while their claims stood: reaping first skips them.
		held = sh
		held.freeMu.Lock()
		held.reap(j.wDurable.Load())
	}
	// Each journal retires to its home shard (see home), whichever round
	// flushed its homes. Under that shard's freeMu, each journal joins the
	// retiring list before its claim is dropped (replayable relies on that
	// order), and none can be freed before the loop is done with its
	// record (reap needs freeMu). A round's records are nearly always of
	// one home shard, so the lock is taken once.
	for a := recs; a != nil; {
		next := a.next
		if h := j.home(a.idx); h != held {
			if held != nil {
				held.noteRetiring()
				held.freeMu.Unlock()
			}
			held = h
			held.freeMu.Lock()
		}
		held.retiring = append(held.retiring, retired{idx: a.idx, id: a.id})
		a.next, a.homes = nil, a.homes[:0]
		if c := &j.claims[a.idx]; c.Load() != 0 {
			c.Store(0)
		}
		a = next
	}
	if held != nil {
		held.noteRetiring()
		held.freeMu.Unlock()
	}
}

// home returns the shard that journal idx belongs to: the shard whose
// block of journals it was given at Open. A journal is freed and retired
// to its home shard only, though a Begin may take it from another shard's
// list when its own runs out. Retired to the shard of the round that
// flushed it, as it was at first, journals drifted between the shards as
// committers moved between processors (about half of them in a
// four-committer run), and each core then wrote the claims and records of
// the other's journals, which share cache lines: false sharing on every
// round.
func (j *Journals) home(idx int) *shard { return &j.shards[min(idx/j.per, len(j.shards)-1)] }

// Sync makes every committed transaction's home writes durable and advances
// the watermark over them, releasing their journals. It takes up to two
// persist rounds (homes, then the watermark that vouches for them).
func (j *Journals) Sync() error {
	if j.failed.Load() {
		return ErrFailed
	}
	for round := 0; round < 2; round++ {
		did, err := j.persist(j.shardHere(), nil, true)
		if err != nil {
			return err
		}
		if !did {
			break
		}
	}
	j.reapAll()
	return nil
}

// reapAll moves every shard's retiring journals at or below the durable
// watermark to its free list.
func (j *Journals) reapAll() {
	w := j.wDurable.Load()
	for k := range j.shards {
		sh := &j.shards[k]
		sh.freeMu.Lock()
		sh.reap(w)
		sh.freeMu.Unlock()
	}
	if j.freeWaiters.Load() > 0 {
		j.signalFree()
	}
}

// syncThrough returns once no redo transaction with an id <= target can be
// replayed by recovery any more: the durable watermark has passed target,
// or no journal that recovery could replay holds such an id.
// It runs full persist rounds while they have work and otherwise waits for
// concurrent committers to finish applying.
func (j *Journals) syncThrough(target uint64) error {
	start := time.Now()
	for spins := 0; ; spins++ {
		if j.failed.Load() {
			return ErrFailed
		}
		if j.wDurable.Load() >= target || !j.replayable(target) {
			return nil
		}
		did, err := j.persist(j.shardHere(), nil, true)
		if err != nil {
			return err
		}
		if did {
			continue
		}
		// A committer holds a claim <= target: its round is in flight,
		// or it has not applied yet; that takes microseconds. Waiting for
		// ever would hide a broken invariant as a hang, so give up loudly
		// after a long while.
		if waited := time.Since(start); waited > 10*time.Second {
			return fmt.Errorf("%w: watermark stalled at %d below %d for %v", ErrFailed, j.wDurable.Load(), target, waited)
		}
		time.Sleep(time.Duration(min(spins+1, 50)) * time.Microsecond)
	}
}

// replayable reports whether recovery might still replay a redo journal
// with an id <= target: one that holds a claim at or below target (a lower
// bound: the id may be larger), or a retiring one between the durable
// watermark and target. Claims are scanned first: a journal is appended to
// its retiring list before its claim is dropped, so a journal that moves
// during the scan is seen in one place or the other. An id <= target was
// taken before target was read, so its claim was stored before that.
func (j *Journals) replayable(target uint64) bool {
	if j.leastClaim() <= target {
		return true
	}
	w := j.wDurable.Load()
	for k := range j.shards {
		sh := &j.shards[k]
		sh.freeMu.Lock()
		for _, rt := range sh.retiring {
			if rt.id > w && rt.id <= target {
				sh.freeMu.Unlock()
				return true
			}
		}
		sh.freeMu.Unlock()
	}
	return false
}

// leastClaim returns the least claim of any journal (math.MaxUint64 if
// none holds one).
func (j *Journals) leastClaim() uint64 {
	m := uint64(math.MaxUint64)
	for i := range j.claims {
		if c := j.claims[i].Load(); c != 0 && c < m {
			m = c
		}
	}
	return m
}

// Close syncs and refuses further transactions. It does not close the pool.
// Transactions still open must be finished first; Close does not wait.
func (j *Journals) Close() error {
	if j.closed.Swap(true) {
		return ErrClosed
	}
	if j.failed.Load() {
		return ErrFailed
	}
	return j.Sync()
}

// commitRedo persists a redo transaction, alone or coalesced.
//
// Alone, the committer seals its journal (taking the next commit id) and
// runs its own persist round; rounds of different committers fence in
// parallel.
//
// Coalescing follows the leader/follower scheme of group commit, one group
// per shard: a committer pushes its transaction on its shard's pending
// stack. If a round slot of the shard is free it becomes the leader: it
// takes every pending transaction, seals them (one atomic add for all
// their ids) and persists them with one fence. Otherwise it waits; the
// group it is in grows while the round in flight fences. Neither step
// takes a lock, and no group objects or channels are allocated, so a
// committer that ends up alone pays little over the uncoalesced path.
func (j *Journals) commitRedo(tx *Tx) error {
	if !j.opts.Coalesce {
		j.claim(tx)
		j.seal(tx, j.nextID.Add(1)-1)
		j.claims[tx.idx].Store(tx.id)
		_, err := j.persist(tx.sh, tx, false) // applies tx
		return err
	}
	// The group is that of the processor the commit runs on now: the
	// committers that share it with this one are the ones a yield lets
	// join.
	sh := j.shardHere()
	if j.opts.MaxWait == 0 && sh.npending.Load() == 0 && sh.open.Load() == 1 {
		// Alone on the shard (one committer per processor, say): lead a
		// round of its own at once, without the pending stack and its
		// four locked instructions (+2% at one and two committers, who
		// paid 8% for coalescing against the uncoalesced path).
		// It still yields now and then (see aloneYieldEvery); a commit
		// pushed meanwhile by a committer that just arrived waits for
		// the slot as behind any round.
		if !sh.aloneYield() && j.takeSlot(sh) {
			j.leadRound(sh, false, tx)
			return tx.persistErr
		}
	}
	sh.pushPending(tx, tx, 1)
	return j.await(sh, tx, true)
}

// pushPending pushes the chain first..last (linked through pnext) of n
// commits on the shard's pending stack in one step.
func (sh *shard) pushPending(first, last *Tx, n int32) {
	sh.npending.Add(n)
	for {
		old := sh.pending.Load()
		last.pnext = old
		if sh.pending.CompareAndSwap(old, first) {
			return
		}
	}
}

// yield is sched.Yield, counted in testYields when a test sets it.
func yield() {
	if testYields != nil {
		testYields.Add(1)
	}
	sched.Yield()
}

var testYields *atomic.Int64

// followerYields bounds how many times a waiting committer yields before it
// sleeps on its shard's condition variable.
// (A variable so that a test can make every follower sleep.)
var followerYields = 64

// await returns once tx, pending on shard sh, is persisted, leading
// rounds of that shard while it is still pending and a round slot is free.
//
// With gather, a committer that finds some other coalescing transaction of
// its shard open but not yet pending first yields the processor once, and
// leads only if its commit is still pending when it runs again: the last
// of the shard's committers to arrive leads the group (yieldToJoin). With
// more committers than processors, the committers of the last round sit in
// the run queue, persisted but not yet returned (still open); the yield
// lets one of them return, run its next transaction and lead a round that
// takes this commit too. A committer that takes a slot first and then
// yields (the design until the fifth pass) makes the joiner yield back to
// it: two goroutine switches per group of two instead of one, 6-7% of the
// throughput at four committers on two processors (docs/PMEM.md).
func (j *Journals) await(sh *shard, tx *Tx, gather bool) error {
	joinYield := gather
	for spins := 0; ; spins++ {
		if tx.persisted.Load() != 0 {
			return tx.persistErr
		}
		if joinYield {
			joinYield = false
			if j.yieldToJoin(sh) {
				continue
			}
		}
		if !tx.taken.Load() && j.takeSlot(sh) {
			j.leadRound(sh, gather, nil)
			continue
		}
		if spins < followerYields {
			// A round is usually done within a microsecond or two. The
			// leader is most often another committer of this processor,
			// which must run for the round to end: yield to it through
			// this processor's run queue.
			yield()
			continue
		}
		// Announce the sleep before checking; a leader publishes its
		// results and frees its slot before checking sleepers, so one of
		// the two sees the other and no wake-up is lost.
		sh.condMu.Lock()
		sh.sleepers.Add(1)
		for tx.persisted.Load() == 0 && (tx.taken.Load() || sh.inflight.Load() >= j.maxRounds) {
			sh.cond.Wait()
		}
		sh.sleepers.Add(-1)
		sh.condMu.Unlock()
	}
}

// yieldToJoin yields once, and reports so, when a committer that has just
// pushed its commit on sh should let others run before it tries to lead:
// when some other coalescing transaction of the shard is open but not
// pending (it may join), and on one lone arrival in aloneYieldEvery (see
// there). When every open transaction of the shard is pending, this one
// arrived last and leads them.
//
// Before a join yield it prefetches the commit-id line for writing: the
// committer that runs next usually leads the round, and with the vCPUs far
// apart the line's transfer from the other core (one per round) then
// overlaps that committer's transaction: +6.4% median over 30 pairs taken
// while the round trip was ~400 ns, 1.008 over 36 near pairs.
func (j *Journals) yieldToJoin(sh *shard) bool {
	open := sh.open.Load()
	if sh.npending.Load() < open {
		sched.PrefetchW(unsafe.Pointer(&j.nextID))
		yield()
		return true
	}
	if open > 1 {
		return false
	}
	return sh.aloneYield()
}

// aloneYield counts an arrival that found no other open transaction on
// the shard, yields on one such arrival in aloneYieldEvery, and reports
// whether it yielded.
func (sh *shard) aloneYield() bool {
	n := sh.alone.Load() + 1
	sh.alone.Store(n) // a hint: a lost count only moves the next yield
	if n%aloneYieldEvery != 0 {
		return false
	}
	yield()
	return true
}

// aloneYieldEvery is how often a committer that is the only open
// transaction of its shard yields before it leads its group of one. Go
// does not preempt a running goroutine for 10 ms, and a committer alone on
// its shard never yields otherwise: the other goroutines of its processor
// that have not begun a transaction yet (at the start, or after the
// runtime moved them) wait in the run queue, and the processor fences once
// per transaction until a preemption lets them in. Measured at four
// committers on two processors: 22-55% of the rounds were groups of one
// without it, none with it (0.500 fences/tx), +6.9% (20 rotating rounds);
// every 64th was +3.9%, every 4th +4.2%, and yielding on every 16th
// arrival (paired ones too) +3.2%. A lone committer with nobody waiting
// pays a yield that returns at once: one committer per processor 1.007.
const aloneYieldEvery = 16

// takeSlot claims one of the shard's round slots if one is free.
func (j *Journals) takeSlot(sh *shard) bool {
	for {
		n := sh.inflight.Load()
		if n >= j.maxRounds {
			return false
		}
		if sh.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// leadRound seals and persists every pending journal of the shard, and
// own if it is not nil (a commit that was not pushed), with one fence; the
// caller holds a round slot of the shard, which leadRound frees. With
// gather it first lets the group grow for up to MaxWait.
func (j *Journals) leadRound(sh *shard, gather bool, own *Tx) {
	// Usually the line is here already (see yieldToJoin); a lone
	// committer's round gets its transfer started a little earlier.
	sched.PrefetchW(unsafe.Pointer(&j.nextID))
	if gather && j.opts.MaxWait > 0 {
		j.gather(sh)
	}
	var g *Tx
	if own == nil || sh.npending.Load() != 0 {
		g = sh.pending.Swap(nil)
	}
	var n int32
	for tx := g; tx != nil; tx = tx.pnext {
		if j.maxRounds > 1 {
			// With one slot, a follower cannot lead while the round
			// that took its commit is in flight, and that round sets
			// persisted before it frees the slot: no mark is needed.
			tx.taken.Store(true)
		}
		n++
	}
	if n != 0 {
		sh.npending.Add(-n)
	}
	if own != nil {
		own.pnext, g = g, own
		n++
	}
	var err error
	if g != nil {
		// g takes the least id of the group and claims for all of it.
		j.claim(g)
		// Ids in stack order: a chain pushed at once (CommitAll) keeps
		// its argument order.
		id := j.nextID.Add(uint64(n)) - uint64(n)
		j.claims[g.idx].Store(id)
		for tx := g; tx != nil; tx = tx.pnext {
			j.seal(tx, id)
			id++
		}
		// The round applies the group itself: a committer that is
		// descheduled after its round (four committers on two
		// processors, say) would otherwise hold an id that is durable
		// but not applied, and the watermark, and with it the recycling
		// of every later journal, would wait for it to run again.
		_, err = j.persist(sh, g, false)
	}
	for tx := g; tx != nil; {
		// Once persisted is set the committer may return and reuse its
		// Tx: read the link first.
		next := tx.pnext
		tx.persistErr = err
		tx.persisted.Store(1)
		tx = next
	}
	// A locked instruction, not a release store: the sleepers check
	// below must not pass the stores that publish the results and free
	// the slot (a follower announces its sleep, then looks at both; with
	// a plain store here the leader's load could see no sleeper while
	// the follower still saw the slot taken: a lost wake-up, which hung
	// one benchmark run in about a hundred).
	sh.inflight.Add(^uint32(0))
	if sh.sleepers.Load() > 0 {
		sh.condMu.Lock()
		sh.cond.Broadcast()
		sh.condMu.Unlock()
	}
}

// gather lets the shard's pending group grow for up to MaxWait, or until
// GroupSize commits are pending. It yields the processor in a loop rather
// than sleep on a timer: a timer's wake-up costs tens of microseconds, far
// more than the fence it is meant to share, and yielding is what lets the
// other committers run and join on a machine with few cores.
func (j *Journals) gather(sh *shard) {
	deadline := time.Now().Add(j.opts.MaxWait)
	for {
		n := int(sh.npending.Load())
		if (j.opts.GroupSize > 0 && n >= j.opts.GroupSize) || time.Now().After(deadline) {
			return
		}
		yield()
	}
}

// claim stores a lower bound of the commit id tx is about to take as its
// journal's claim, before the id is taken (see advanceW): every id not yet
// taken is above the durable watermark. The sealer then replaces it with
// the id itself, so that the watermark may pass the ids below.
func (j *Journals) claim(tx *Tx) { j.claims[tx.idx].Store(j.wDurable.Load() + 1) }

// seal gives tx the commit id id and writes its redo header. Ids need not
// follow the order in which groups persist: a transaction's effects are
// applied only after its own round, so none depends on a transaction that
// is not yet durable, and recovery replays whatever is durable in id order.
// Transactions the caller orders (one commits before the other begins)
// get ascending ids, since the later one is sealed after the earlier one's
// round.
func (j *Journals) seal(tx *Tx, id uint64) {
	tx.id = id
	Header{State: StateRedo, ID: tx.id, Count: tx.count, Used: uint32(tx.used), BodyCRC: tx.bodyCRC}.encode(tx.jb)
}

// applied fills the applied-stack record of a redo transaction whose homes
// have been written (not flushed); the caller pushes it, and the next
// persist round of the shard flushes the homes and parks the journal until
// the watermark passes its id.
func (j *Journals) applied(tx *Tx) *appliedRec {
	a := &j.recs[tx.idx]
	a.id, a.idx, a.homes = tx.id, tx.idx, append(a.homes[:0], tx.homes...)
	return a
}

// release returns a journal that holds nothing recovery would act on.
func (j *Journals) release(tx *Tx) { j.putFree(j.home(tx.idx), tx.idx) }
