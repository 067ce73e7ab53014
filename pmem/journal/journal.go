package journal

import (
	"fmt"
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

	// nextID is the next commit id, taken with an atomic add: by a
	// coalesced group's leader for the whole group, by an uncoalesced
	// committer for itself, by an undo transaction at Begin.
	nextID atomic.Uint64

	// flushMu guards the in-flight bookkeeping below, which only the start
	// and the end of persist rounds touch; a round does not hold it across
	// its flushes and fence, so rounds of different shards fence at once.
	flushMu  sched.SpinMutex
	wWritten uint64              // watermark value last made durable
	wWord    uint64              // watermark value in the word (flushed, maybe not yet fenced)
	durRing  [durRingSize]bool   // durable ids in (wMem, wMem+durRingSize], by id % durRingSize
	durable  map[uint64]struct{} // durable ids beyond the ring's window (rare)
	wMem     uint64              // every id <= wMem is durable
	retiring []retired           // applied redo journals waiting for the watermark

	maxRounds int32 // round slots per shard

	recs []appliedRec // applied-stack node of each journal

	failed atomic.Bool
	closed atomic.Bool

	groups, rounds sched.Counter
}

// shard is one commit group: its pending stack and leader slot, its
// applied stack, its free list and its committers' counts. With
// coalescing, committers that began on the same processor join the same
// group, and each group has its own leader, so the groups of a two-core
// machine persist on both cores at once, each leader flushing and fencing
// the lines of its own core's committers; a leader hands over to a
// follower on its own processor by yielding (see yield), never through the
// global run queue. Nothing in a shard is needed for correctness: any
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
	// until Commit or Abort returns: the committers a leader may wait a
	// little for.
	open atomic.Int32
	// inflight is the number of the shard's rounds between taking a
	// group and marking it persisted, at most Journals.maxRounds.
	inflight atomic.Int32
	// applied is a lock-free stack of redo ids whose home writes are not
	// yet flushed; the next persist round pops it.
	applied atomic.Pointer[appliedRec]
	txs     atomic.Uint64 // committed transactions

	// condMu/cond let followers sleep until a round of the shard ends;
	// the leader takes condMu only when someone sleeps.
	sleepers atomic.Int32
	condMu   sync.Mutex
	cond     sync.Cond

	// The free list: a stack of journal indices under its own mutex (a
	// channel costs two runtime locks per transaction).
	freeMu sched.SpinMutex
	free   []int
}

// durRingSize bounds the ids above the watermark that markDurable tracks
// without a map. Ids above W that are not yet durable each hold a journal,
// so the window only overflows when undo transactions (whose ids are
// durable at once) run far ahead of a slow redo committer.
const durRingSize = 4096

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
}

