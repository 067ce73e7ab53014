// Package storetest is a conformance suite for store.Store implementations:
// every backend (in-process, NVM file, memnode client, resilient) runs the
// same checks of the contract written in package store's documentation.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/farmem/farmem/store"
)

// Run checks the Store contract. newStore returns an empty store of at least
// 64 pages; Run closes it.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("WriteReadFree", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		ctx := context.Background()
		ps := s.PageSize()
		pages := make([]store.Page, 8)
		for i := range pages {
			d := make([]byte, ps)
			Fill(d, uint64(i), 1)
			pages[i] = store.Page{ID: store.PageID(i * 3), Data: d, Sum: store.Checksum(d)}
		}
		if err := store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: pages}); err != nil {
			t.Fatalf("write: %v", err)
		}
		rd := make([]store.Page, len(pages))
		for i := range rd {
			rd[i] = store.Page{ID: pages[i].ID, Data: make([]byte, ps)}
		}
		if err := store.Do(ctx, s, &store.Call{Op: store.OpRead, Pages: rd}); err != nil {
			t.Fatalf("read: %v", err)
		}
		for i := range rd {
			if !bytes.Equal(rd[i].Data, pages[i].Data) || rd[i].Sum != pages[i].Sum {
				t.Fatalf("page %d came back different", rd[i].ID)
			}
		}
		if err := store.Do(ctx, s, &store.Call{Op: store.OpFree, Pages: []store.Page{{ID: 0}, {ID: 3}}}); err != nil {
			t.Fatalf("free: %v", err)
		}
		c := &store.Call{Op: store.OpRead, Pages: rd[:3]}
		store.Do(ctx, s, c)
		if c.Err != nil {
			t.Fatalf("read after free: call error %v", c.Err)
		}
		if !errors.Is(c.Pages[0].Err, store.ErrNotFound) || !errors.Is(c.Pages[1].Err, store.ErrNotFound) || c.Pages[2].Err != nil {
			t.Fatalf("read after free: %v, %v, %v", c.Pages[0].Err, c.Pages[1].Err, c.Pages[2].Err)
		}
	})
	t.Run("AbsentPageIsNotFound", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: 5, Data: make([]byte, s.PageSize())}}}
		if err := store.Do(context.Background(), s, c); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("read of a never-written page: %v", err)
		}
	})
	t.Run("WrongChecksumRefused", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		d := make([]byte, s.PageSize())
		c := &store.Call{Op: store.OpWrite, Pages: []store.Page{{ID: 1, Data: d, Sum: 12345}}}
		if err := store.Do(context.Background(), s, c); !errors.Is(err, store.ErrCorrupt) {
			t.Fatalf("write with a wrong checksum: %v", err)
		}
	})
	t.Run("ManyInFlight", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		ctx := context.Background()
		ps := s.PageSize()
		const calls = 32
		var wg sync.WaitGroup
		errs := make(chan error, calls)
		done := make(chan *store.Call, calls)
		for i := range calls {
			d := make([]byte, ps)
			Fill(d, uint64(i), 2)
			c := &store.Call{Op: store.OpWrite, Pages: []store.Page{{ID: store.PageID(i), Data: d, Sum: store.Checksum(d)}}, Done: done}
			s.Submit(ctx, c)
		}
		for range calls {
			if err := (<-done).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
		for i := range calls {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := make([]byte, ps)
				c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: store.PageID(i), Data: d}}}
				if err := store.Do(ctx, s, c); err != nil {
					errs <- err
					return
				}
				if err := Check(d, uint64(i), 2); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	})
	t.Run("CanceledContext", func(t *testing.T) {
		s := newStore(t)
		defer s.Close()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: 1, Data: make([]byte, s.PageSize())}}}
		if err := store.Do(ctx, s, c); !errors.Is(err, context.Canceled) {
			t.Fatalf("call with a canceled context: %v", err)
		}
	})
	t.Run("Closed", func(t *testing.T) {
		s := newStore(t)
		s.Close()
		c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: 1, Data: make([]byte, s.PageSize())}}}
		if err := store.Do(context.Background(), s, c); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("call on a closed store: %v", err)
		}
	})
}

// Fill writes a pattern derived from a page number and a version.
func Fill(b []byte, page, version uint64) {
	x := page*0x9E3779B97F4A7C15 ^ (version + 1)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

// Check reports whether b holds Fill's pattern for page and version.
func Check(b []byte, page, version uint64) error {
	want := make([]byte, len(b))
	Fill(want, page, version)
	if !bytes.Equal(b, want) {
		return errors.New("storetest: page does not hold the expected version")
	}
	return nil
}
