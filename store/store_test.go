package store_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/farmem/farmem/store"
	"github.com/farmem/farmem/store/storetest"
)

func TestMemConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return store.NewMem(4096, 0) })
}

func TestNVMConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := store.OpenNVM(filepath.Join(t.TempDir(), "nvm"), store.NVMOptions{PageSize: 4096, Pages: 64, Create: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestNVMReopenKeepsPages(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nvm")
	opts := store.NVMOptions{PageSize: 4096, Pages: 64, Create: true, RegionID: [16]byte{1, 2, 3}}
	s, err := store.OpenNVM(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d := make([]byte, 4096)
	storetest.Fill(d, 9, 4)
	if err := store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: []store.Page{{ID: 9, Data: d, Sum: store.Checksum(d)}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.Close()

	opts.Create = false
	s, err = store.OpenNVM(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got := make([]byte, 4096)
	if err := store.Do(ctx, s, &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: 9, Data: got}}}); err != nil {
		t.Fatal(err)
	}
	if err := storetest.Check(got, 9, 4); err != nil {
		t.Fatal(err)
	}
	st, err := s.Stat(ctx)
	if err != nil || st.Pages != 1 || st.Capacity != 64 {
		t.Fatalf("Stat: %+v, %v", st, err)
	}
}

func TestNVMRefusesForeignFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "nvm")
	opts := store.NVMOptions{PageSize: 4096, Pages: 64, Create: true, RegionID: [16]byte{1}}
	s, err := store.OpenNVM(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, tc := range []struct {
		name string
		mod  func(o *store.NVMOptions)
		want error
	}{
		{"other region", func(o *store.NVMOptions) { o.RegionID = [16]byte{2} }, store.ErrWrongRegion},
		{"other page count", func(o *store.NVMOptions) { o.Pages = 128 }, store.ErrWrongRegion},
		{"other page size", func(o *store.NVMOptions) { o.PageSize = 8192 }, store.ErrWrongRegion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := opts
			tc.mod(&o)
			if _, err := store.OpenNVM(path, o); !errors.Is(err, tc.want) {
				t.Fatalf("OpenNVM: %v, want %v", err, tc.want)
			}
		})
	}
	t.Run("not a store file", func(t *testing.T) {
		junk := filepath.Join(dir, "junk")
		os.WriteFile(junk, make([]byte, 8192), 0o600)
		if _, err := store.OpenNVM(junk, opts); !errors.Is(err, store.ErrBadFile) {
			t.Fatalf("OpenNVM of zeros: %v", err)
		}
	})
	t.Run("truncated", func(t *testing.T) {
		if err := os.Truncate(path, 10000); err != nil {
			t.Fatal(err)
		}
		if _, err := store.OpenNVM(path, opts); !errors.Is(err, store.ErrBadFile) {
			t.Fatalf("OpenNVM of a truncated file: %v", err)
		}
	})
	t.Run("missing", func(t *testing.T) {
		o := opts
		o.Create = false
		if _, err := store.OpenNVM(filepath.Join(dir, "nope"), o); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("OpenNVM of a missing file: %v", err)
		}
	})
}

func TestNVMTornWriteIsCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nvm")
	s, err := store.OpenNVM(path, store.NVMOptions{PageSize: 4096, Pages: 4, Create: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	d := make([]byte, 4096)
	storetest.Fill(d, 2, 1)
	if err := store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: []store.Page{{ID: 2, Data: d, Sum: store.Checksum(d)}}}); err != nil {
		t.Fatal(err)
	}
	// Damage half of the current copy behind the store's back, as a torn
	// write-back to the medium would leave it (header page, slot page,
	// then two copies per page: page 2's first copy is the fifth page).
	f, _ := os.OpenFile(path, os.O_RDWR, 0)
	f.WriteAt(make([]byte, 2048), nvmCopyAt(4, 2, 0))
	f.Close()
	c := &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: 2, Data: make([]byte, 4096)}}}
	if err := store.Do(ctx, s, c); !errors.Is(err, store.ErrCorrupt) {
		t.Fatalf("read of a torn page: %v", err)
	}
}

// nvmCopyAt is the file offset of copy k of page id in an NVM file of n
// pages of 4 KiB (the layout in store.NVM's doc comment).
func nvmCopyAt(n, id, k int64) int64 {
	slotPages := (n*8 + 4095) / 4096
	return 4096 + slotPages*4096 + (2*id+k)*4096
}

// TestNVMCrashMidWriteKeepsLastVersion is the crash simulation of the NVM
// file: a writer killed after it stored a page's new data but before it
// flipped the slot entry leaves the last completed version readable, on
// every later write of the page (alternating copies), also after reopening.
func TestNVMCrashMidWriteKeepsLastVersion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nvm")
	opts := store.NVMOptions{PageSize: 4096, Pages: 4, Create: true}
	ctx := context.Background()
	d := make([]byte, 4096)
	for v := uint64(1); v <= 4; v++ {
		s, err := store.OpenNVM(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		storetest.Fill(d, 3, v)
		if err := store.Do(ctx, s, &store.Call{Op: store.OpWrite, Pages: []store.Page{{ID: 3, Data: d, Sum: store.Checksum(d)}}}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		// The crash: version v+1 reaches the copy that is not current
		// (v went to copy (v-1)%2), the entry is never written. Half the
		// page is enough to show that the torn copy is never read.
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		next := make([]byte, 4096)
		storetest.Fill(next, 3, v+100)
		if _, err := f.WriteAt(next[:2048], nvmCopyAt(4, 3, int64(v%2))); err != nil {
			t.Fatal(err)
		}
		f.Close()
		s, err = store.OpenNVM(path, opts)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, 4096)
		err = store.Do(ctx, s, &store.Call{Op: store.OpRead, Pages: []store.Page{{ID: 3, Data: got}}})
		s.Close()
		if err != nil {
			t.Fatalf("after a crash in the write of version %d: %v", v+1, err)
		}
		if err := storetest.Check(got, 3, v); err != nil {
			t.Fatalf("after a crash in the write of version %d: %v", v+1, err)
		}
	}
}