func (sh *shard) pushApplied(r *appliedRec) {
	for {
		old := sh.applied.Load()
		r.next = old
		if sh.applied.CompareAndSwap(old, r) {
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
	j := &Journals{p: p, h: h, opts: o, shards: make([]shard, o.Shards), freeSig: make(chan struct{}, 1), durable: map[uint64]struct{}{}, maxRounds: int32(o.Rounds), recs: make([]appliedRec, h.Journals)}
	for k := range j.shards {
		sh := &j.shards[k]
		sh.cond.L = &sh.condMu
		sh.free = make([]int, 0, h.Journals)
	}
	rec, err := j.recover()
	if err != nil {
		return nil, rec, err
	}
	if j.alloc, err = pmem.NewAllocator(p); err != nil {
		return nil, rec, err
	}
	for i := int(h.Journals) - 1; i >= 0; i-- {
		sh := &j.shards[i%len(j.shards)]
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
		j.wMem, j.wWritten, j.wWord = maxID, w, w
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
	j.wMem, j.wWritten, j.wWord = maxID, maxID, maxID
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
	var txs uint64
	for k := range j.shards {
		txs += j.shards[k].txs.Load()
	}
	return Stats{Txs: txs, Groups: j.groups.Load(), Rounds: j.rounds.Load()}
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
		// id counts as durable for the watermark at once.
		tx.id = j.nextID.Add(1) - 1
		j.flushMu.Lock()
		j.markDurable(tx.id)
		j.flushMu.Unlock()
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
	return &j.shards[sched.ProcID()%len(j.shards)]
}

// pop pops a free journal of the shard, if any.
func (sh *shard) pop() (int, bool) {
	sh.freeMu.Lock()
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

// tryTake pops a free journal, from the shard sh if it has one, else from
// another shard.
func (j *Journals) tryTake(sh *shard) (int, bool) {
	if i, ok := sh.pop(); ok {
		return i, true
	}
	for k := range j.shards {
		if o := &j.shards[k]; o != sh {
			if i, ok := o.pop(); ok {
				return i, true
			}
		}
	}
	return 0, false
}

// putFree returns journals to the free list of shard sh and wakes a
// waiting Begin.
func (j *Journals) putFree(sh *shard, idx ...int) {
	sh.freeMu.Lock()
	sh.free = append(sh.free, idx...)
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
		if err := j.syncUseful(); err != nil {
			return 0, err
		}
		if i, ok := j.tryTake(sh); ok {
			return i, nil
		}
		sched.Yield()
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
			if err := j.syncUseful(); err != nil {
				return 0, err
			}
		}
	}
}

// markDurable records that id's effects are durable and advances wMem over
// every durable id; flushMu is held. An id within durRingSize above wMem
// goes into the ring (its slot was cleared when wMem passed the id
// durRingSize below it); a farther one into the map.
func (j *Journals) markDurable(id uint64) {
	if id <= j.wMem {
		return
	}
	if id-j.wMem <= durRingSize {
		j.durRing[id%durRingSize] = true
	} else {
		j.durable[id] = struct{}{}
	}
	for {
		next := j.wMem + 1
		if slot := &j.durRing[next%durRingSize]; *slot {
			*slot = false
		} else if _, ok := j.durable[next]; len(j.durable) > 0 && ok {
			delete(j.durable, next)
		} else {
			return
		}
		j.wMem = next
	}
}

// persist is one persist round. It flushes, on the calling goroutine, every
// line its one fence is meant to make durable: the journals of the group g
// (linked through pnext; nil for a watermark-only round) (body and
// header, sealed before), the home ranges of the applied ids it pops, and
// the watermark word if it advanced. Afterwards the popped ids count as
// durable, and journals at or below the durable watermark return to the
// free list of shard sh. A round pops the applied stacks of every shard
// (all of them: a shard whose committers went elsewhere would otherwise
// hold the watermark back). The caller must not hold flushMu.
//
// Committers flush nothing themselves: SFENCE orders only the flushes of
// the core that issues it, so the goroutine that fences must be the one
// that flushed (see pmem.Domain). That also leaves one write-back wait per
// round, on the leader, and none on the committers.
//
// Rounds may overlap (flushMu is held only to start and to end one), so a
// round's group can become durable before an earlier group. No transaction
// depends on one that is not yet acknowledged (its effects are applied only
// after its own round), so recovery's rule is unchanged: replay every valid
// journal above the watermark in id order, discard torn ones.
//
// The watermark written in a round covers only ids whose homes were made
// durable by a round that had ended before it began, so that a crash that
// tears this round can never persist the watermark without the homes it
// vouches for; and a round that did not write the word itself never takes
// the word's value as durable.
func (j *Journals) persist(sh *shard, g *Tx) error {
	j.flushMu.Lock()
	r := j.beginRound()
	j.flushMu.Unlock()
	bp := rangeBufs.Get().(*[]pmem.Range)
	rs := (*bp)[:0]
	for tx := g; tx != nil; tx = tx.pnext {
		rs = append(rs, pmem.Range{Off: tx.base, Len: uint64(HeaderSize + tx.used)})
	}
	for a := r.recs; a != nil; a = a.next {
		for _, h := range a.homes {
			rs = append(rs, pmem.Range{Off: h[0], Len: h[1]})
		}
	}
	if r.wFlush {
		rs = append(rs, pmem.Range{Off: pmem.WatermarkOff, Len: 8})
	}
	j.p.FlushRanges(rs)
	err := j.fence(g != nil)
	*bp = rs[:0]
	rangeBufs.Put(bp)
	if err != nil {
		return err
	}
	var buf [16]int
	j.flushMu.Lock()
	freed := j.endRound(r, buf[:0])
	j.flushMu.Unlock()
	if len(freed) > 0 {
		j.putFree(sh, freed...)
	}
	return nil
}

// rangeBufs recycles the flush lists of persist rounds (several may run at
// once).
var rangeBufs = sync.Pool{New: func() any { b := make([]pmem.Range, 0, 64); return &b }}

// round is what a persist round must remember across its fence.
type round struct {
	recs   *appliedRec // applied ids whose homes the round flushes and fences
	w      uint64      // watermark value this round wrote into the word
	wFlush bool        // the round wrote the watermark word and must flush it
}

// beginRound pops the applied ids of every shard into one list and, if the
// watermark advanced, writes the watermark word (persist flushes it).
// flushMu is held.
func (j *Journals) beginRound() round {
	var recs *appliedRec
	for k := range j.shards {
		a := j.shards[k].applied.Swap(nil)
		if a == nil {
			continue
		}
		last := a
		for last.next != nil {
			last = last.next
		}
		last.next, recs = recs, a
	}
	if j.wMem > j.wWord {
		le.PutUint64(j.p.Mem()[pmem.WatermarkOff:], j.wMem)
		j.wWord = j.wMem
		return round{recs: recs, w: j.wMem, wFlush: true}
	}
	return round{recs: recs}
}

// fence issues a round's one fence and counts it. The counts come after
// the fence: an atomic add is a locked instruction, which waits for the
// core's outstanding write-backs as the fence does.
func (j *Journals) fence(group bool) error {
	if err := j.p.Fence(); err != nil {
		j.failed.Store(true)
		return fmt.Errorf("%w: %v", ErrFailed, err)
	}
	j.rounds.Add(1)
	if group {
		j.groups.Add(1)
	}
	return nil
}

// endRound runs after the round's fence returned: the watermark it carried
// is durable, so are the homes of the ids it popped, and journals at or below
// the durable watermark are appended to freed, for the caller to return to
// the free list once it has released flushMu. flushMu is held.
func (j *Journals) endRound(r round, freed []int) []int {
	for a := r.recs; a != nil; {
		next := a.next
		j.markDurable(a.id)
		j.retiring = append(j.retiring, retired{idx: a.idx, id: a.id})
		a.next, a.homes = nil, a.homes[:0]
		a = next
	}
	// Only a durable watermark frees journals: the ids just popped are
	// above wMem, hence above wWritten.
	if r.w <= j.wWritten {
		return freed
	}
	j.wWritten = r.w
	keep := j.retiring[:0]
	for _, rt := range j.retiring {
		if rt.id <= j.wWritten {
			freed = append(freed, rt.idx)
		} else {
			keep = append(keep, rt)
		}
	}
	j.retiring = keep
	return freed
}

// Sync makes every committed transaction's home writes durable and advances
// the watermark over them, releasing their journals. It takes up to two
// persist rounds (homes, then the watermark that vouches for them).
func (j *Journals) Sync() error {
	if j.failed.Load() {
		return ErrFailed
	}
	if j.idle() {
		return nil
	}
	for round := 0; round < 2; round++ {
		if err := j.persist(j.shardHere(), nil); err != nil {
			return err
		}
		if j.idle() {
			break
		}
	}
	return nil
}

// syncThrough returns once no redo transaction with an id <= target can be
// replayed by recovery any more: all of them are applied and durable
// (wMem >= target) and none of their journals waits for the watermark. It
// runs persist rounds while there is work for them and otherwise waits for
// concurrent committers to finish applying.
func (j *Journals) syncThrough(target uint64) error {
	start := time.Now()
	for spins := 0; ; spins++ {
		if j.failed.Load() {
			return ErrFailed
		}
		j.flushMu.Lock()
		done := j.wMem >= target
		waiting := false
		for _, r := range j.retiring {
			if r.id <= target {
				done, waiting = false, true
			}
		}
		work := waiting || j.anyApplied()
		j.flushMu.Unlock()
		if done {
			return nil
		}
		if work {
			if err := j.persist(j.shardHere(), nil); err != nil {
				return err
			}
			continue
		}
		// A committer holds an id <= target but has not applied yet; that
		// takes microseconds. Waiting for ever would hide a broken
		// invariant as a hang, so give up loudly after a long while.
		if waited := time.Since(start); waited > 10*time.Second {
			return fmt.Errorf("%w: watermark stalled at %d below %d for %v", ErrFailed, j.wMem, target, waited)
		}
		time.Sleep(time.Duration(min(spins+1, 50)) * time.Microsecond)
	}
}

// syncUseful runs Sync if a persist round could free a journal now: some
// applied homes wait for a flush, or the watermark can pass retiring
// journals. Otherwise the watermark waits for a transaction that is not
// yet applied, and a round would only cost a fence (under load, Begins
// that ran out of journals fenced more than the commits did).
func (j *Journals) syncUseful() error {
	j.flushMu.Lock()
	useful := j.anyApplied() || (len(j.retiring) > 0 && j.wMem > j.wWritten)
	j.flushMu.Unlock()
	if !useful {
		return nil
	}
	return j.Sync()
}

// anyApplied reports whether some shard has applied ids waiting for a
// round.
func (j *Journals) anyApplied() bool {
	for k := range j.shards {
		if j.shards[k].applied.Load() != nil {
			return true
		}
	}
	return false
}

// idle reports whether there is nothing for Sync to do: no applied id
// waiting for a fence and no journal waiting for the watermark (the
// watermark itself may lag harmlessly once no journal waits for it).
func (j *Journals) idle() bool {
	j.flushMu.Lock()
	defer j.flushMu.Unlock()
	return len(j.retiring) == 0 && !j.anyApplied()
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
		j.seal(tx, j.nextID.Add(1)-1)
		if err := j.persist(tx.sh, tx); err != nil {
			return err
		}
		tx.apply()
		j.retire(tx.sh, tx)
		return nil
	}
	// The group is that of the processor the commit runs on now: the
	// committers that share it with this one are the ones a yield lets
	// join.
	sh := j.shardHere()
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

// followerYields bounds how many times a waiting committer yields before it
// sleeps on its shard's condition variable.
const followerYields = 64

// await returns once tx, pending on shard sh, is persisted, leading
// rounds of that shard while it is still pending and a round slot is free.
func (j *Journals) await(sh *shard, tx *Tx, gather bool) error {
	for spins := 0; ; spins++ {
		if tx.persisted.Load() {
			return tx.persistErr
		}
		if !tx.taken.Load() && j.takeSlot(sh) {
			j.leadRound(sh, gather)
			continue
		}
		if spins < followerYields {
			// A round is usually done within a microsecond or two. The
			// leader is most often another committer of this processor,
			// which must run for the round to end: yield to it through
			// this processor's run queue.
			sched.Yield()
			continue
		}
		// Announce the sleep before checking; a leader publishes its
		// results and frees its slot before checking sleepers, so one of
		// the two sees the other and no wake-up is lost.
		sh.condMu.Lock()
		sh.sleepers.Add(1)
		for !tx.persisted.Load() && (tx.taken.Load() || sh.inflight.Load() >= j.maxRounds) {
			sh.cond.Wait()
		}
		sh.sleepers.Add(-1)
		sh.condMu.Unlock()
	}
}

// joinYields bounds how many times a coalescing leader yields the processor
// for open redo transactions of its shard to join its group (see
// leadRound). Measured on two cores with four committers (docs/PMEM.md):
// without it fences per transaction ranged 0.6-1.004 depending on
// scheduling; one yield gave 0.37-0.60, and more yields only cost
// throughput.
const joinYields = 1

// joinable reports whether some coalescing redo transaction is open but
// not pending: one that a yield may let join. The counts are summed over
// the shards, since a transaction may begin on one processor and commit
// on another.
func (j *Journals) joinable() bool {
	var open, pending int32
	for k := range j.shards {
		open += j.shards[k].open.Load()
		pending += j.shards[k].npending.Load()
	}
	return pending < open
}

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

// leadRound seals and persists every pending journal of the shard with one
// fence; the caller holds a round slot of the shard, which leadRound
// frees. With gather it first lets the group grow for up to MaxWait.
func (j *Journals) leadRound(sh *shard, gather bool) {
	if gather && j.opts.MaxWait > 0 {
		j.gather(sh)
	}
	if gather {
		// Redo transactions that are open but not yet pending are
		// usually a few hundred nanoseconds from joining, or they are
		// committers whose previous commit this goroutine persisted and
		// that have not run since (with more committers than processors
		// they wait in the run queue). Yielding lets them join; without
		// it a leader that runs on persists alone, round after round, and
		// coalescing never happens. A transaction left open for long
		// costs each round one yield, nothing more.
		for k := 0; k < joinYields && j.joinable(); k++ {
			sched.Yield()
		}
	}
	g := sh.pending.Swap(nil)
	var n int32
	for tx := g; tx != nil; tx = tx.pnext {
		tx.taken.Store(true)
		n++
	}
	var err error
	if g != nil {
		sh.npending.Add(-n)
		// Ids in stack order: a chain pushed at once (CommitAll) keeps
		// its argument order.
		id := j.nextID.Add(uint64(n)) - uint64(n)
		for tx := g; tx != nil; tx = tx.pnext {
			j.seal(tx, id)
			id++
		}
		err = j.persist(sh, g)
	}
	if err == nil {
		// The leader applies the group itself: a committer that is
		// descheduled after its round (four committers on two
		// processors, say) would otherwise hold an id that is durable
		// but not applied, and the watermark, and with it the recycling
		// of every later journal, would wait for it to run again.
		for tx := g; tx != nil; tx = tx.pnext {
			tx.apply()
			j.retire(sh, tx)
		}
	}
	for tx := g; tx != nil; {
		// Once persisted is set the committer may return and reuse its
		// Tx: read the link first.
		next := tx.pnext
		tx.persistErr = err
		tx.persisted.Store(true)
		tx = next
	}
	sh.inflight.Add(-1)
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
		sched.Yield()
	}
}

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

// retire records a redo transaction whose homes have been written (not
// flushed); the next persist round flushes them, and parks its journal until
// the watermark passes its id.
func (j *Journals) retire(sh *shard, tx *Tx) {
	a := &j.recs[tx.idx]
	a.id, a.idx, a.homes = tx.id, tx.idx, append(a.homes[:0], tx.homes...)
	sh.pushApplied(a)
}

// release returns a journal that holds nothing recovery would act on.
func (j *Journals) release(tx *Tx) { j.putFree(tx.sh, tx.idx) }
