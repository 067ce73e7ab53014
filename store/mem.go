package store

import (
	"context"
	"fmt"
	"sync"
)

// Mem is a Store in process memory, for tests and as the reference model of
// the contract. It completes every Call inline, inside Submit.
type Mem struct {
	pageSize int
	capacity uint64

	mu     sync.Mutex
	pages  map[PageID]memPage
	closed bool
}

type memPage struct {
	data []byte
	sum  uint32
}

var _ Store = (*Mem)(nil)
var _ Statter = (*Mem)(nil)

// NewMem returns an empty in-memory store. capacity limits the number of
// pages held; 0 means unlimited.
func NewMem(pageSize int, capacity uint64) *Mem {
	return &Mem{pageSize: pageSize, capacity: capacity, pages: make(map[PageID]memPage)}
}

// PageSize implements Store.
func (m *Mem) PageSize() int { return m.pageSize }

// Submit implements Store.
func (m *Mem) Submit(ctx context.Context, c *Call) {
	CheckDone(c)
	c.Err = m.do(ctx, c)
	c.Done <- c
}

func (m *Mem) do(ctx context.Context, c *Call) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	for i := range c.Pages {
		pg := &c.Pages[i]
		if c.Op != OpFree && len(pg.Data) != m.pageSize {
			pg.Err = fmt.Errorf("%w: page %d has %d bytes, want %d", ErrBadPage, pg.ID, len(pg.Data), m.pageSize)
			continue
		}
		switch c.Op {
		case OpRead:
			mp, ok := m.pages[pg.ID]
			if !ok {
				pg.Err = fmt.Errorf("%w: page %d", ErrNotFound, pg.ID)
				continue
			}
			copy(pg.Data, mp.data)
			pg.Sum = mp.sum
			if Checksum(pg.Data) != mp.sum {
				pg.Err = fmt.Errorf("%w: page %d", ErrCorrupt, pg.ID)
			}
		case OpWrite:
			if Checksum(pg.Data) != pg.Sum {
				pg.Err = fmt.Errorf("%w: page %d arrived with a wrong checksum", ErrCorrupt, pg.ID)
				continue
			}
			mp, ok := m.pages[pg.ID]
			if !ok {
				if m.capacity > 0 && uint64(len(m.pages)) >= m.capacity {
					pg.Err = fmt.Errorf("%w: %d pages", ErrFull, m.capacity)
					continue
				}
				mp.data = make([]byte, m.pageSize)
			}
			copy(mp.data, pg.Data)
			mp.sum = pg.Sum
			m.pages[pg.ID] = mp
		case OpFree:
			delete(m.pages, pg.ID)
		default:
			return fmt.Errorf("%w: unknown op %d", ErrBadPage, c.Op)
		}
	}
	return nil
}

// Stat implements Statter.
func (m *Mem) Stat(context.Context) (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Stats{Pages: uint64(len(m.pages)), Capacity: m.capacity}, nil
}

// Corrupt flips one bit of a stored page, for tests of checksum handling. It
// reports whether the page was held.
func (m *Mem) Corrupt(id PageID) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	mp, ok := m.pages[id]
	if ok {
		mp.data[0] ^= 1
	}
	return ok
}

// SetCapacity changes the most pages the store holds (0: unlimited), as an
// operator adding memory would.
func (m *Mem) SetCapacity(pages uint64) {
	m.mu.Lock()
	m.capacity = pages
	m.mu.Unlock()
}

// Close implements Store.
func (m *Mem) Close() error {
	m.mu.Lock()
	m.closed = true
	m.pages = nil
	m.mu.Unlock()
	return nil
}
