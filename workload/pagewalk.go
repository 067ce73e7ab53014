package workload

import (
	"context"
	"encoding/binary"
	"fmt"
)

// pagewalk translates virtual pages through the PageTable stored in the
// region — four dependent 8-byte reads, one per level — and then reads (or
// writes) the whole data page. The table is built once by Setup and only
// read afterwards, so every entry read is verified against the layout; data
// pages are verified against a per-vpn uint32 version.
type pagewalk struct {
	ioCounter
	cfg    Config
	pt     *PageTable
	first  uint64   // first vpn of this partition
	n      uint64   // vpns in this partition
	ver    []uint32 // shadow: version of the data page of vpn first+i
	rng    splitmix
	zipf   *Zipf
	perm   Perm
	read   float64
	stride uint64
	cur    uint64 // sequential and strided cursor
	lane   uint64
	ent    [EntrySize]byte
	buf    []byte
	ready  bool
}

func newPageWalk(c Config) (*pagewalk, error) {
	if c.Stride == 0 {
		c.Stride = DefaultStride
	}
	if c.Stride < 1 {
		return nil, fmt.Errorf("%w: pagewalk stride %d (want ≥ 1)", ErrBadConfig, c.Stride)
	}
	pt, err := NewPageTable(c.Size, c.PageSize, c.Seed)
	if err != nil {
		return nil, err
	}
	w := &pagewalk{cfg: c, pt: pt, n: pt.VirtualPages(), read: c.mix(1).Read, rng: splitmix{c.Seed}}
	if err := w.init(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *pagewalk) init() error {
	w.stride = min(uint64(w.cfg.Stride), w.n)
	if w.cfg.Pattern == "zipf" {
		z, err := NewZipf(w.n, w.cfg.Theta)
		if err != nil {
			return err
		}
		w.zipf = z
		w.perm = newPerm(w.n, w.cfg.Seed^0x7a69_7066)
	}
	w.buf = make([]byte, w.cfg.PageSize)
	return nil
}

func (w *pagewalk) Name() string   { return PageWalk }
func (w *pagewalk) Config() Config { return w.cfg }
func (w *pagewalk) Close() error   { return nil }

// Layout returns the page table's layout, for a prefetcher or a test.
func (w *pagewalk) Layout() *PageTable { return w.pt }

// ShadowBytes returns the memory of the shadow model: 4 bytes per data page.
func (w *pagewalk) ShadowBytes() int64 { return int64(len(w.ver)) * 4 }

// Layouter is implemented by the pagewalk workload: it exposes the layout of
// its page table.
type Layouter interface {
	Layout() *PageTable
}

func (w *pagewalk) Setup(ctx context.Context, mem Memory) error {
	pt := w.pt
	for l := Levels; l >= 1; l-- {
		for i := uint64(0); i < pt.Tables(l); i++ {
			if i%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			pt.FillTable(w.buf, l, i)
			if err := w.writeAt(mem, w.buf, pt.TableOffset(l, i)); err != nil {
				return fmt.Errorf("workload: writing page table level %d index %d: %w", l, i, err)
			}
		}
	}
	w.ver = make([]uint32, w.n)
	if !w.cfg.NoPopulate {
		// In region order, so the writes are sequential; table pages are
		// skipped.
		ps := int64(w.cfg.PageSize)
		for p := uint64(0); p < pt.RegionPages(); p++ {
			if p%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			vpn, ok := pt.DataPage(p)
			if !ok {
				continue
			}
			off := int64(p) * ps
			newPattern(w.cfg.Seed, p, 1).fill(w.buf, off)
			if err := w.writeAt(mem, w.buf, off); err != nil {
				return fmt.Errorf("workload: populating data page %d: %w", p, err)
			}
			w.ver[vpn] = 1
		}
	}
	w.ready = true
	w.ResetStats()
	return nil
}

// pick returns the next vpn index within the partition.
func (w *pagewalk) pick() uint64 {
	switch w.cfg.Pattern {
	case "sequential":
		v := w.cur
		if w.cur++; w.cur == w.n {
			w.cur = 0
		}
		return v
	case "strided":
		// Stride through the pages, then start over one page further, so
		// every page is visited once per round.
		v := w.cur
		w.cur += w.stride
		if w.cur >= w.n {
			w.lane = (w.lane + 1) % w.stride
			w.cur = w.lane
		}
		return v
	case "zipf":
		r := w.zipf.Rank(w.rng.float())
		if !w.cfg.NoScramble {
			r = w.perm.At(r)
		}
		return r
	}
	return w.rng.below(w.n)
}

func (w *pagewalk) Step(mem Memory) error {
	if !w.ready {
		return ErrNotSetUp
	}
	i := w.pick()
	vpn := w.first + i
	isRead := w.rng.float() < w.read
	pt := w.pt
	tableOff := pt.RootOffset()
	for l := Levels; l >= 1; l-- {
		table, e := pt.Index(vpn, l)
		eoff := tableOff + int64(e)*EntrySize
		if err := w.readAt(mem, w.ent[:], eoff); err != nil {
			return err
		}
		want := pt.Entry(l, table, e)
		if got := binary.LittleEndian.Uint64(w.ent[:]); got != want {
			var wb [EntrySize]byte
			binary.LittleEndian.PutUint64(wb[:], want)
			m := Mismatch{What: "table entry", Offset: eoff, Length: EntrySize, Zero: isZero(w.ent[:])}
			for j := range wb {
				if wb[j] != w.ent[j] {
					if m.BadBytes == 0 {
						m.BadOffset, m.Got, m.Want = eoff+int64(j), w.ent[j], wb[j]
					}
					m.BadBytes++
				}
			}
			w.st.mismatch(m)
		}
		// Continue with the expected entry: a damaged one is counted, and
		// following it could leave the region.
		tableOff, _, _ = DecodeEntry(want, w.cfg.PageSize)
	}
	off := tableOff
	page := uint64(off / int64(w.cfg.PageSize))
	if isRead {
		if err := w.readAt(mem, w.buf, off); err != nil {
			return err
		}
		if v := w.ver[i]; v != unknownVersion {
			w.st.verify("page", newPattern(w.cfg.Seed, page, v), w.buf, off, off, len(w.buf))
		}
		w.st.Reads++
	} else {
		v := nextVersion(w.ver[i])
		newPattern(w.cfg.Seed, page, v).fill(w.buf, off)
		if err := w.writeAt(mem, w.buf, off); err != nil {
			w.ver[i] = unknownVersion
			return err
		}
		w.ver[i] = v
		w.st.Writes++
	}
	w.st.Ops++
	return nil
}

// Partition splits the virtual pages into n contiguous ranges; the table is
// shared (it is only read).
func (w *pagewalk) Partition(n int) ([]Workload, error) {
	if !w.ready {
		return nil, ErrNotSetUp
	}
	if n < 1 || uint64(n) > w.n/2 {
		return nil, fmt.Errorf("%w: %d workers for %d virtual pages", ErrBadConfig, n, w.n)
	}
	out := make([]Workload, n)
	for i := 0; i < n; i++ {
		lo, hi := w.n*uint64(i)/uint64(n), w.n*uint64(i+1)/uint64(n)
		p := &pagewalk{cfg: w.cfg, pt: w.pt, first: w.first + lo, n: hi - lo, ver: w.ver[lo:hi], read: w.read,
			rng: splitmix{hash2(w.cfg.Seed, 0x9a47, uint64(i))}, ready: true}
		if err := p.init(); err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}
