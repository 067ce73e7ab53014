package workload

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Levels is the depth of pagewalk's radix page table, as on x86-64.
const Levels = 4

// Bits of a page-table entry below the page-aligned child offset.
const (
	// EntryPresent marks an entry that maps a child.
	EntryPresent = 1 << 0
	// EntryLeaf marks a level-1 entry, whose child is a data page.
	EntryLeaf = 1 << 1
	// EntrySize is the size of an entry in bytes.
	EntrySize = 8
)

// PageTable is the layout of pagewalk's four-level radix page table, shaped
// like x86-64's: a table is one page of PageSize/8 little-endian 8-byte
// entries (512 for 4 KiB pages), a virtual page number is split into four
// indices of log2(entries) bits, and each entry holds the region byte offset
// of the next level's table or, at level 1, of the data page.
//
//	virtual page number (vpn), 4 KiB pages:
//	 +--------+--------+--------+--------+
//	 | 9 bits | 9 bits | 9 bits | 9 bits |
//	 +--------+--------+--------+--------+
//	  level 4  level 3  level 2  level 1     index into that level's table
//
//	entry (uint64 little-endian):
//	 63                               log2(PageSize)       2   1   0
//	 +----------------------------------+-----------------+---+---+
//	 | region byte offset of the child (page aligned)  | 0 | L | P |
//	 +----------------------------------+-----------------+---+---+
//	   P = EntryPresent, L = EntryLeaf (the child is a data page);
//	   an entry past the last mapped child is all zero.
//
// The table maps VirtualPages consecutive virtual pages, as many as fit in
// the region beside their tables. Tables and data pages are numbered
// logically — the root first, then the level-3, level-2 and level-1 tables in
// index order, then the data pages in vpn order — and a keyed permutation
// (Perm) scatters the logical pages over the region's pages. So consecutive
// virtual pages live on unrelated region pages, and one 64-byte line of a
// level-1 table names eight scattered data pages: the situation
// page-table-directed prefetch (C2) exploits. IsTablePage and DecodeLine let
// a prefetcher recognize table pages and find the pages a line references.
//
// A PageTable is immutable and safe for concurrent use.
type PageTable struct {
	pageSize int64
	shift    uint   // log2(entries per table)
	entries  uint64 // entries per table
	pages    uint64 // region pages
	virt     uint64 // mapped virtual pages = data pages
	count    [Levels + 1]uint64
	first    [Levels + 1]uint64 // logical index of the first table of a level
	tables   uint64
	perm     Perm
}

