package pager

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/farmem/farmem/pmem"
	"github.com/farmem/farmem/pmem/journal"
)

// The persistent region table (Config.Meta). It lives in a pmem pool of its
// own, and every change to it is one redo transaction of package
// pmem/journal:
//
//   - a region's record and its bitset are allocated, and linked into the
//     table, by one transaction when the region is created;
//   - the bits of one eviction batch are set by one transaction, committed
//     after the batch's far-tier write-back and before its pages are punched
//     out of the memfd;
//   - record and bitset are freed, and unlinked, by one transaction when the
//     application detaches.
//
// A crash therefore leaves every page resident in the memfd or recorded as
// written to the far tier, and every record whole or absent.

// Geometry of a metadata pool.
const (
	// MetaLayout is the layout id of a pager metadata pool.
	MetaLayout = "farmem-pager-meta"
	// metaRoot names the pool's root object, the table.
	metaRoot = "farmem-pager-regions"
	// DefaultMetaSize is the size of a new metadata pool: room for the
	// bitsets of about 2 TiB of regions at 4 KiB pages.
	DefaultMetaSize = 64 << 20
	// MetaSlots is how many regions one table holds.
	MetaSlots = 4096
	// MetaPrefixMax is the longest far-tier namespace prefix a record holds.
	MetaPrefixMax = 72

	metaJournals    = 8
	metaJournalSize = 32 << 10 // an eviction batch of 1024 scattered pages needs 24 KiB
	tableMagic      = "FMPGTAB1"
	recordMagic     = "FMPGREC1"
	tableHeaderSize = 64
	recordSize      = 128
)

var le = binary.LittleEndian

// MetaOptions configure OpenMeta.
type MetaOptions struct {
	// Namespace is the prefix of the regions' far-tier namespaces (farmem
	// pager --namespace). It is recorded with each region, and a re-attach
	// of a region recorded under another prefix is refused: its pages are
	// not where this pager would look.
	Namespace string
	// Size is the size of a new pool in bytes; 0 means DefaultMetaSize.
	// An existing pool keeps its size.
	Size int64
	// Mode is the persistence domain (pmem.ModeAuto: DAX when the file
	// system offers it, msync otherwise).
	Mode pmem.Mode
}

// Meta is the pager's persistent region table: per region, its id, size,
// page size, far-tier namespace prefix, and one bit per page saying "this
// page was written to the far tier at least once". With it, a restarted
// pager tells a page that was never written (zero) from one the far tier
// lost (ErrLostPage), even without a backup of the far tier.
//
// The table is the pool's root object:
//
//	 0        8        12       16                                 60    64
//	+--------+--------+--------+----------------------------------+-----+
//	| magic  |version | slots  |               zero               | crc |   magic "FMPGTAB1", version 1
//	+--------+--------+--------+----------------------------------+-----+
//	crc is CRC32C of [0,60)
//	64: slots × u64: pool offset of a region record, 0 = empty slot
//
// A region record (128 bytes, allocated):
//
//	 0        8        16       24       28       32       40       48                  120      124   128
//	+--------+--------+--------+--------+--------+--------+--------+-------------------+--------+-----+
//	| magic  |   id   |  size  |pg size |pfx len | bitset | bitset | prefix (72, NUL   |  zero  | crc |
//	|        |        | bytes  |  u32   |  u32   |  off   | bytes  |       pad)        |        |     |
//	+--------+--------+--------+--------+--------+--------+--------+-------------------+--------+-----+
//	magic "FMPGREC1"; crc is CRC32C of [0,124)
//
// The bitset (allocated, bitset bytes = 8 × ceil(pages/64)) holds bit p%64
// of little-endian word p/64 for page p. Bits only go from 0 to 1 while
// the region lives. All integers are little endian.
//
// Meta is safe for concurrent use; its transactions are serialized by one
// mutex (the pager has one reclaimer, so eviction batches never wait for
// each other).
type Meta struct {
	path   string
	pool   *pmem.Pool
	j      *journal.Journals
	a      *pmem.Allocator
	prefix string

	mu      sync.Mutex
	tbl     uint64 // offset of the table
	slots   int
	regions map[uint64]*metaRegion
	free    []int // free slot indices, highest first
	tx      journal.Tx
	buf     []byte   // setBits: new word values
	words   []uint64 // setBits: their indices
}

