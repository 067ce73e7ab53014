package workload

import (
	"context"
	"fmt"
)

// populateChunk is how many bytes Setup writes per call when it populates.
const populateChunk = 64 << 10

// pages is the seq, uniform and zipf workloads: each operation reads or
// writes one whole page, chosen sequentially, uniformly or zipf-skewed. The
// shadow model is one uint32 version per page.
type pages struct {
	ioCounter
	cfg   Config
	first uint64   // first page of this partition
	n     uint64   // pages in this partition
	ver   []uint32 // shadow: version of page first+i
	rng   splitmix
	zipf  *Zipf
	perm  Perm
	read  float64
	next  uint64 // seq cursor
	buf   []byte
	ready bool
}

func newPages(c Config) (*pages, error) {
	n := uint64(c.Size / int64(c.PageSize))
	w := &pages{cfg: c, n: n, read: c.mix(0.5).Read, rng: splitmix{c.Seed}}
	if err := w.init(); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *pages) init() error {
	if w.cfg.Name == ZipfName {
		z, err := NewZipf(w.n, w.cfg.Theta)
		if err != nil {
			return err
		}
		w.zipf = z
		w.perm = newPerm(w.n, w.cfg.Seed^0x5c4a_3b1e)
	}
	w.buf = make([]byte, w.cfg.PageSize)
	return nil
}

func (w *pages) Name() string   { return w.cfg.Name }
func (w *pages) Config() Config { return w.cfg }
func (w *pages) Close() error   { return nil }

// ShadowBytes returns the memory of the shadow model.
func (w *pages) ShadowBytes() int64 { return int64(len(w.ver)) * 4 }

func (w *pages) Setup(ctx context.Context, mem Memory) error {
	w.ver = make([]uint32, w.n)
	if !w.cfg.NoPopulate {
		if err := populate(ctx, &w.ioCounter, mem, w.cfg, 0, w.n, func(p uint64) uint32 {
			w.ver[p] = 1
			return 1
		}); err != nil {
			return err
		}
	}
	w.ready = true
	w.ResetStats()
	return nil
}

// populate writes pages [from, to) in large sequential chunks, each page with
// the pattern of version verOf(page) (which also records it in the shadow).
func populate(ctx context.Context, c *ioCounter, mem Memory, cfg Config, from, to uint64, verOf func(uint64) uint32) error {
	ps := uint64(cfg.PageSize)
	per := uint64(populateChunk) / ps
	if per == 0 {
		per = 1
	}
	buf := make([]byte, per*ps)
	for p := from; p < to; {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(per, to-p)
		for i := uint64(0); i < k; i++ {
			page := p + i
			newPattern(cfg.Seed, page, verOf(page)).fill(buf[i*ps:(i+1)*ps], int64(page*ps))
		}
		if err := c.writeAt(mem, buf[:k*ps], int64(p*ps)); err != nil {
			return fmt.Errorf("workload: populating page %d: %w", p, err)
		}
		p += k
	}
	return nil
}

func (w *pages) pick() uint64 {
	switch w.cfg.Name {
	case Seq:
		p := w.next
		w.next++
		if w.next == w.n {
			w.next = 0
		}
		return p
	case Uniform:
		return w.rng.below(w.n)
	}
	r := w.zipf.Rank(w.rng.float())
	if !w.cfg.NoScramble {
		r = w.perm.At(r)
	}
	return r
}

func (w *pages) Step(mem Memory) error {
	if !w.ready {
		return ErrNotSetUp
	}
	i := w.pick()
	page := w.first + i
	off := int64(page) * int64(w.cfg.PageSize)
	if w.rng.float() < w.read {
		if err := w.read1(mem, off); err != nil {
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

func (w *pages) read1(mem Memory, off int64) error { return w.readAt(mem, w.buf, off) }

// Partition splits the pages into n contiguous ranges. A zipf partition
// draws from its own zipf distribution over its own range.
func (w *pages) Partition(n int) ([]Workload, error) {
	if !w.ready {
		return nil, ErrNotSetUp
	}
	if n < 1 || uint64(n) > w.n/2 {
		return nil, fmt.Errorf("%w: %d workers for %d pages", ErrBadConfig, n, w.n)
	}
	out := make([]Workload, n)
	for i := 0; i < n; i++ {
		lo, hi := w.n*uint64(i)/uint64(n), w.n*uint64(i+1)/uint64(n)
		p := &pages{cfg: w.cfg, first: w.first + lo, n: hi - lo, ver: w.ver[lo:hi], read: w.read,
			rng: splitmix{hash2(w.cfg.Seed, 0x9a47, uint64(i))}, ready: true}
		if err := p.init(); err != nil {
			return nil, err
		}
		out[i] = p
	}
	return out, nil
}
