package workload

import (
	"context"
	"encoding/binary"
	"testing"
)

// walkModel walks the table bytes in mem with its own code (no PageTable
// methods but the root offset), returning vpn → data offset as a plain map.
func walkModel(t *testing.T, mem SliceMemory, root int64, pageSize int) (map[uint64]int64, map[int64]int) {
	t.Helper()
	entries := uint64(pageSize / 8)
	model := map[uint64]int64{}
	tables := map[int64]int{} // table page offset → level
	var walk func(off int64, level int, prefix uint64)
	walk = func(off int64, level int, prefix uint64) {
		if _, dup := tables[off]; dup {
			t.Fatalf("table page %d reached twice", off)
		}
		tables[off] = level
		for e := uint64(0); e < entries; e++ {
			v := binary.LittleEndian.Uint64(mem[off+int64(e*8):])
			if v == 0 {
				continue
			}
			child := int64(v &^ uint64(pageSize-1))
			if v&1 == 0 || child+int64(pageSize) > int64(len(mem)) {
				t.Fatalf("level %d entry %d: bad entry %#x", level, e, v)
			}
			if leaf := v&2 != 0; leaf != (level == 1) {
				t.Fatalf("level %d entry %d: leaf bit %v", level, e, leaf)
			}
			vpn := prefix*entries + e
			if level == 1 {
				model[vpn] = child
			} else {
				walk(child, level-1, vpn)
			}
		}
	}
	walk(root, Levels, 0)
	return model, tables
}

// TestPageWalkTranslation builds the table in a slice and compares the
// translation of every vpn, by the workload's layout, with a map built by
// an independent walk of the bytes; it also checks that data pages are
// distinct, disjoint from tables and recognized by IsTablePage and
// DataPage.
func TestPageWalkTranslation(t *testing.T) {
	seed := testSeed(t)
	for _, c := range []Config{
		{Name: PageWalk, Size: 8 << 20, Seed: seed, NoPopulate: true},
		{Name: PageWalk, Size: 3 << 20, Seed: seed, PageSize: 64, NoPopulate: true}, // 8 entries: all four levels fan out
		{Name: PageWalk, Size: 5 * 4096, Seed: seed, NoPopulate: true},
	} {
		mem := make(SliceMemory, c.Size)
		w := setup(t, c, mem)
		pt := w.(Layouter).Layout()
		model, tables := walkModel(t, mem, pt.RootOffset(), pt.PageSize())
		if uint64(len(model)) != pt.VirtualPages() || uint64(len(tables)) != pt.TablePages() {
			t.Fatalf("ps %d: model maps %d vpns through %d tables; layout %d, %d", c.PageSize, len(model), len(tables), pt.VirtualPages(), pt.TablePages())
		}
		e := uint64(pt.EntriesPerTable())
		full := pt.VirtualPages() == e*e*e*e // four levels map no more
		if pt.VirtualPages()+pt.TablePages() > pt.RegionPages() || !full && pt.RegionPages()-pt.VirtualPages()-pt.TablePages() > 4 {
			t.Fatalf("layout wastes pages: %d data + %d tables of %d", pt.VirtualPages(), pt.TablePages(), pt.RegionPages())
		}
		seen := map[int64]bool{}
		ps := int64(pt.PageSize())
		for vpn := uint64(0); vpn < pt.VirtualPages(); vpn++ {
			off, ok := pt.Translate(vpn)
			if !ok || model[vpn] != off {
				t.Fatalf("vpn %d: layout %d, walk %d", vpn, off, model[vpn])
			}
			if seen[off] || tables[off] != 0 {
				t.Fatalf("vpn %d: data page %d repeats or is a table", vpn, off)
			}
			seen[off] = true
			if v, ok := pt.DataPage(uint64(off / ps)); !ok || v != vpn {
				t.Fatalf("DataPage(%d) = %d %v, want %d", off/ps, v, ok, vpn)
			}
		}
		if _, ok := pt.Translate(pt.VirtualPages()); ok {
			t.Fatal("vpn beyond the mapping translates")
		}
		for off, level := range tables {
			l, idx, ok := pt.IsTablePage(uint64(off / ps))
			if !ok || l != level || pt.TableOffset(l, idx) != off {
				t.Fatalf("table page %d (level %d): IsTablePage %d %d %v", off, level, l, idx, ok)
			}
			// DecodeLine finds the children the model found.
			line := mem[off : off+64]
			kids := DecodeLine(line, pt.PageSize(), nil)
			for i, k := range kids {
				if e := binary.LittleEndian.Uint64(line[i*8:]); int64(e&^uint64(ps-1)) != k {
					t.Fatalf("DecodeLine child %d: %d from entry %#x", i, k, e)
				}
			}
		}
		tablesSeen := 0
		for p := uint64(0); p < pt.RegionPages(); p++ {
			if _, _, ok := pt.IsTablePage(p); ok {
				tablesSeen++
			}
		}
		if uint64(tablesSeen) != pt.TablePages() {
			t.Fatalf("IsTablePage is true for %d pages, want %d", tablesSeen, pt.TablePages())
		}
		t.Logf("page size %d: %d virtual pages, %d tables (levels 4..1: %d %d %d %d)", pt.PageSize(), pt.VirtualPages(),
			pt.TablePages(), pt.Tables(4), pt.Tables(3), pt.Tables(2), pt.Tables(1))
	}
}

// TestPageWalkReads checks that an op reads four entries and then the data
// page the model says.
func TestPageWalkReads(t *testing.T) {
	c := Config{Name: PageWalk, Size: 4 << 20, Seed: testSeed(t), Pattern: "strided", Stride: 3}
	slice := make(SliceMemory, c.Size)
	w := setup(t, c, slice)
	pt := w.(Layouter).Layout()
	var calls []int64
	mem := &spyMemory{Memory: slice, calls: &calls}
	for i := uint64(0); i < 10; i++ {
		calls = calls[:0]
		if err := w.Step(mem); err != nil {
			t.Fatal(err)
		}
		vpn := 3 * i
		want, _ := pt.Translate(vpn)
		if len(calls) != Levels+1 || calls[Levels] != want {
			t.Fatalf("op %d: calls %v, want 4 entries then %d", i, calls, want)
		}
		for l := Levels; l >= 1; l-- {
			table, e := pt.Index(vpn, l)
			if calls[Levels-l] != pt.TableOffset(l, table)+int64(e)*EntrySize {
				t.Fatalf("op %d level %d: read %d", i, l, calls[Levels-l])
			}
		}
	}
	res, err := Run(context.Background(), w, mem, RunOptions{MaxOps: 3 * pt.VirtualPages()})
	if err != nil || res.Mismatches != 0 {
		t.Fatal(err, res.Mismatches)
	}
}

type spyMemory struct {
	Memory
	calls *[]int64
}

func (s *spyMemory) ReadAt(p []byte, off int64) (int, error) {
	*s.calls = append(*s.calls, off)
	return s.Memory.ReadAt(p, off)
}
