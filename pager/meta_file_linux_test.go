//go:build linux

package pager

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/farmem/farmem/pmem"
	"github.com/farmem/farmem/pmem/journal"
)

// TestMetaReopen: records survive closing and reopening a pool file, with
// their bits; a removed region is gone; and a full table or heap is
// ErrMetaFull.
func TestMetaReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "meta")
	m, err := OpenMeta(path, MetaOptions{Namespace: "pfx", Size: 1 << 20, Mode: pmem.ModeMsync})
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.create(7, 1000*4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.create(9, 64*4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	// The largest reclaim batch, every page in its own word, in one
	// transaction.
	var scattered []int
	for pg := 0; pg < 1000 && len(scattered) < 1024; pg += 1 {
		scattered = append(scattered, pg)
	}
	if _, err := m.setBits(a, scattered[:16]); err != nil {
		t.Fatal(err)
	}
	big, err := m.create(11, 70000*4096, 4096)
	if err != nil {
		t.Fatal(err)
	}
	var spread []int
	for pg := 0; pg < 70000 && len(spread) < 1024; pg += 64 {
		spread = append(spread, pg)
	}
	if c, err := m.setBits(big, spread); err != nil || !c {
		t.Fatalf("setBits of %d pages in %d words: committed %v, %v", len(spread), len(spread), c, err)
	}
	if c, err := m.setBits(big, spread[:10]); err != nil || c {
		t.Fatalf("setBits of bits already set: committed %v, %v; want no transaction", c, err)
	}
	if err := m.remove(b); err != nil {
		t.Fatal(err)
	}
	if _, err := m.create(13, 1<<40, 4096); !errors.Is(err, ErrMetaFull) {
		t.Fatalf("create of a region whose bitset does not fit: %v, want ErrMetaFull", err)
	}
	if err := m.room(1<<40, 4096); !errors.Is(err, ErrMetaFull) {
		t.Fatalf("room for a region whose bitset does not fit: %v, want ErrMetaFull", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	m, err = OpenMeta(path, MetaOptions{Namespace: "pfx"})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	want := []MetaRegion{
		{ID: 7, Size: 1000 * 4096, PageSize: 4096, Prefix: "pfx", Written: 16},
		{ID: 11, Size: 70000 * 4096, PageSize: 4096, Prefix: "pfx", Written: len(spread)},
	}
	if got := m.Regions(); !slices.Equal(got, want) {
		t.Fatalf("after reopening: %+v, want %+v", got, want)
	}
	if err := m.check(7, 1000*4096, 4096); err != nil {
		t.Fatal(err)
	}
	if err := m.check(7, 999*4096, 4096); !errors.Is(err, ErrMetaMismatch) {
		t.Fatalf("check of another size: %v, want ErrMetaMismatch", err)
	}
	if err := m.check(8, 1, 1); err != nil {
		t.Fatalf("check of a region without a record: %v", err)
	}
	m2, err := OpenMeta(path+"2", MetaOptions{Namespace: "other"})
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	if _, err := os.Stat(path + "2.new"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the creation's temporary file is left: %v", err)
	}
}

// TestOpenMetaBad: a metadata file that is not a whole pager pool is refused
// with a one-line named error, never a panic.
func TestOpenMetaBad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	m, err := OpenMeta(good, MetaOptions{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	mr, err := m.create(5, 4096*10, 4096)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	whole, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign")
	p, err := pmem.Create(foreign, pmem.CreateOptions{Size: 1 << 20, Layout: "farmem", Journals: 4, JournalSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	// A pool of our layout whose root is another object.
	otherRoot := filepath.Join(dir, "other-root")
	{
		p, err := pmem.Create(otherRoot, pmem.CreateOptions{Size: 1 << 20, Layout: MetaLayout, Journals: metaJournals, JournalSize: metaJournalSize})
		if err != nil {
			t.Fatal(err)
		}
		j, _, err := journal.Open(p, journal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := j.Begin(journal.Redo)
		if err != nil {
			t.Fatal(err)
		}
		off, err := j.Allocator().Alloc(tx, 64)
		if err == nil {
			err = p.SetRoot(tx, "kv", off, 64)
		}
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			t.Fatal(err)
		}
		j.Close()
		p.Close()
	}
	flipped := bytes.Clone(whole)
	flipped[mr.rec+20] ^= 0x01 // the record's size
	header := bytes.Clone(whole)
	header[50] ^= 0x01 // the pool's size
	for _, tc := range []struct {
		name string
		data []byte // nil: the file prepared above
		path string
		want error
	}{
		{"garbage", bytes.Repeat([]byte("not a pool "), 1000), "", ErrMetaCorrupt},
		{"empty", []byte{}, "", ErrMetaCorrupt},
		{"truncated", whole[:len(whole)/2], "", ErrMetaCorrupt},
		{"short", whole[:100], "", ErrMetaCorrupt},
		{"header bit flipped", header, "", ErrMetaCorrupt},
		{"record bit flipped", flipped, "", ErrMetaCorrupt},
		{"foreign layout", nil, foreign, ErrMetaLayout},
		{"foreign root", nil, otherRoot, ErrMetaLayout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if tc.data != nil {
				path = filepath.Join(t.TempDir(), "meta")
				if err := os.WriteFile(path, tc.data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := OpenMeta(path, MetaOptions{})
			if err == nil {
				m.Close()
				t.Fatal("OpenMeta accepted it")
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("OpenMeta: %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), path) {
				t.Fatalf("OpenMeta: %q: want one line naming the file", err)
			}
			t.Log(err)
		})
	}
}