// metaRegion is a region's record as loaded in DRAM.
type metaRegion struct {
	id       uint64
	size     uint64
	ps       uint32
	pages    int
	prefix   string
	slot     int
	rec      uint64 // offset of the record
	bits     uint64 // offset of the bitset
	bitBytes uint64
}

// MetaRegion describes a recorded region (Meta.Regions).
type MetaRegion struct {
	ID       uint64
	Size     uint64
	PageSize int
	Prefix   string
	// Written counts the pages whose bit is set.
	Written int
}

// OpenMeta opens the metadata pool at path, running journal recovery, or
// creates it if path does not exist (as path+".new", renamed into place
// once complete, so that an existing path is always a whole pool). A file
// that is not a pool, or is damaged, is ErrMetaCorrupt; a farmem pool of
// another layout is ErrMetaLayout.
func OpenMeta(path string, o MetaOptions) (*Meta, error) {
	if len(o.Namespace) > MetaPrefixMax {
		return nil, fmt.Errorf("%w: namespace prefix of %d bytes (at most %d)", ErrConfig, len(o.Namespace), MetaPrefixMax)
	}
	if o.Size == 0 {
		o.Size = DefaultMetaSize
	}
	_, err := os.Stat(path)
	switch {
	case err == nil:
		p, err := pmem.Open(path, pmem.OpenOptions{Layout: MetaLayout, Mode: o.Mode})
		if err != nil {
			return nil, metaOpenError(path, err)
		}
		m, err := openMeta(p, o.Namespace)
		if err != nil {
			p.Close()
			return nil, metaOpenError(path, err)
		}
		m.path = path
		return m, nil
	case errors.Is(err, os.ErrNotExist):
		return createMeta(path, o)
	default:
		return nil, fmt.Errorf("pager: metadata pool %s: %w", path, err)
	}
}

func createMeta(path string, o MetaOptions) (*Meta, error) {
	tmp := path + ".new"
	_ = os.Remove(tmp) // left by a creation that crashed
	p, err := pmem.Create(tmp, pmem.CreateOptions{Size: uint64(o.Size), Layout: MetaLayout,
		Journals: metaJournals, JournalSize: metaJournalSize, Mode: o.Mode})
	if err != nil {
		return nil, fmt.Errorf("pager: creating metadata pool %s: %w", path, err)
	}
	m, err := openMeta(p, o.Namespace)
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(filepath.Dir(path))
	}
	if err != nil {
		if m != nil {
			m.j.Close()
		}
		p.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("pager: creating metadata pool %s: %w", path, err)
	}
	m.path = path
	return m, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// metaError is what is wrong with a table: kind (ErrMetaCorrupt or
// ErrMetaLayout) and the detail.
type metaError struct {
	kind error
	msg  string
}

func (e *metaError) Error() string { return e.kind.Error() + ": " + e.msg }
func (e *metaError) Unwrap() error { return e.kind }

func corrupt(format string, args ...any) error {
	return &metaError{ErrMetaCorrupt, fmt.Sprintf(format, args...)}
}

func foreign(format string, args ...any) error {
	return &metaError{ErrMetaLayout, fmt.Sprintf(format, args...)}
}

