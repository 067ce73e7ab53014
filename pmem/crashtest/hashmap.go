package crashtest

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"

	"github.com/farmem/farmem/pmem"
	"github.com/farmem/farmem/pmem/journal"
)

// hashmap is a persistent chained hash map whose nodes come from the
// allocator. Every put or delete is one transaction (redo, or undo for a
// quarter of them). After a crash the map must equal the model after some
// prefix of the transactions that covers every acknowledged one, and the
// allocator's blocks must be exactly the table plus the reachable nodes.
//
//	node: key u64 | next u64 | vlen u64 | value (vlen bytes)
type hashmap struct {
	table   uint64
	history []map[uint64][]byte // history[i]: the map after i transactions
	acked   int
}

const (
	hmBuckets = 16
	hmKeys    = 40
)

func (h *hashmap) setup(j *journal.Journals, rng *rand.Rand) error {
	tx, err := j.Begin(journal.Redo)
	if err != nil {
		return err
	}
	off, err := j.Allocator().Alloc(tx, hmBuckets*8)
	if err != nil {
		return err
	}
	if err := tx.Write(off, make([]byte, hmBuckets*8)); err != nil {
		return err
	}
	if err := j.Pool().SetRoot(tx, "hashmap", off, hmBuckets*8); err != nil {
		return err
	}
	h.table = off
	h.history = []map[uint64][]byte{{}}
	return tx.Commit()
}

func bucketOf(k uint64) uint64 { return (k * 0x9e3779b97f4a7c15) >> 60 % hmBuckets }

// find returns the node of key k and its predecessor (0 if it is the head).
func (h *hashmap) find(p *pmem.Pool, table, k uint64) (node, prev uint64) {
	n := u64(p, table+bucketOf(k)*8)
	for steps := 0; n != 0 && steps < 1<<16; steps++ {
		if u64(p, n) == k {
			return n, prev
		}
		prev, n = n, u64(p, n+8)
	}
	return 0, 0
}

func (h *hashmap) step(j *journal.Journals, rng *rand.Rand) error {
	p := j.Pool()
	cur := h.history[len(h.history)-1]
	next := maps.Clone(cur)
	k := uint64(rng.IntN(hmKeys))
	tx, err := begin(j, rng, 25)
	if err != nil {
		return err
	}
	del := rng.IntN(10) < 3
	var v []byte
	if del {
		delete(next, k)
	} else {
		v = make([]byte, 1+rng.IntN(200))
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		next[k] = v
	}
	// The new history entry exists before the first write: a crash from here
	// on may or may not include this transaction.
	h.history = append(h.history, next)
	node, prev := h.find(p, h.table, k)
	slot := h.table + bucketOf(k)*8
	unlink := func() error {
		// Unlink node: the predecessor (or the bucket) takes its next.
		at := slot
		if prev != 0 {
			at = prev + 8
		}
		if err := tx.Write(at, put64(nil, u64(p, node+8))); err != nil {
			return err
		}
		return j.Allocator().Free(tx, node)
	}
	if del {
		if node != 0 {
			if err := unlink(); err != nil {
				return err
			}
		}
	} else {
		nn, err := j.Allocator().Alloc(tx, 24+uint64(len(v)))
		if err != nil {
			return err
		}
		head := u64(p, slot)
		if node != 0 {
			if err := unlink(); err != nil {
				return err
			}
			if node == head {
				head = u64(p, node+8)
			}
		}
		rec := put64(put64(put64(nil, k), head), uint64(len(v)))
		if err := tx.Write(nn, append(rec, v...)); err != nil {
			return err
		}
		if err := tx.Write(slot, put64(nil, nn)); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	h.acked = len(h.history) - 1
	return nil
}

// read walks the persistent map and returns its content and the node set.
func readMap(p *pmem.Pool, table uint64) (map[uint64][]byte, []uint64, error) {
	out := map[uint64][]byte{}
	var nodes []uint64
	for b := uint64(0); b < hmBuckets; b++ {
		n := u64(p, table+b*8)
		for steps := 0; n != 0; steps++ {
			if steps > hmKeys || p.Check(n, 24) != nil {
				return nil, nil, fmt.Errorf("%w: bucket %d chain broken at %d", ErrViolation, b, n)
			}
			k, vlen := u64(p, n), u64(p, n+16)
			if p.Check(n+24, vlen) != nil || bucketOf(k) != b {
				return nil, nil, fmt.Errorf("%w: bad node at %d (key %d, vlen %d)", ErrViolation, n, k, vlen)
			}
			if _, dup := out[k]; dup {
				return nil, nil, fmt.Errorf("%w: key %d twice", ErrViolation, k)
			}
			out[k] = bytes.Clone(p.Mem()[n+24 : n+24+vlen])
			nodes = append(nodes, n)
			n = u64(p, n+8)
		}
	}
	return out, nodes, nil
}

func (h *hashmap) checker() func(*journal.Journals) error {
	hist, acked := h.history, h.acked
	return func(j *journal.Journals) error {
		table, err := rootOf(j, "hashmap")
		if err != nil {
			return err
		}
		got, nodes, err := readMap(j.Pool(), table)
		if err != nil {
			return err
		}
		match := -1
		for i := acked; i < len(hist); i++ {
			if maps.EqualFunc(got, hist[i], bytes.Equal) {
				match = i
				break
			}
		}
		if match < 0 {
			return fmt.Errorf("%w: map with %d keys equals no prefix in [%d, %d] of the committed transactions", ErrViolation, len(got), acked, len(hist)-1)
		}
		want := append(nodes, table)
		slices.Sort(want)
		if blocks := j.Allocator().Blocks(); !slices.Equal(blocks, want) {
			return fmt.Errorf("%w: allocator holds %d blocks, map reaches %d (leak or double use)", ErrViolation, len(blocks), len(want))
		}
		return nil
	}
}
