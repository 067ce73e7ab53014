package resilient

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"

	"github.com/farmem/farmem/store"
)

// fakeMode is how a fake node behaves.
type fakeMode int

const (
	fakeOK     fakeMode = iota
	fakeSilent          // connection open, nothing answers: calls end only with their context
	fakeDown            // calls fail with store.ErrUnavailable
)

// fakePrimary is a multi-node remote over one store.Mem: pages are placed by
// id modulo the node count, each node can be made silent or down, restarted
// empty with a new epoch, and every call is counted.
type fakePrimary struct {
	*store.Mem
	n     int
	mu    sync.Mutex
	modes []fakeMode
	epoch []uint64
	reads atomic.Int64 // read calls that reached an answering node
	// downAfterWrites, when positive, counts write calls down; the one
	// that takes it to zero marks every node down (a failure in the middle
	// of a resync).
	downAfterWrites atomic.Int64
}

func newFakePrimary(pageSize, nodes int) *fakePrimary {
	f := &fakePrimary{Mem: store.NewMem(pageSize, 0), n: nodes, modes: make([]fakeMode, nodes), epoch: make([]uint64, nodes)}
	for i := range f.epoch {
		f.epoch[i] = uint64(100 + i)
	}
	return f
}

func (f *fakePrimary) NodeOf(id store.PageID) int { return int(uint64(id) % uint64(f.n)) }

func (f *fakePrimary) Nodes() []string {
	out := make([]string, f.n)
	for i := range out {
		out[i] = fmt.Sprintf("fake%d", i)
	}
	return out
}

func (f *fakePrimary) Epochs() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]uint64(nil), f.epoch...)
}

func (f *fakePrimary) set(node int, m fakeMode) {
	f.mu.Lock()
	f.modes[node] = m
	f.mu.Unlock()
}

// restart empties node (pages below pages) and gives it a new epoch.
func (f *fakePrimary) restart(node int, pages uint64) {
	var free []store.Page
	for p := uint64(0); p < pages; p++ {
		if f.NodeOf(store.PageID(p)) == node {
			free = append(free, store.Page{ID: store.PageID(p)})
		}
	}
	store.Do(context.Background(), f.Mem, &store.Call{Op: store.OpFree, Pages: free})
	f.mu.Lock()
	f.epoch[node]++
	f.mu.Unlock()
}

// has reports whether the primary holds page id with checksum sum.
func (f *fakePrimary) has(id store.PageID, sum uint32, pageSize int) bool {
	c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: id, Data: make([]byte, pageSize)}}}
	return store.Do(context.Background(), f.Mem, c) == nil && c.Pages[0].Sum == sum
}

func (f *fakePrimary) Submit(ctx context.Context, c *store.Call) {
	store.CheckDone(c)
	if c.Op == store.OpWrite && f.downAfterWrites.Load() > 0 && f.downAfterWrites.Add(-1) == 0 {
		for i := range f.n {
			f.set(i, fakeDown)
		}
	}
	f.mu.Lock()
	modes := make([]fakeMode, len(c.Pages))
	for i, p := range c.Pages {
		modes[i] = f.modes[f.NodeOf(p.ID)]
	}
	f.mu.Unlock()
	ok := &store.Call{Op: c.Op, Done: make(chan *store.Call, 1)}
	var okIdx []int
	silent := false
	for i, m := range modes {
		switch m {
		case fakeOK:
			ok.Pages = append(ok.Pages, c.Pages[i])
			okIdx = append(okIdx, i)
		case fakeDown:
			c.Pages[i].Err = fmt.Errorf("fake: %w", store.ErrUnavailable)
			c.Err = c.Pages[i].Err
		case fakeSilent:
			silent = true
		}
	}
	if len(ok.Pages) > 0 {
		if c.Op == store.OpRead {
			f.reads.Add(1)
		}
		f.Mem.Submit(ctx, ok)
		<-ok.Done
		for j, i := range okIdx {
			c.Pages[i] = ok.Pages[j]
		}
		if ok.Err != nil {
			c.Err = ok.Err
		}
	}
	if !silent {
		c.Done <- c
		return
	}
	go func() {
		<-ctx.Done()
		err := fmt.Errorf("fake: %w", ctx.Err())
		for i, m := range modes {
			if m == fakeSilent {
				c.Pages[i].Err = err
			}
		}
		c.Err = err
		c.Done <- c
	}()
}

// memFile is a logFile in memory that keeps what was synced apart from
// what was only written, for crash simulation (pebble's CrashClone).
type memFile struct {
	mu      sync.Mutex
	cur     []byte
	durable []byte
	writes  []pendingWrite // since the last Sync
	syncs   int
}

type pendingWrite struct {
	off  int64
	data []byte
}

func (m *memFile) ReadAt(b []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if off >= int64(len(m.cur)) {
		return 0, io.EOF
	}
	n := copy(b, m.cur[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) WriteAt(b []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := off + int64(len(b)); end > int64(len(m.cur)) {
		m.cur = append(m.cur, make([]byte, end-int64(len(m.cur)))...)
	}
	copy(m.cur[off:], b)
	m.writes = append(m.writes, pendingWrite{off, append([]byte(nil), b...)})
	return len(b), nil
}

func (m *memFile) Truncate(n int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cur = m.cur[:min(n, int64(len(m.cur)))]
	m.writes = append(m.writes, pendingWrite{off: -1 - n})
	return nil
}

func (m *memFile) Sync() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.durable = append(m.durable[:0], m.cur...)
	m.writes = nil
	m.syncs++
	return nil
}

func (m *memFile) Close() error { return nil }

// crash returns the file a crash now would leave: what was synced, plus a
// random prefix of each unsynced write (torn writes), in order.
func (m *memFile) crash(rng *rand.Rand) *memFile {
	m.mu.Lock()
	defer m.mu.Unlock()
	img := append([]byte(nil), m.durable...)
	for _, w := range m.writes {
		if rng.IntN(2) == 0 {
			break // this write and the later ones never reached the media
		}
		if w.off < 0 {
			img = img[:min(-1-w.off, int64(len(img)))]
			continue
		}
		d := w.data[:rng.IntN(len(w.data)+1)]
		if end := w.off + int64(len(d)); end > int64(len(img)) {
			img = append(img, make([]byte, end-int64(len(img)))...)
		}
		copy(img[w.off:], d)
	}
	return &memFile{cur: img, durable: append([]byte(nil), img...)}
}

func (m *memFile) size() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return int64(len(m.cur))
}
