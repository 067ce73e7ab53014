package resilient

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/farmem/farmem/store"
)

// The outage set is the set of pages whose newest copy is in the backup
// only: written while their node was down, written while a remote write
// failed, or found corrupt or missing on the remote. Until a page leaves
// the set, reads of it are served by the backup, and resync copies it to
// its node.
//
// It lives in memory as a bitmap over the region's pages and on the backup
// device as an append-only log in a sidecar file next to the backup (the
// backup path plus ".outage"), so a client that restarts does not forget
// which pages its memnodes lack.
//
// # File layout
//
//	offset 0   header, outageHeaderSize bytes
//	           +----------+---------+----------+---------+-----------+----------+----------+---------+
//	           | magic 8B | ver le32| psz le32 | n le64  | region 16B| nodes le32| 0 × 16B | crc le32|
//	           +----------+---------+----------+---------+-----------+----------+----------+---------+
//	offset 64  records, recordSize bytes each, appended
//	           +-------+-------+------------+-------------+-----------+
//	           | op u8 | 0 u8  | node le16  | arg le64    | crc le32  |
//	           +-------+-------+------------+-------------+-----------+
//
// Each crc is the CRC32C of the bytes before it in its header or record.
// Ops:
//
//	add   (1) arg = page id: the page joins the set
//	done  (2) arg = page id: the page left the set (resynced)
//	epoch (3) node, arg = boot epoch: the node held every page of the
//	          backup that it homes, at that epoch, when the record was
//	          written (a completed full resync, or a fresh region)
//
// Replay applies records in order. A record that does not decode ends the
// log: it is a torn tail from a crash during an append, and Open truncates
// the file there. An add is written and fdatasync'ed before the write it
// records is acknowledged, so an acknowledged page is never forgotten; a
// done needs no sync (losing it only repeats a copy). The log is compacted
// (rewritten to a temporary file, synced, renamed over the old one, the
// directory synced) at Open and when it grows past compactAt records and
// four times the live entries.
type outageSet struct {
	pages uint64
	bits  []atomic.Uint64

	mu      sync.Mutex // serializes changes of bits and appends
	count   atomic.Int64
	f       logFile
	path    string // "" for a file that cannot be compacted by rename
	hdr     outageHeader
	tail    int64 // where the next record goes
	records int64 // records in the file
	epochs  map[uint16]uint64
	buf     []byte
}

const (
	outageMagic      = "FARMOUT1"
	outageVersion    = 1
	outageHeaderSize = 64
	recordSize       = 16
	compactAt        = 1 << 16

	opAdd   = 1
	opDone  = 2
	opEpoch = 3
)

// logFile is what the outage set needs of its file: *os.File has it, and the
// crash-simulating file of the tests.
type logFile interface {
	io.ReaderAt
	io.WriterAt
	Truncate(size int64) error
	Sync() error
	Close() error
}

// outageHeader is the header of an outage-set file.
type outageHeader struct {
	Version  uint32
	PageSize uint32
	Pages    uint64
	RegionID [16]byte
	Nodes    uint32
}

func (h outageHeader) encode(b []byte) {
	clear(b[:outageHeaderSize])
	copy(b, outageMagic)
	binary.LittleEndian.PutUint32(b[8:], h.Version)
	binary.LittleEndian.PutUint32(b[12:], h.PageSize)
	binary.LittleEndian.PutUint64(b[16:], h.Pages)
	copy(b[24:40], h.RegionID[:])
	binary.LittleEndian.PutUint32(b[40:], h.Nodes)
	binary.LittleEndian.PutUint32(b[60:], store.Checksum(b[:60]))
}

