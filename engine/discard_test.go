package engine

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/farmem/farmem/store"
)

func TestDiscardFreesEveryPage(t *testing.T) {
	mem := store.NewMem(ps, 0)
	const pages = 300
	e := newEngine(t, mem, pages*ps, 32*ps)
	ctx := context.Background()
	page := make([]byte, ps)
	for p := 0; p < pages; p++ {
		fill(page, uint64(p), 1)
		if _, err := e.WriteAt(ctx, page, int64(p)*ps); err != nil {
			t.Fatal(err)
		}
	}
	if st, _ := mem.Stat(ctx); st.Pages == 0 {
		t.Fatal("nothing reached the store; the test proves nothing")
	}
	v, err := e.Pin(ctx, 5, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Discard(ctx); !errors.Is(err, ErrPinned) {
		t.Fatalf("Discard with a pinned view: %v, want ErrPinned", err)
	}
	v.Release()
	if err := e.Discard(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := mem.Stat(ctx); st.Pages != 0 {
		t.Fatalf("store still holds %d pages after Discard", st.Pages)
	}
	if s := e.Stats(); s.Resident != 0 || s.FreeFrames != s.Frames {
		t.Fatalf("frames still in use after Discard: %+v", s)
	}
	for p := 0; p < pages; p++ {
		if _, err := e.ReadAt(ctx, page, int64(p)*ps); err != nil {
			t.Fatal(err)
		}
		for _, b := range page {
			if b != 0 {
				t.Fatalf("page %d not zero after Discard", p)
			}
		}
	}
	// The region is usable again.
	fill(page, 9, 2)
	if _, err := e.WriteAt(ctx, page, 9*ps); err != nil {
		t.Fatal(err)
	}
	if _, err := e.ReadAt(ctx, page, 9*ps); err != nil {
		t.Fatal(err)
	}
	if err := check(page, 9, 2); err != nil {
		t.Fatal(err)
	}
}

// TestDiscardRacesWriters: a write that happens during Discard is either
// discarded or kept, never half of each, and the engine stays consistent.
func TestDiscardRacesWriters(t *testing.T) {
	mem := store.NewMem(ps, 0)
	const pages = 128
	e := newEngine(t, mem, pages*ps, 16*ps)
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, ps)
			for i := 0; i < 400; i++ {
				p := (i*7 + w*31) % pages
				fill(buf, uint64(p), uint64(w+1))
				if _, err := e.WriteAt(ctx, buf, int64(p)*ps); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for i := 0; i < 20; i++ {
		if err := e.Discard(ctx); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	buf := make([]byte, ps)
	for p := 0; p < pages; p++ {
		if _, err := e.ReadAt(ctx, buf, int64(p)*ps); err != nil {
			t.Fatal(err)
		}
		zero := true
		for _, b := range buf {
			if b != 0 {
				zero = false
				break
			}
		}
		if zero {
			continue
		}
		ok := false
		for w := 1; w <= 4; w++ {
			if check(buf, uint64(p), uint64(w)) == nil {
				ok = true
			}
		}
		if !ok {
			t.Fatalf("page %d holds neither zeros nor one writer's whole page", p)
		}
	}
}
