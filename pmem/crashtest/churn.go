package crashtest

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/farmem/farmem/pmem/journal"
)

// churn allocates and frees blocks of 64..384 bytes at random, up to three
// per transaction, in redo and undo transactions alike, keeping them in a
// slot array that is the named root; every tenth step moves the slot array to
// a new block and switches the root to it in the same transaction (the root
// slots alternate). After a crash the slots must equal the model after a
// prefix of the transactions covering every acknowledged one, every block
// must hold the pattern written when it was allocated, and the allocator must
// hold exactly the slot array and the slotted blocks: no leak, no double use.
type churn struct {
	history [][]block // history[i]: the slots after i transactions
	arr     []uint64  // history of the slot array offset
	acked   int
	tag     uint64
}

type block struct {
	off, size, tag uint64
}

const churnSlots = 16

func (c *churn) setup(j *journal.Journals, rng *rand.Rand) error {
	tx, err := j.Begin(journal.Redo)
	if err != nil {
		return err
	}
	off, err := j.Allocator().Alloc(tx, churnSlots*8)
	if err != nil {
		return err
	}
	if err := tx.Write(off, make([]byte, churnSlots*8)); err != nil {
		return err
	}
	if err := j.Pool().SetRoot(tx, "churn", off, churnSlots*8); err != nil {
		return err
	}
	c.history = [][]block{make([]block, churnSlots)}
	c.arr = []uint64{off}
	return tx.Commit()
}

func fillBlock(b block) []byte {
	buf := make([]byte, b.size)
	le.PutUint64(buf, b.tag)
	for i := 8; i < len(buf); i++ {
		buf[i] = byte(b.tag) ^ byte(i)
	}
	return buf
}

func (c *churn) step(j *journal.Journals, rng *rand.Rand) error {
	cur := c.history[len(c.history)-1]
	next := slices.Clone(cur)
	arr := c.arr[len(c.arr)-1]
	tx, err := begin(j, rng, 40)
	if err != nil {
		return err
	}
	a := j.Allocator()
	// Record the in-flight state first; it is completed below before any
	// write that a crash could observe... except the allocator's own, which
	// the checker tolerates by comparing against both ends.
	c.history = append(c.history, next)
	c.arr = append(c.arr, arr)
	if len(c.history)%10 == 0 {
		na, err := a.Alloc(tx, churnSlots*8)
		if err != nil {
			return err
		}
		var buf []byte
		for _, b := range cur {
			buf = put64(buf, b.off)
		}
		if err := tx.Write(na, buf); err != nil {
			return err
		}
		if err := j.Pool().SetRoot(tx, "churn", na, churnSlots*8); err != nil {
			return err
		}
		if err := a.Free(tx, arr); err != nil {
			return err
		}
		c.arr[len(c.arr)-1] = na
	} else {
		for _, i := range rng.Perm(churnSlots)[:1+rng.IntN(3)] {
			if next[i].off != 0 {
				if err := a.Free(tx, next[i].off); err != nil {
					return err
				}
				next[i] = block{}
			}
			if rng.IntN(3) > 0 {
				c.tag++
				b := block{size: uint64(64 * (1 + rng.IntN(6))), tag: c.tag}
				if b.off, err = a.Alloc(tx, b.size); err != nil {
					return err
				}
				if err := tx.Write(b.off, fillBlock(b)); err != nil {
					return err
				}
				next[i] = b
			}
			if err := tx.Write(arr+uint64(i)*8, put64(nil, next[i].off)); err != nil {
				return err
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	c.acked = len(c.history) - 1
	return nil
}

func (c *churn) checker() func(*journal.Journals) error {
	hist, arrs, acked := slices.Clone(c.history), slices.Clone(c.arr), c.acked
	// The in-flight entry may still be filled in by the running step, but
	// the checker runs synchronously inside the fence, so copy it now.
	hist[len(hist)-1] = slices.Clone(hist[len(hist)-1])
	return func(j *journal.Journals) error {
		p := j.Pool()
		arr, err := rootOf(j, "churn")
		if err != nil {
			return err
		}
		got := make([]uint64, churnSlots)
		for i := range got {
			got[i] = u64(p, arr+uint64(i)*8)
		}
		match := -1
		for i := acked; i < len(hist); i++ {
			ok := arrs[i] == arr
			for s := 0; ok && s < churnSlots; s++ {
				ok = got[s] == hist[i][s].off
			}
			if ok {
				match = i
				break
			}
		}
		if match < 0 {
			return fmt.Errorf("%w: slot array at %d (%v) equals no prefix in [%d, %d]", ErrViolation, arr, got, acked, len(hist)-1)
		}
		want := []uint64{arr}
		for _, b := range hist[match] {
			if b.off == 0 {
				continue
			}
			want = append(want, b.off)
			if err := p.Check(b.off, b.size); err != nil {
				return fmt.Errorf("%w: %v", ErrViolation, err)
			}
			if !slices.Equal(p.Mem()[b.off:b.off+b.size], fillBlock(b)) {
				return fmt.Errorf("%w: block %d (tag %d) content damaged", ErrViolation, b.off, b.tag)
			}
			if sz, err := j.Allocator().Size(b.off); err != nil || sz < b.size {
				return fmt.Errorf("%w: block %d not allocated with %d bytes (%d, %v)", ErrViolation, b.off, b.size, sz, err)
			}
		}
		slices.Sort(want)
		if blocks := j.Allocator().Blocks(); !slices.Equal(blocks, want) {
			return fmt.Errorf("%w: allocator holds %v, reachable %v (leak or double use)", ErrViolation, blocks, want)
		}
		return nil
	}
}