// metaOpenError names what is wrong with an existing metadata pool, in one
// line: "pager: metadata pool is corrupt: PATH: detail".
func metaOpenError(path string, err error) error {
	var me *metaError
	switch {
	case errors.As(err, &me):
		return fmt.Errorf("%w: %s: %s", me.kind, path, me.msg)
	case errors.Is(err, pmem.ErrLayout):
		return fmt.Errorf("%w: %s: %w", ErrMetaLayout, path, err)
	case errors.Is(err, pmem.ErrCorrupt):
		return fmt.Errorf("%w: %s: %w", ErrMetaCorrupt, path, err)
	}
	return fmt.Errorf("pager: metadata pool %s: %w", path, err)
}

// openMeta recovers the journals of p and loads (or, in a pool without a
// root, creates) the table. It does not close p on error.
func openMeta(p *pmem.Pool, prefix string) (*Meta, error) {
	if len(prefix) > MetaPrefixMax {
		return nil, fmt.Errorf("%w: namespace prefix of %d bytes (at most %d)", ErrConfig, len(prefix), MetaPrefixMax)
	}
	j, _, err := journal.Open(p, journal.Options{})
	if err != nil {
		return nil, err
	}
	m := &Meta{pool: p, j: j, a: j.Allocator(), prefix: prefix, regions: map[uint64]*metaRegion{}}
	r, err := p.Root()
	switch {
	case errors.Is(err, pmem.ErrNoRoot) && len(m.a.Blocks()) == 0:
		err = m.initTable()
	case err != nil:
		err = fmt.Errorf("%w: %w", ErrMetaCorrupt, err)
	case r.Name != metaRoot:
		err = foreign("root object %q, want %q", r.Name, metaRoot)
	default:
		err = m.load(r)
	}
	if err != nil {
		j.Close()
		return nil, err
	}
	return m, nil
}

// initTable allocates the table and publishes it as the root, in one
// transaction.
func (m *Meta) initTable() error {
	n := uint64(tableHeaderSize + 8*MetaSlots)
	return m.update(func(tx *journal.Tx) error {
		off, err := m.allocZeroed(tx, n)
		if err != nil {
			return err
		}
		var h [tableHeaderSize]byte
		copy(h[:8], tableMagic)
		le.PutUint32(h[8:], 1)
		le.PutUint32(h[12:], MetaSlots)
		le.PutUint32(h[60:], pmem.Checksum(h[:60]))
		if err := tx.Write(off, h[:]); err != nil {
			return err
		}
		if err := m.pool.SetRoot(tx, metaRoot, off, n); err != nil {
			return err
		}
		tx.OnCommit(func() { m.setTable(off, MetaSlots) })
		return nil
	})
}

func (m *Meta) setTable(off uint64, slots int) {
	m.tbl, m.slots = off, slots
	m.free = m.free[:0]
	for i := slots - 1; i >= 0; i-- {
		m.free = append(m.free, i)
	}
}

// load decodes the table and every record it links.
func (m *Meta) load(r pmem.RootSlot) error {
	mem := m.pool.Mem()
	if r.Size < tableHeaderSize || m.pool.Check(r.Off, r.Size) != nil {
		return corrupt("table of %d bytes at %d", r.Size, r.Off)
	}
	h := mem[r.Off : r.Off+tableHeaderSize]
	if string(h[:8]) != tableMagic {
		return foreign("table magic %q", h[:8])
	}
	if le.Uint32(h[60:]) != pmem.Checksum(h[:60]) {
		return corrupt("table header checksum")
	}
	if v := le.Uint32(h[8:]); v != 1 {
		return foreign("table version %d (this build reads 1)", v)
	}
	slots := int(le.Uint32(h[12:]))
	if slots < 1 || uint64(tableHeaderSize+8*slots) > r.Size || !isZero(h[16:60]) {
		return corrupt("table of %d slots in %d bytes", slots, r.Size)
	}
	m.setTable(r.Off, slots)
	m.free = m.free[:0]
	for i := slots - 1; i >= 0; i-- {
		off := le.Uint64(mem[m.slotOff(i):])
		if off == 0 {
			m.free = append(m.free, i)
			continue
		}
		mr, err := m.decodeRecord(i, off)
		if err != nil {
			return err
		}
		if _, dup := m.regions[mr.id]; dup {
			return corrupt("slot %d: region %d recorded twice", i, mr.id)
		}
		mr.slot = i
		m.regions[mr.id] = mr
	}
	return nil
}

