package farmem_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/farmem/farmem"
	"github.com/farmem/farmem/engine"
	"github.com/farmem/farmem/store"
)

func TestOpenConfigErrors(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMem(4096, 0)
	for _, tc := range []struct {
		name string
		cfg  farmem.Config
		want error
	}{
		{"no size", farmem.Config{Local: 1 << 20, Store: mem}, farmem.ErrConfig},
		{"no budget", farmem.Config{Size: 1 << 20, Store: mem}, farmem.ErrConfig},
		{"no nodes", farmem.Config{Size: 1 << 20, Local: 1 << 20}, farmem.ErrConfig},
		{"tiny budget", farmem.Config{Size: 1 << 20, Local: 4096, Store: mem}, engine.ErrConfig},
		{"too large for the store", farmem.Config{Size: 1 << 20, Local: 1 << 18, Store: store.NewMem(4096, 100)}, farmem.ErrCapacity},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := farmem.Open(ctx, tc.cfg)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open: %v, want %v", err, tc.want)
			}
			if r != nil {
				t.Fatal("Open returned a region with an error")
			}
		})
	}
}

func TestRegionRoundTrip(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMem(4096, 0)
	r, err := farmem.Open(ctx, farmem.Config{Size: 1 << 20, Local: 64 << 10, Store: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	// Write the whole region through io.WriterAt, far beyond the budget.
	want := make([]byte, r.Size())
	for i := range want {
		want[i] = byte(i*7 + i>>12)
	}
	if _, err := r.WriteAt(want, 0); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(io.NewSectionReader(r, 0, r.Size()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("region contents differ")
	}
	if s := r.Stats(); s.Faults == 0 || s.WriteBacks == 0 {
		t.Fatalf("no paging happened: %+v", s)
	}
	v, err := r.Pin(ctx, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(v.Bytes(), want[3*4096:4*4096]) {
		t.Fatal("pinned view differs")
	}
	v.Release()
}

func TestDiscardGivesCapacityBack(t *testing.T) {
	ctx := context.Background()
	mem := store.NewMem(4096, 0)
	r, err := farmem.Open(ctx, farmem.Config{Size: 1 << 20, Local: 64 << 10, Store: mem})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.WriteAt(make([]byte, r.Size()), 0); err != nil {
		t.Fatal(err)
	}
	if err := r.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := mem.Stat(ctx); st.Pages != uint64(r.Size()/4096) {
		t.Fatalf("store holds %d pages, want %d", st.Pages, r.Size()/4096)
	}
	if err := r.Discard(ctx); err != nil {
		t.Fatal(err)
	}
	if st, _ := mem.Stat(ctx); st.Pages != 0 {
		t.Fatalf("store holds %d pages after Discard", st.Pages)
	}
}
