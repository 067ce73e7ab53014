package journal

import (
	"fmt"
	"sync/atomic"

	"github.com/farmem/farmem/pmem"
	"github.com/farmem/farmem/pmem/internal/crc32c"
	"github.com/farmem/farmem/pmem/internal/sched"
)

// Mode is how a transaction logs.
type Mode int

const (
	// Redo buffers new values in the journal; the pool is untouched until
	// commit, when the journal is persisted (the commit point) and then
	// applied. One fence per commit, shared by a whole group with coalescing.
	// Reads inside the transaction see the state before it.
	Redo Mode = iota + 1
	// Undo logs the old value of each range and persists it before the new
	// value is stored in place (log-before-store), so reads inside the
	// transaction see its own writes. Each Write costs a fence; commit costs
	// two (homes, then the journal's release), and abort restores the old
	// values, which is what C5 needs to roll back after a panic.
	Undo
)

func (m Mode) String() string {
	switch m {
	case Redo:
		return "redo"
	case Undo:
		return "undo"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// Tx is a failure-atomic transaction over one micro-journal. A Tx is used by
// one goroutine; it implements pmem.TxWriter. (reset sets every field but
// homeBuf one by one: a field added here must be added there.)
type Tx struct {
	j       *Journals
	sh      *shard // the shard of the processor Begin ran on
	idx     int
	base    uint64
	jb      []byte
	mode    Mode
	id      uint64
	used    int
	count   uint32
	bodyCRC uint32
	homes   [][2]uint64
	homeBuf [2][2]uint64 // backs homes for small transactions
	commit  []func()
	abort   []func()
	err     error
	done    bool

	pnext      *Tx          // next commit on the pending stack / in the group
	open       bool         // counted in shard.open
	taken      atomic.Bool  // a round leader took the commit from the pending list (only with Rounds > 1)
	persisted  sched.Word32 // set to 1 by the round leader once the commit is durable
	persistErr error        // the round's result, written before persisted is set
}

var _ pmem.TxWriter = (*Tx)(nil)

// reset makes tx a fresh transaction on journal idx, keeping its buffers.
func (tx *Tx) reset(j *Journals, sh *shard, idx int, base uint64, jb []byte, mode Mode) {
	homes, commit, abort := tx.homes[:0], tx.commit[:0], tx.abort[:0]
	if cap(homes) == 0 {
		homes = tx.homeBuf[:0]
	}
	clear(tx.commit)
	clear(tx.abort)
	// Field by field: a composite literal was built on the stack and
	// copied whole (~270 bytes, homeBuf included), on the path of every
	// transaction.
	tx.j, tx.sh, tx.idx, tx.base, tx.jb, tx.mode = j, sh, idx, base, jb, mode
	tx.id, tx.used, tx.count, tx.bodyCRC = 0, 0, 0, 0
	tx.homes, tx.commit, tx.abort = homes, commit, abort
	tx.err, tx.done, tx.pnext, tx.open, tx.persistErr = nil, false, nil, false, nil
	tx.taken = atomic.Bool{} // plain stores: the Tx is not shared until Commit
	tx.persisted = sched.Word32{}
}

// ID returns the transaction's commit id (redo, after Commit) or begin id
// (undo).
func (tx *Tx) ID() uint64 { return tx.id }

// Mode returns the transaction's mode.
func (tx *Tx) Mode() Mode { return tx.mode }

// OnCommit registers fn to run after the transaction is durable.
func (tx *Tx) OnCommit(fn func()) { tx.commit = append(tx.commit, fn) }

// OnAbort registers fn to run if the transaction aborts.
func (tx *Tx) OnAbort(fn func()) { tx.abort = append(tx.abort, fn) }

// Free returns the bytes left in the journal for entries; a Write of n bytes
// needs n rounded up to 8, plus 16.
func (tx *Tx) Free() int { return len(tx.jb) - HeaderSize - tx.used }

func (tx *Tx) checkWrite(off uint64, n int) error {
	if !writable(tx.j.h, off, uint64(n)) {
		return fmt.Errorf("%w: [%d,+%d) is beyond the pool or overlaps the header or the journal area", ErrBadWrite, off, n)
	}
	return nil
}

// Write makes b the content of the pool at off if the transaction commits.
// Redo copies b into the journal; undo logs the current content, persists
// the log entry, then stores b in place. If the entry does not fit in the
// journal, Write returns ErrTxTooLarge and nothing is logged or stored; the
// transaction must then be aborted.
func (tx *Tx) Write(off uint64, b []byte) error {
	if tx.done {
		return ErrTxDone
	}
	if tx.err != nil {
		return tx.err
	}
	if len(b) == 0 {
		return nil
	}
	if err := tx.checkWrite(off, len(b)); err != nil {
		return err
	}
	need := entrySize(len(b))
	if need > tx.Free() {
		tx.err = fmt.Errorf("%w: entry of %d bytes, %d of %d journal bytes left", ErrTxTooLarge, len(b), tx.Free(), len(tx.jb))
		return tx.err
	}
	body := tx.jb[HeaderSize+tx.used:]
	mem := tx.j.p.Mem()
	switch tx.mode {
	case Redo:
		putEntry(body, off, b, 0)
	case Undo:
		old := mem[off : off+uint64(len(b))]
		putEntry(body, off, old, undoCRC(tx.id, tx.count, off, old))
		eoff := tx.base + uint64(HeaderSize+tx.used)
		if tx.count == 0 {
			Header{State: StateUndo, ID: tx.id}.encode(tx.jb)
			tx.j.p.Flush(tx.base, HeaderSize)
		}
		tx.j.p.Flush(eoff, uint64(need))
		if err := tx.j.p.Fence(); err != nil {
			tx.j.failed.Store(true)
			tx.err = fmt.Errorf("%w: %v", ErrFailed, err)
			return tx.err
		}
		copy(old, b)
	}
	tx.used += need
	tx.count++
	tx.homes = append(tx.homes, [2]uint64{off, uint64(len(b))})
	return nil
}

// Commit makes the transaction durable and returns once it is. For redo the
// journal is sealed with the next commit id and persisted (alone or with a
// coalesced group), then applied to the pool. For undo the new values are
// persisted in place and the journal is released.
func (tx *Tx) Commit() error {
	if tx.done {
		return ErrTxDone
	}
	defer tx.close()
	if tx.err != nil {
		err := tx.err
		tx.Abort()
		return err
	}
	j := tx.j
	if err := j.usable(); err != nil {
		tx.done = true
		return err
	}
	tx.done = true
	if tx.count == 0 {
		j.release(tx)
		tx.runCommit()
		return nil
	}
	switch tx.mode {
	case Redo:
		tx.prepareRedo()
		if err := j.commitRedo(tx); err != nil {
			return err
		}
		tx.runCommit()
		return nil
	default:
		if err := tx.finishUndo(); err != nil {
			return err
		}
		tx.sh.txs.Add(1)
		tx.runCommit()
		return nil
	}
}

// prepareRedo checksums the journal body before the header is sealed. The
// commit round flushes body and header together (the body checksum tells a
// torn body from a complete one).
func (tx *Tx) prepareRedo() {
	tx.bodyCRC = crc32c.Checksum(tx.jb[HeaderSize : HeaderSize+tx.used])
}

// apply copies the redo entries to their homes. It does not flush them: the
// next persist round flushes the homes of every applied transaction it pops,
// on the goroutine that then fences (see Journals.persist). A coalesced
// transaction is applied by the leader of its round.
func (tx *Tx) apply() {
	mem := tx.j.p.Mem()
	pos := HeaderSize
	for i := uint32(0); i < tx.count; i++ {
		off := le.Uint64(tx.jb[pos:])
		n := int(le.Uint32(tx.jb[pos+8:]))
		copy(mem[off:], tx.jb[pos+EntryHeaderSize:pos+EntryHeaderSize+n])
		pos += entrySize(n)
	}
}

// finishUndo persists the in-place values and then the journal's release.
//
// A redo transaction that committed earlier may have written the same
// ranges, and recovery replays its journal until the watermark passes its
// id. Replay after this undo transaction's release would clobber the new
// values, so the release first waits until every redo transaction sealed so
// far is applied, durable and below the watermark (syncThrough). The crash
// simulator cannot see this (its workloads are single-goroutine); the kill -9
// test with concurrent committers found it.
func (tx *Tx) finishUndo() error {
	j := tx.j
	for _, r := range tx.homes {
		j.p.Flush(r[0], r[1])
	}
	if err := j.p.Fence(); err != nil {
		j.failed.Store(true)
		return fmt.Errorf("%w: %v", ErrFailed, err)
	}
	target := j.nextID.Load() - 1
	if err := j.syncThrough(target); err != nil {
		return err
	}
	Header{State: StateFree, ID: tx.id}.encode(tx.jb)
	j.p.Flush(tx.base, HeaderSize)
	if err := j.p.Fence(); err != nil {
		j.failed.Store(true)
		return fmt.Errorf("%w: %v", ErrFailed, err)
	}
	j.release(tx)
	return nil
}

// close ends the transaction's count in Journals.open, once.
func (tx *Tx) close() {
	if tx.open {
		tx.open = false
		tx.sh.open.Add(-1)
	}
}

func (tx *Tx) runCommit() {
	for _, fn := range tx.commit {
		fn()
	}
}

// Abort ends the transaction without effect. A redo transaction just
// returns its journal; an undo transaction restores the logged old values
// (newest first) and persists them before releasing its journal.
func (tx *Tx) Abort() error {
	if tx.done {
		return ErrTxDone
	}
	defer tx.close()
	tx.done = true
	j := tx.j
	var err error
	if tx.mode == Undo && tx.count > 0 {
		err = tx.rollback()
	} else {
		j.release(tx)
	}
	for _, fn := range tx.abort {
		fn()
	}
	return err
}

func (tx *Tx) rollback() error {
	j := tx.j
	es, derr := DecodeEntries(tx.jb[HeaderSize:], 0, 0, tx.id, j.h.Size)
	if derr != nil || len(es) != int(tx.count) {
		// Our own log failed to decode: a broken invariant, not bad input.
		panic(fmt.Sprintf("journal: invariant: undo log of tx %d decodes to %d of %d entries (%v)", tx.id, len(es), tx.count, derr))
	}
	mem := j.p.Mem()
	for k := len(es) - 1; k >= 0; k-- {
		copy(mem[es[k].Off:], es[k].Data)
	}
	return tx.finishUndo()
}

// CommitAll commits several redo transactions as one explicit group: their
// journals are sealed in argument order and persisted by a single fence,
// exactly as a coalesced group is. It is how a single goroutine drives the
// coalescing path (the crash tests use it). All must be redo transactions of
// these journals, with no earlier error.
func (j *Journals) CommitAll(txs ...*Tx) error {
	for _, tx := range txs {
		if tx.j != j || tx.mode != Redo {
			return fmt.Errorf("%w: CommitAll takes redo transactions of the same journals", ErrBadMode)
		}
		if tx.done {
			return ErrTxDone
		}
		if tx.err != nil {
			return tx.err
		}
	}
	if err := j.usable(); err != nil {
		return err
	}
	defer func() {
		for _, tx := range txs {
			tx.close()
		}
	}()
	var g []*Tx
	for _, tx := range txs {
		tx.done = true
		if tx.count == 0 {
			j.release(tx)
			tx.runCommit()
			continue
		}
		tx.prepareRedo()
		g = append(g, tx)
	}
	if len(g) == 0 {
		return nil
	}
	// Push as one chain, which the round's leader seals in argument order
	// and persists with one fence (when no other goroutine commits, the
	// group is one round). A concurrent coalescing leader of the shard may
	// take the chain into its round; it is then persisted by that round.
	sh := g[0].sh
	for k, tx := range g {
		if k > 0 {
			g[k-1].pnext = tx
		}
	}
	sh.pushPending(g[0], g[len(g)-1], int32(len(g)))
	for _, tx := range g {
		if err := j.await(sh, tx, false); err != nil {
			return err
		}
	}
	for _, tx := range g {
		tx.runCommit()
	}
	return nil
}