func (m *Meta) slotOff(i int) uint64 { return m.tbl + tableHeaderSize + 8*uint64(i) }

// decodeRecord checks and decodes the record at off.
func (m *Meta) decodeRecord(slot int, off uint64) (*metaRegion, error) {
	if n, err := m.a.Size(off); err != nil || n < recordSize {
		return nil, corrupt("slot %d: record at %d is not an allocated block of %d bytes", slot, off, recordSize)
	}
	b := m.pool.Mem()[off : off+recordSize]
	if string(b[:8]) != recordMagic || le.Uint32(b[124:]) != recordCRC(b) {
		return nil, corrupt("slot %d: record at %d: bad magic or checksum", slot, off)
	}
	mr := &metaRegion{
		id: le.Uint64(b[8:]), size: le.Uint64(b[16:]), ps: le.Uint32(b[24:]), rec: off,
		bits: le.Uint64(b[32:]), bitBytes: le.Uint64(b[40:]),
	}
	pl := le.Uint32(b[28:])
	if pl > MetaPrefixMax || !isZero(b[48+pl:124]) || mr.ps == 0 || mr.size == 0 || mr.size%uint64(mr.ps) != 0 ||
		mr.size/uint64(mr.ps) > 1<<40 {
		return nil, corrupt("slot %d: record at %d: bad fields", slot, off)
	}
	mr.prefix = string(b[48 : 48+pl])
	mr.pages = int(mr.size / uint64(mr.ps))
	if mr.bitBytes != bitsetBytes(mr.pages) {
		return nil, corrupt("slot %d: record at %d: bitset of %d bytes for %d pages", slot, off, mr.bitBytes, mr.pages)
	}
	if n, err := m.a.Size(mr.bits); err != nil || n < mr.bitBytes {
		return nil, corrupt("slot %d: record at %d: bitset at %d is not an allocated block of %d bytes", slot, off, mr.bits, mr.bitBytes)
	}
	return mr, nil
}

// recordCRC binds a record to the table format: the CRC of its first 124
// bytes.
func recordCRC(b []byte) uint32 { return pmem.Checksum(b[:124]) }

func bitsetBytes(pages int) uint64 { return 8 * uint64((pages+63)/64) }

func isZero(b []byte) bool {
	for _, v := range b {
		if v != 0 {
			return false
		}
	}
	return true
}

// update runs fn in one redo transaction and commits it; an error from fn
// aborts it. Called with m.mu held, or before m is shared.
func (m *Meta) update(fn func(tx *journal.Tx) error) error {
	if err := m.j.BeginInto(&m.tx, journal.Redo); err != nil {
		return err
	}
	if err := fn(&m.tx); err != nil {
		m.tx.Abort()
		return err
	}
	return m.tx.Commit()
}

// allocZeroed allocates n bytes through tx and zeroes them durably at once.
// The block is too large to zero through the journal (a bitset of a 1 TiB
// region is 32 MiB), so it is zeroed in place; that is safe only if no
// redo journal that wrote these bytes before (the bits of a region freed
// since) can still be replayed over them by a recovery, hence the Sync
// first: it makes every committed transaction durable and moves the
// watermark past it. Table transactions are serialized (m.mu), so none
// commits between the Sync and the zeroing.
func (m *Meta) allocZeroed(tx *journal.Tx, n uint64) (uint64, error) {
	off, err := m.a.Alloc(tx, n)
	if err != nil {
		return 0, err
	}
	if err := m.j.Sync(); err != nil {
		return 0, err
	}
	clear(m.pool.Mem()[off : off+n])
	m.pool.Flush(off, n)
	if err := m.pool.Fence(); err != nil {
		return 0, err
	}
	return off, nil
}