// decodeOutageHeader parses a header read from a file (outside input; fuzzed).
func decodeOutageHeader(b []byte) (outageHeader, error) {
	var h outageHeader
	if len(b) < outageHeaderSize {
		return h, fmt.Errorf("%w: header of %d bytes", ErrOutageFile, len(b))
	}
	if string(b[:8]) != outageMagic {
		return h, fmt.Errorf("%w: bad magic %q", ErrOutageFile, b[:8])
	}
	if got, want := binary.LittleEndian.Uint32(b[60:]), store.Checksum(b[:60]); got != want {
		return h, fmt.Errorf("%w: header checksum %08x, want %08x", ErrOutageFile, got, want)
	}
	h.Version = binary.LittleEndian.Uint32(b[8:])
	h.PageSize = binary.LittleEndian.Uint32(b[12:])
	h.Pages = binary.LittleEndian.Uint64(b[16:])
	copy(h.RegionID[:], b[24:40])
	h.Nodes = binary.LittleEndian.Uint32(b[40:])
	switch {
	case h.Version != outageVersion:
		return h, fmt.Errorf("%w: version %d, this build reads %d", ErrOutageFile, h.Version, outageVersion)
	case h.PageSize < 4096 || h.PageSize&(h.PageSize-1) != 0 || h.PageSize > 1<<24:
		return h, fmt.Errorf("%w: page size %d", ErrOutageFile, h.PageSize)
	case h.Pages == 0 || h.Pages > 1<<40:
		return h, fmt.Errorf("%w: %d pages", ErrOutageFile, h.Pages)
	case h.Nodes == 0 || h.Nodes > 1<<16:
		return h, fmt.Errorf("%w: %d nodes", ErrOutageFile, h.Nodes)
	}
	return h, nil
}

// record is one entry of the outage log.
type record struct {
	Op   uint8
	Node uint16
	Arg  uint64
}

func (r record) encode(b []byte) {
	b[0] = r.Op
	b[1] = 0
	binary.LittleEndian.PutUint16(b[2:], r.Node)
	binary.LittleEndian.PutUint64(b[4:], r.Arg)
	binary.LittleEndian.PutUint32(b[12:], store.Checksum(b[:12]))
}

// decodeRecord parses one record against the file's header (outside input;
// fuzzed).
func decodeRecord(b []byte, h outageHeader) (record, error) {
	var r record
	if len(b) < recordSize {
		return r, fmt.Errorf("%w: %d bytes", ErrOutageRecord, len(b))
	}
	if got, want := binary.LittleEndian.Uint32(b[12:]), store.Checksum(b[:12]); got != want {
		return r, fmt.Errorf("%w: checksum %08x, want %08x", ErrOutageRecord, got, want)
	}
	r.Op = b[0]
	r.Node = binary.LittleEndian.Uint16(b[2:])
	r.Arg = binary.LittleEndian.Uint64(b[4:])
	if b[1] != 0 {
		return r, fmt.Errorf("%w: reserved byte %d", ErrOutageRecord, b[1])
	}
	switch r.Op {
	case opAdd, opDone:
		if r.Arg >= h.Pages || r.Node != 0 {
			return r, fmt.Errorf("%w: page %d of %d (node field %d)", ErrOutageRecord, r.Arg, h.Pages, r.Node)
		}
	case opEpoch:
		if uint32(r.Node) >= h.Nodes {
			return r, fmt.Errorf("%w: node %d of %d", ErrOutageRecord, r.Node, h.Nodes)
		}
	default:
		return r, fmt.Errorf("%w: op %d", ErrOutageRecord, r.Op)
	}
	return r, nil
}

// outageState is what replaying a log yields.
type outageState struct {
	hdr    outageHeader
	pages  map[uint64]bool
	epochs map[uint16]uint64
	// good is the length of the prefix of valid records; torn says a bad
	// record (or a partial one) followed it.
	good int64
	torn bool
}

// replayOutage decodes a whole outage-set file image (outside input; fuzzed).
func replayOutage(b []byte) (outageState, error) {
	st := outageState{pages: make(map[uint64]bool), epochs: make(map[uint16]uint64)}
	h, err := decodeOutageHeader(b)
	if err != nil {
		return st, err
	}
	st.hdr = h
	off := int64(outageHeaderSize)
	for ; off+recordSize <= int64(len(b)); off += recordSize {
		r, err := decodeRecord(b[off:off+recordSize], h)
		if err != nil {
			st.torn = true
			break
		}
		switch r.Op {
		case opAdd:
			st.pages[r.Arg] = true
		case opDone:
			delete(st.pages, r.Arg)
		case opEpoch:
			st.epochs[r.Node] = r.Arg
		}
	}
	if off < int64(len(b)) {
		st.torn = true
	}
	st.good = off
	return st, nil
}

