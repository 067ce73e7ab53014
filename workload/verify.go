package workload

import (
	"context"
	"encoding/binary"
	"fmt"
)

// verifyChunk is the size of the reads of a Verify sweep.
const verifyChunk = 256 << 10

// sweep runs f with fresh counters and returns them, leaving the run's
// counters as they were.
func (c *ioCounter) sweep(f func() error) (Stats, error) {
	saved := c.st
	c.st = Stats{}
	err := f()
	got := c.st
	c.st = saved
	return got, err
}

// chunks calls f for consecutive reads of at most verifyChunk bytes (whole
// units of unit bytes) covering [from, to).
func (c *ioCounter) chunks(ctx context.Context, mem Memory, from, to, unit int64, f func(b []byte, off int64)) error {
	per := max(unit, verifyChunk/unit*unit)
	buf := make([]byte, min(per, to-from))
	for off := from; off < to; off += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := buf[:min(int64(len(buf)), to-off)]
		if err := c.readAt(mem, b, off); err != nil {
			return fmt.Errorf("workload: verify read at %d: %w", off, err)
		}
		f(b, off)
	}
	return nil
}

// Verify reads every page of the partition and checks it against the
// shadow. It returns the counters of the sweep alone.
func (w *pages) Verify(ctx context.Context, mem Memory) (Stats, error) {
	if !w.ready {
		return Stats{}, ErrNotSetUp
	}
	ps := int64(w.cfg.PageSize)
	return w.sweep(func() error {
		from := int64(w.first) * ps
		return w.chunks(ctx, mem, from, from+int64(w.n)*ps, ps, func(b []byte, off int64) {
			for p := int64(0); p < int64(len(b)); p += ps {
				page := uint64((off + p) / ps)
				if v := w.ver[page-w.first]; v != unknownVersion {
					w.st.verify("page", newPattern(w.cfg.Seed, page, v), b[p:p+ps], off+p, off+p, int(ps))
				}
			}
		})
	})
}

// Verify reads every table and data page and checks it; unused pages at
// the end of the layout are skipped. A partition checks the data pages of
// its virtual pages and every table.
func (w *pagewalk) Verify(ctx context.Context, mem Memory) (Stats, error) {
	if !w.ready {
		return Stats{}, ErrNotSetUp
	}
	ps := int64(w.cfg.PageSize)
	want := make([]byte, ps)
	return w.sweep(func() error {
		return w.chunks(ctx, mem, 0, int64(w.pt.RegionPages())*ps, ps, func(b []byte, off int64) {
			for p := int64(0); p < int64(len(b)); p += ps {
				page := uint64((off + p) / ps)
				pg := b[p : p+ps]
				if l, idx, ok := w.pt.IsTablePage(page); ok {
					w.pt.FillTable(want, l, idx)
					if bad, first := diff(pg, want); bad > 0 {
						w.st.mismatch(Mismatch{What: "table page", Offset: off + p, Length: int(ps),
							BadOffset: off + p + int64(first), Got: pg[first], Want: want[first], BadBytes: bad, Zero: isZero(pg)})
					}
					continue
				}
				vpn, ok := w.pt.DataPage(page)
				if !ok || vpn < w.first || vpn >= w.first+w.n {
					continue
				}
				if v := w.ver[vpn-w.first]; v != unknownVersion {
					w.st.verify("page", newPattern(w.cfg.Seed, page, v), pg, off+p, off+p, int(ps))
				}
			}
		})
	})
}

// diff counts the bytes where a and b differ and returns the first.
func diff(a, b []byte) (bad, first int) {
	first = -1
	for i := range a {
		if a[i] != b[i] {
			bad++
			if first < 0 {
				first = i
			}
		}
	}
	return bad, first
}

// Verify reads every slot: each occupant must verify against its key's
// version, empty slots must be zero, and every key must be present once.
// Keys not found count as "kv key missing" mismatches (Zero, as they read
// as empty slots or were overwritten).
func (w *kv) Verify(ctx context.Context, mem Memory) (Stats, error) {
	if !w.ready {
		return Stats{}, ErrNotSetUp
	}
	ss := int64(w.slotSize)
	seen := make([]uint64, (w.records+63)/64)
	return w.sweep(func() error {
		err := w.chunks(ctx, mem, 0, int64(w.slots)*ss, ss, func(b []byte, off int64) {
			for p := int64(0); p < int64(len(b)); p += ss {
				slot := b[p : p+ss]
				so := off + p
				id := binary.LittleEndian.Uint64(slot)
				switch {
				case id == 0:
					w.st.verify("kv empty slot", zeroPattern, slot, so, so, int(ss))
				case id-1 < w.records && binary.LittleEndian.Uint64(slot[8:]) == w.keyHash(id-1):
					k := id - 1
					if seen[k/64]&(1<<(k%64)) != 0 {
						w.st.mismatch(Mismatch{What: "kv duplicate key", Offset: so, Length: int(ss), BadOffset: so, BadBytes: KeySize})
					}
					seen[k/64] |= 1 << (k % 64)
					if v := w.ver[k]; v != kvUnknown {
						w.st.verify("kv slot", newPattern(w.cfg.Seed^kvSalt, k, uint32(v)), slot[KeySize:], so+KeySize, so, int(ss))
					}
				default:
					w.st.mismatch(Mismatch{What: "kv slot", Offset: so, Length: int(ss), BadOffset: so, Got: slot[0], BadBytes: KeySize})
				}
			}
		})
		if err != nil {
			return err
		}
		for k := uint64(0); k < w.records; k++ {
			if seen[k/64]&(1<<(k%64)) == 0 {
				w.st.mismatch(Mismatch{What: "kv key missing", Offset: -1, BadOffset: -1, Zero: true})
			}
		}
		return nil
	})
}

// Verify reads the whole region and checks every grain.
func (w *traceWork) Verify(ctx context.Context, mem Memory) (Stats, error) {
	if !w.ready {
		return Stats{}, ErrNotSetUp
	}
	return w.sweep(func() error {
		return w.chunks(ctx, mem, 0, w.cfg.Size, w.grain, func(b []byte, off int64) {
			for p := int64(0); p < int64(len(b)); p += w.grain {
				gi := (off + p) / w.grain
				if v := w.ver[gi]; v != unknownVersion {
					w.st.verify("grain", newPattern(w.cfg.Seed, uint64(gi), v), b[p:p+w.grain], off+p, off+p, int(w.grain))
				}
			}
		})
	})
}