// NewPageTable computes the layout of a page table over a region of size
// bytes (rounded down to pages) with the given page size and seed. It
// returns ErrBadConfig if the page size is not a power of two from 64 to
// 1 MiB or the region has fewer than Levels+1 pages.
func NewPageTable(size int64, pageSize int, seed uint64) (*PageTable, error) {
	if pageSize < 64 || pageSize > 1<<20 || pageSize&(pageSize-1) != 0 {
		return nil, fmt.Errorf("%w: page size %d (want a power of two from 64 to 1 MiB)", ErrBadConfig, pageSize)
	}
	if size < 0 || size/int64(pageSize) < Levels+1 {
		return nil, fmt.Errorf("%w: pagewalk needs at least %d pages, region has %d bytes", ErrBadConfig, Levels+1, size)
	}
	t := &PageTable{pageSize: int64(pageSize), entries: uint64(pageSize / EntrySize)}
	t.shift = uint(bits.TrailingZeros64(t.entries))
	t.pages = uint64(size / int64(pageSize))
	// The largest V whose tables fit beside it; V + tables(V) is monotone.
	lo, hi := uint64(1), t.pages
	if Levels*t.shift < 63 {
		hi = min(hi, uint64(1)<<(Levels*t.shift))
	}
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if mid+t.tablesFor(mid) <= t.pages {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	t.virt = lo
	logical := uint64(0)
	for l := Levels; l >= 1; l-- {
		t.count[l] = t.levelCount(l, t.virt)
		t.first[l] = logical
		logical += t.count[l]
	}
	t.tables = logical
	t.perm = newPerm(t.pages, seed^0x7061_6765)
	return t, nil
}

// levelCount returns how many level-l tables map v virtual pages.
func (t *PageTable) levelCount(l int, v uint64) uint64 {
	sh := uint(l) * t.shift
	if sh >= 64 {
		return 1
	}
	span := uint64(1) << sh
	return (v + span - 1) / span
}

func (t *PageTable) tablesFor(v uint64) uint64 {
	var n uint64
	for l := 1; l <= Levels; l++ {
		n += t.levelCount(l, v)
	}
	return n
}

// PageSize returns the size of a table or data page.
func (t *PageTable) PageSize() int { return int(t.pageSize) }

// EntriesPerTable returns PageSize/8.
func (t *PageTable) EntriesPerTable() int { return int(t.entries) }

// VirtualPages returns the number of mapped virtual pages (vpn 0 to
// VirtualPages-1), which is also the number of data pages.
func (t *PageTable) VirtualPages() uint64 { return t.virt }

// TablePages returns the number of table pages; Tables(l) those of level l.
func (t *PageTable) TablePages() uint64 { return t.tables }

// Tables returns the number of tables of level l (1 to Levels).
func (t *PageTable) Tables(l int) uint64 {
	if l < 1 || l > Levels {
		return 0
	}
	return t.count[l]
}

// RegionPages returns the number of pages of the region.
func (t *PageTable) RegionPages() uint64 { return t.pages }

func (t *PageTable) offsetOfLogical(x uint64) int64 {
	return int64(t.perm.At(x)) * t.pageSize
}

// RootOffset returns the region byte offset of the level-4 table.
func (t *PageTable) RootOffset() int64 { return t.offsetOfLogical(0) }

// TableOffset returns the region byte offset of table index of level l, or
// -1 if there is no such table.
func (t *PageTable) TableOffset(l int, index uint64) int64 {
	if l < 1 || l > Levels || index >= t.count[l] {
		return -1
	}
	return t.offsetOfLogical(t.first[l] + index)
}

// Index returns the entry index that vpn uses in its level-l table, and the
// index of that table among level l's tables.
func (t *PageTable) Index(vpn uint64, l int) (table, entry uint64) {
	table = vpn >> (uint(l) * t.shift)
	entry = (vpn >> (uint(l-1) * t.shift)) & (t.entries - 1)
	return table, entry
}

// Entry returns the value entry e of table index of level l holds.
func (t *PageTable) Entry(l int, index, e uint64) uint64 {
	if l < 1 || l > Levels || index >= t.count[l] || e >= t.entries {
		return 0
	}
	child := index*t.entries + e
	if l == 1 {
		if child >= t.virt {
			return 0
		}
		return uint64(t.offsetOfLogical(t.tables+child)) | EntryPresent | EntryLeaf
	}
	if child >= t.count[l-1] {
		return 0
	}
	return uint64(t.offsetOfLogical(t.first[l-1]+child)) | EntryPresent
}

// FillTable writes the page of table index of level l into b, which must be
// PageSize bytes.
func (t *PageTable) FillTable(b []byte, l int, index uint64) {
	for e := uint64(0); e < t.entries; e++ {
		binary.LittleEndian.PutUint64(b[e*EntrySize:], t.Entry(l, index, e))
	}
}

// Translate returns the region byte offset of the data page that maps vpn,
// computed from the layout (without reading the table).
func (t *PageTable) Translate(vpn uint64) (int64, bool) {
	if vpn >= t.virt {
		return 0, false
	}
	return t.offsetOfLogical(t.tables + vpn), true
}

// IsTablePage reports whether region page p holds a table, and which (its
// level and index).
func (t *PageTable) IsTablePage(p uint64) (level int, index uint64, ok bool) {
	if p >= t.pages {
		return 0, 0, false
	}
	x := t.perm.Inverse(p)
	if x >= t.tables {
		return 0, 0, false
	}
	for l := Levels; l >= 1; l-- {
		if x < t.first[l]+t.count[l] {
			return l, x - t.first[l], true
		}
	}
	return 0, 0, false
}

// DataPage reports whether region page p is a data page, and the vpn that
// maps it.
func (t *PageTable) DataPage(p uint64) (vpn uint64, ok bool) {
	if p >= t.pages {
		return 0, false
	}
	x := t.perm.Inverse(p)
	if x < t.tables || x >= t.tables+t.virt {
		return 0, false
	}
	return x - t.tables, true
}

// DecodeEntry splits an entry into the child's region byte offset and its
// flags. A entry that is not present decodes to ok == false.
func DecodeEntry(e uint64, pageSize int) (off int64, leaf, ok bool) {
	if e&EntryPresent == 0 {
		return 0, false, false
	}
	return int64(e &^ uint64(pageSize-1)), e&EntryLeaf != 0, true
}

// DecodeLine appends to dst the child offsets of the present entries in
// line, a run of whole entries read from a table page (a 64-byte cache line
// holds eight), and returns it. A prefetcher that sees a table line read
// fetches these pages ahead.
func DecodeLine(line []byte, pageSize int, dst []int64) []int64 {
	for i := 0; i+EntrySize <= len(line); i += EntrySize {
		if off, _, ok := DecodeEntry(binary.LittleEndian.Uint64(line[i:]), pageSize); ok {
			dst = append(dst, off)
		}
	}
	return dst
}