// createOutageFile writes a fresh outage-set file at path (via a temporary
// file and a rename, so a crash leaves either nothing or a whole header).
func createOutageFile(path string, h outageHeader, epochs map[uint16]uint64) error {
	return rewriteOutage(path, h, nil, epochs)
}

// rewriteOutage writes a compacted log holding pages and epochs to path,
// crash-safely.
func rewriteOutage(path string, h outageHeader, pages []uint64, epochs map[uint16]uint64) error {
	b := make([]byte, outageHeaderSize, outageHeaderSize+recordSize*(len(pages)+len(epochs)))
	h.encode(b)
	var rb [recordSize]byte
	for n, e := range epochs {
		record{Op: opEpoch, Node: n, Arg: e}.encode(rb[:])
		b = append(b, rb[:]...)
	}
	for _, p := range pages {
		record{Op: opAdd, Arg: p}.encode(rb[:])
		b = append(b, rb[:]...)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("resilient: outage-set file: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("resilient: writing the outage-set file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("resilient: syncing the outage-set file: %w", err)
	}
	f.Close()
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("resilient: renaming the outage-set file: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("resilient: syncing directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, os.ErrInvalid) {
		return fmt.Errorf("resilient: syncing directory: %w", err)
	}
	return nil
}

// loadOutage opens an outage-set file image held by f (of size size),
// checks it against want, truncates a torn tail and returns the set.
func loadOutage(f logFile, size int64, path string, want outageHeader) (*outageSet, error) {
	if size < outageHeaderSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrOutageFile, size)
	}
	if size > outageHeaderSize+recordSize*(1<<32) {
		return nil, fmt.Errorf("%w: %d bytes", ErrOutageFile, size)
	}
	b := make([]byte, size)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("resilient: reading the outage-set file: %w", err)
	}
	st, err := replayOutage(b)
	if err != nil {
		return nil, err
	}
	if st.hdr.RegionID != want.RegionID {
		return nil, fmt.Errorf("%w: outage-set file belongs to region %x, not %x", store.ErrWrongRegion, st.hdr.RegionID, want.RegionID)
	}
	if st.hdr.PageSize != want.PageSize || st.hdr.Pages != want.Pages || st.hdr.Nodes != want.Nodes {
		return nil, fmt.Errorf("%w: outage-set file is for %d pages of %d bytes on %d nodes, region has %d of %d on %d",
			store.ErrWrongRegion, st.hdr.Pages, st.hdr.PageSize, st.hdr.Nodes, want.Pages, want.PageSize, want.Nodes)
	}
	if st.torn {
		if err := f.Truncate(st.good); err != nil {
			return nil, fmt.Errorf("resilient: truncating the outage-set file's torn tail: %w", err)
		}
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("resilient: syncing the outage-set file: %w", err)
		}
	}
	o := &outageSet{
		pages: want.Pages, bits: make([]atomic.Uint64, (want.Pages+63)/64),
		f: f, path: path, hdr: st.hdr, tail: st.good,
		records: (st.good - outageHeaderSize) / recordSize, epochs: st.epochs,
	}
	for p := range st.pages {
		o.bits[p/64].Or(1 << (p % 64))
		o.count.Add(1)
	}
	return o, nil
}

// has reports whether page p is in the set. It takes no lock.
func (o *outageSet) has(p store.PageID) bool {
	return uint64(p) < o.pages && o.bits[p/64].Load()&(1<<(p%64)) != 0
}

// Len returns the number of pages in the set.
func (o *outageSet) Len() int64 { return o.count.Load() }

// add puts pages into the set and makes the records durable before it
// returns (when sync is set). A page already in the set is not logged again.
func (o *outageSet) add(ids []store.PageID, sync bool) error {
	_, err := o.addCount(ids, sync)
	return err
}

