package crashtest

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/farmem/farmem/pmem/journal"
)

// bank moves money between accounts: single redo transfers, single undo
// transfers, and explicit groups of disjoint redo transfers committed with
// one fence (the coalescing path). After a crash the balances must sum to
// the initial total, every acknowledged transfer must be there, and every
// in-flight transfer must be there entirely or not at all.
type bank struct {
	acct     uint64   // offset of the balance array
	base     []uint64 // balances after every acknowledged transfer
	inflight []transfer
}

type transfer struct {
	from, to int
	amount   uint64
}

const (
	bankAccounts = 16
	bankInitial  = 1000
)

func (b *bank) setup(j *journal.Journals, rng *rand.Rand) error {
	tx, err := j.Begin(journal.Redo)
	if err != nil {
		return err
	}
	off, err := j.Allocator().Alloc(tx, bankAccounts*8)
	if err != nil {
		return err
	}
	var buf []byte
	for i := 0; i < bankAccounts; i++ {
		buf = put64(buf, bankInitial)
		b.base = append(b.base, bankInitial)
	}
	if err := tx.Write(off, buf); err != nil {
		return err
	}
	if err := j.Pool().SetRoot(tx, "bank", off, bankAccounts*8); err != nil {
		return err
	}
	b.acct = off
	return tx.Commit()
}

func (b *bank) pick(rng *rand.Rand, used map[int]bool) transfer {
	for {
		f, t := rng.IntN(bankAccounts), rng.IntN(bankAccounts)
		if f == t || used[f] || used[t] {
			continue
		}
		used[f], used[t] = true, true
		return transfer{from: f, to: t, amount: rng.Uint64N(b.base[f] + 1)}
	}
}

// write logs one transfer in tx, reading balances from the pool (which must
// agree with the model: every earlier transfer was acknowledged).
func (b *bank) write(j *journal.Journals, tx *journal.Tx, t transfer) error {
	p := j.Pool()
	fo, to := b.acct+uint64(t.from)*8, b.acct+uint64(t.to)*8
	fb, tb := u64(p, fo), u64(p, to)
	if fb != b.base[t.from] || tb != b.base[t.to] {
		return fmt.Errorf("%w: live balances %d,%d, model %d,%d", ErrViolation, fb, tb, b.base[t.from], b.base[t.to])
	}
	if err := tx.Write(fo, put64(nil, fb-t.amount)); err != nil {
		return err
	}
	return tx.Write(to, put64(nil, tb+t.amount))
}

func (b *bank) step(j *journal.Journals, rng *rand.Rand) error {
	used := map[int]bool{}
	switch r := rng.IntN(10); {
	case r < 6 || r >= 8: // single transfer, redo or undo
		mode := journal.Redo
		if r >= 8 {
			mode = journal.Undo
		}
		t := b.pick(rng, used)
		b.inflight = []transfer{t}
		tx, err := j.Begin(mode)
		if err != nil {
			return err
		}
		if err := b.write(j, tx, t); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	default: // a group of 2..3 disjoint transfers, one fence
		n := 2 + rng.IntN(2)
		var txs []*journal.Tx
		b.inflight = nil
		for i := 0; i < n; i++ {
			t := b.pick(rng, used)
			b.inflight = append(b.inflight, t)
			tx, err := j.Begin(journal.Redo)
			if err != nil {
				return err
			}
			if err := b.write(j, tx, t); err != nil {
				return err
			}
			txs = append(txs, tx)
		}
		if err := j.CommitAll(txs...); err != nil {
			return err
		}
	}
	for _, t := range b.inflight {
		b.base[t.from] -= t.amount
		b.base[t.to] += t.amount
	}
	b.inflight = nil
	return nil
}

func (b *bank) checker() func(*journal.Journals) error {
	base, inflight := slices.Clone(b.base), slices.Clone(b.inflight)
	return func(j *journal.Journals) error {
		off, err := rootOf(j, "bank")
		if err != nil {
			return err
		}
		got := make([]uint64, bankAccounts)
		sum := uint64(0)
		for i := range got {
			got[i] = u64(j.Pool(), off+uint64(i)*8)
			sum += got[i]
		}
		if sum != bankAccounts*bankInitial {
			return fmt.Errorf("%w: balances sum to %d, want %d (%v)", ErrViolation, sum, bankAccounts*bankInitial, got)
		}
		want := slices.Clone(base)
		for _, t := range inflight {
			old := got[t.from] == base[t.from] && got[t.to] == base[t.to]
			done := got[t.from] == base[t.from]-t.amount && got[t.to] == base[t.to]+t.amount
			if !old && !done {
				return fmt.Errorf("%w: in-flight transfer %+v half applied: %d,%d from %d,%d", ErrViolation, t, got[t.from], got[t.to], base[t.from], base[t.to])
			}
			want[t.from], want[t.to] = got[t.from], got[t.to]
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("%w: balances %v, want %v (acknowledged transfers lost?)", ErrViolation, got, want)
		}
		return nil
	}
}