// lookup returns region id's record, or nil if the table has none.
func (m *Meta) lookup(id uint64) *metaRegion {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.regions[id]
}

// check reports why a re-attach of region id with this shape cannot use
// its record: ErrMetaMismatch. A region without a record is fine (nil).
func (m *Meta) check(id uint64, size int, ps int) error {
	mr := m.lookup(id)
	if mr == nil {
		return nil
	}
	if mr.size != uint64(size) || mr.ps != uint32(ps) || mr.prefix != m.prefix {
		return fmt.Errorf("%w: region %d was recorded with %d bytes, pages of %d, namespace prefix %q; the re-attach has %d bytes, pages of %d, and this pager uses prefix %q",
			ErrMetaMismatch, id, mr.size, mr.ps, mr.prefix, size, ps, m.prefix)
	}
	return nil
}

// has reports whether the table records region id.
func (m *Meta) has(id uint64) bool { return m.lookup(id) != nil }

// room reports whether a new region of size bytes would fit: ErrMetaFull
// if not. Another region may take the room before create.
func (m *Meta) room(size int, ps int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.free) == 0 {
		return fmt.Errorf("%w: all %d slots are used", ErrMetaFull, m.slots)
	}
	h := m.pool.Header()
	need := bitsetBytes(size/ps) + recordSize + 2*pmem.Unit
	if left := h.HeapUnits*pmem.Unit - m.a.InUse(); need > left {
		return fmt.Errorf("%w: a region of %d bytes needs %d bytes of bitset, %d bytes left", ErrMetaFull, size, need, left)
	}
	return nil
}

// create records a new region: its record and a zeroed bitset, linked into
// a free slot, in one transaction.
func (m *Meta) create(id uint64, size int, ps int) (*metaRegion, error) {
	if size <= 0 || ps <= 0 || size%ps != 0 {
		return nil, fmt.Errorf("%w: region of %d bytes in pages of %d", ErrConfig, size, ps)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, dup := m.regions[id]; dup {
		return nil, fmt.Errorf("%w: region %d is recorded already", ErrMetaMismatch, id)
	}
	if len(m.free) == 0 {
		return nil, fmt.Errorf("%w: all %d slots are used", ErrMetaFull, m.slots)
	}
	slot := m.free[len(m.free)-1]
	pages := size / ps
	mr := &metaRegion{id: id, size: uint64(size), ps: uint32(ps), pages: pages, prefix: m.prefix, slot: slot,
		bitBytes: bitsetBytes(pages)}
	err := m.update(func(tx *journal.Tx) error {
		var err error
		if mr.rec, err = m.a.Alloc(tx, recordSize); err != nil {
			return err
		}
		if mr.bits, err = m.allocZeroed(tx, mr.bitBytes); err != nil {
			return err
		}
		var b [recordSize]byte
		copy(b[:8], recordMagic)
		le.PutUint64(b[8:], id)
		le.PutUint64(b[16:], mr.size)
		le.PutUint32(b[24:], mr.ps)
		le.PutUint32(b[28:], uint32(len(mr.prefix)))
		le.PutUint64(b[32:], mr.bits)
		le.PutUint64(b[40:], mr.bitBytes)
		copy(b[48:], mr.prefix)
		le.PutUint32(b[124:], recordCRC(b[:]))
		if err := tx.Write(mr.rec, b[:]); err != nil {
			return err
		}
		return tx.Write(m.slotOff(slot), le.AppendUint64(nil, mr.rec))
	})
	if err != nil {
		if errors.Is(err, pmem.ErrOutOfSpace) {
			err = fmt.Errorf("%w: %w", ErrMetaFull, err)
		}
		return nil, fmt.Errorf("pager: recording region %d: %w", id, err)
	}
	m.free = m.free[:len(m.free)-1]
	m.regions[id] = mr
	return mr, nil
}

// remove unlinks and frees region mr's record and bitset in one
// transaction.
func (m *Meta) remove(mr *metaRegion) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.regions[mr.id] != mr {
		return nil
	}
	err := m.update(func(tx *journal.Tx) error {
		if err := m.a.Free(tx, mr.bits); err != nil {
			return err
		}
		if err := m.a.Free(tx, mr.rec); err != nil {
			return err
		}
		return tx.Write(m.slotOff(mr.slot), make([]byte, 8))
	})
	if err != nil {
		return fmt.Errorf("pager: removing the record of region %d: %w", mr.id, err)
	}
	delete(m.regions, mr.id)
	m.free = append(m.free, mr.slot)
	return nil
}