// addCount is add, also returning how many pages were not in the set.
func (o *outageSet) addCount(ids []store.PageID, sync bool) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = o.buf[:0]
	var rb [recordSize]byte
	var added []store.PageID
	for _, p := range ids {
		w, bit := &o.bits[p/64], uint64(1)<<(p%64)
		if w.Load()&bit != 0 || slices.Contains(added, p) {
			continue
		}
		record{Op: opAdd, Arg: uint64(p)}.encode(rb[:])
		o.buf = append(o.buf, rb[:]...)
		added = append(added, p)
	}
	if len(added) == 0 {
		return 0, nil
	}
	if err := o.appendLocked(sync); err != nil {
		return 0, err
	}
	// The bits are set only once the records are durable: a reader that
	// sees a bit may rely on the page being in the log.
	for _, p := range added {
		o.bits[p/64].Or(1 << (p % 64))
	}
	o.count.Add(int64(len(added)))
	return len(added), nil
}

// remove takes page p out of the set if keep(p) says so, under the set's
// lock (the caller checks that no newer write raced it). The done record is
// not synced: losing it only repeats a copy.
func (o *outageSet) remove(ids []store.PageID, keep func(i int) bool) (removed int, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf = o.buf[:0]
	var rb [recordSize]byte
	for i, p := range ids {
		w, bit := &o.bits[p/64], uint64(1)<<(p%64)
		if w.Load()&bit == 0 || keep(i) {
			continue
		}
		w.And(^bit)
		record{Op: opDone, Arg: uint64(p)}.encode(rb[:])
		o.buf = append(o.buf, rb[:]...)
		removed++
	}
	o.count.Add(-int64(removed))
	if removed == 0 {
		return 0, nil
	}
	return removed, o.appendLocked(false)
}

// setEpoch durably records that node holds every backup page it homes at
// boot epoch e.
func (o *outageSet) setEpoch(node int, e uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.epochs[uint16(node)] == e {
		return nil
	}
	var rb [recordSize]byte
	record{Op: opEpoch, Node: uint16(node), Arg: e}.encode(rb[:])
	o.buf = append(o.buf[:0], rb[:]...)
	if err := o.appendLocked(true); err != nil {
		return err
	}
	o.epochs[uint16(node)] = e
	return nil
}

// epoch returns the boot epoch node was last fully synced at (0: none).
func (o *outageSet) epoch(node int) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.epochs[uint16(node)]
}

func (o *outageSet) appendLocked(sync bool) error {
	if o.f == nil {
		return errClosed
	}
	if _, err := o.f.WriteAt(o.buf, o.tail); err != nil {
		return fmt.Errorf("resilient: appending to the outage-set file: %w", err)
	}
	if sync {
		if err := o.f.Sync(); err != nil {
			return fmt.Errorf("resilient: syncing the outage-set file: %w", err)
		}
	}
	o.tail += int64(len(o.buf))
	o.records += int64(len(o.buf) / recordSize)
	if o.path != "" && o.records > compactAt && o.records > 4*(o.count.Load()+int64(len(o.epochs))) {
		// Best effort: a failed compaction leaves the old log, still valid.
		o.compactLocked()
	}
	return nil
}

// compactLocked rewrites the log with only its live entries.
func (o *outageSet) compactLocked() error {
	var pages []uint64
	for i := range o.bits {
		w := o.bits[i].Load()
		for w != 0 {
			b := uint64(bits.TrailingZeros64(w))
			pages = append(pages, uint64(i)*64+b)
			w &= w - 1
		}
	}
	if err := rewriteOutage(o.path, o.hdr, pages, o.epochs); err != nil {
		return err
	}
	f, err := os.OpenFile(o.path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("resilient: reopening the outage-set file: %w", err)
	}
	o.f.Close()
	o.f = f
	o.records = int64(len(pages) + len(o.epochs))
	o.tail = outageHeaderSize + o.records*recordSize
	return nil
}

// forNode calls fn with the pages of the set, in increasing order, from
// page start on, for which home(p) is true, until fn returns false.
func (o *outageSet) scan(start uint64, fn func(p store.PageID) bool) {
	for i := start / 64; i < uint64(len(o.bits)); i++ {
		w := o.bits[i].Load()
		if i == start/64 {
			w &^= (1 << (start % 64)) - 1
		}
		for w != 0 {
			b := uint64(bits.TrailingZeros64(w))
			if !fn(store.PageID(i*64 + b)) {
				return
			}
			w &= w - 1
		}
	}
}

func (o *outageSet) close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.f == nil {
		return nil
	}
	err := o.f.Close()
	o.f = nil
	return err
}