// setBits records pages as written to the far tier, in one transaction: one
// journal entry per run of adjacent bitset words that change. pages must be
// in ascending order. It commits nothing if every bit is set already, and
// reports whether it committed.
func (m *Meta) setBits(mr *metaRegion, pages []int) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.regions[mr.id] != mr {
		return false, fmt.Errorf("pager: region %d has no record", mr.id)
	}
	mem := m.pool.Mem()
	// Words and their new values, in ascending order. The pool holds the
	// committed bits (m.mu orders every table transaction).
	m.buf, m.words = m.buf[:0], m.words[:0]
	for i := 0; i < len(pages); {
		if pages[i] < 0 || pages[i] >= mr.pages || (i > 0 && pages[i] <= pages[i-1]) {
			return false, fmt.Errorf("pager: region %d: bad page list at %d (page %d of %d)", mr.id, i, pages[i], mr.pages)
		}
		w := pages[i] / 64
		cur := le.Uint64(mem[mr.bits+8*uint64(w):])
		v := cur
		for ; i < len(pages) && pages[i]/64 == w; i++ {
			v |= 1 << (pages[i] % 64)
		}
		if v != cur {
			m.buf = le.AppendUint64(m.buf, v)
			m.words = append(m.words, uint64(w))
		}
	}
	words := m.words
	if len(words) == 0 {
		return false, nil
	}
	err := m.update(func(tx *journal.Tx) error {
		for i := 0; i < len(words); {
			j := i + 1
			for j < len(words) && words[j] == words[j-1]+1 {
				j++
			}
			if err := tx.Write(mr.bits+8*words[i], m.buf[8*i:8*j]); err != nil {
				return err
			}
			i = j
		}
		return nil
	})
	return err == nil, err
}

// written reports whether page pg's bit is set.
func (mr *metaRegion) written(m *Meta, pg int) bool {
	w := le.Uint64(m.pool.Mem()[mr.bits+8*uint64(pg/64):])
	return w&(1<<(pg%64)) != 0
}

// Regions lists the recorded regions, by id.
func (m *Meta) Regions() []MetaRegion {
	m.mu.Lock()
	defer m.mu.Unlock()
	mem := m.pool.Mem()
	out := make([]MetaRegion, 0, len(m.regions))
	for _, mr := range m.regions {
		n := 0
		for w := uint64(0); w < mr.bitBytes; w += 8 {
			n += bits.OnesCount64(le.Uint64(mem[mr.bits+w:]))
		}
		out = append(out, MetaRegion{ID: mr.id, Size: mr.size, PageSize: int(mr.ps), Prefix: mr.prefix, Written: n})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// Path returns the pool file's path ("" for a pool in memory).
func (m *Meta) Path() string { return m.path }

// DomainName names the persistence domain in use (dax, msync, ...).
func (m *Meta) DomainName() string { return m.pool.DomainName() }

// Close makes every committed change durable and closes the pool. The
// pager must be closed first.
func (m *Meta) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	err := m.j.Close()
	if errors.Is(err, journal.ErrClosed) {
		err = nil
	}
	return errors.Join(err, m.pool.Close())
}
