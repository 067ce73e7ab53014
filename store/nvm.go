package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// NVM is a Store on a local file: the NVM (or SSD) tier, and the backup of
// remote pages in C1. Each page has two fixed data slots and an 8-byte slot
// entry that says which of them is current, so a page write is one pwrite
// of data into the other slot and one of the entry (shadow paging).
//
// # File layout
//
//	offset 0          header (one page; see nvmHeader)
//	offset PageSize   slot table: one 8-byte entry per page, padded to a page
//	                   +----------------+----------------+
//	                   | CRC32C (le32)  | flags (le32)   |   flags bit 0: present
//	                   +----------------+----------------+         bit 1: current copy
//	offset dataOff    page data: copy k of page i at dataOff + (2i+k)*PageSize
//
// A write stores the data in the copy that is not current, then flips the
// entry (one aligned 8-byte write, which a crash does not tear). A crash
// between the two leaves the entry on the old copy, which nothing touched:
// the last completed write of every page survives a crash of the writer,
// which matters when the file is the only copy (a backup while its memnode
// is down). The price is twice the data space, allocated as pages are
// written (the file is sparse). Durability across power loss needs Sync
// (fdatasync); a torn copy is still found by its checksum.
type NVM struct {
	f        *os.File
	hdr      nvmHeader
	dataOff  int64
	slotsOff int64

	reqs      chan nvmReq
	wg        sync.WaitGroup
	closeOnce sync.Once
	mu        sync.RWMutex // held for reading while a request runs; Close takes it
	closed    bool
	// pageLocks order the accesses to one page (striped by page id): a
	// write picks its copy from the entry, so two writes of a page, or a
	// read and two writes, must not interleave.
	pageLocks [64]sync.RWMutex
}

type nvmReq struct {
	ctx context.Context
	c   *Call
}

var _ Store = (*NVM)(nil)
var _ Statter = (*NVM)(nil)

// NVMOptions configures OpenNVM.
type NVMOptions struct {
	// PageSize and Pages give the region's shape; an existing file must match.
	PageSize int
	Pages    uint64
	// RegionID names the region the file belongs to; an existing file with
	// another id is refused with ErrWrongRegion.
	RegionID [16]byte
	// Create makes the file when it does not exist (sparse: untouched pages
	// take no space).
	Create bool
	// Workers is the number of goroutines doing file I/O; 0 means 4.
	Workers int
}

const (
	nvmMagic      = "FARMNVM1"
	nvmVersion    = 2 // 2: two data copies per page
	nvmHeaderSize = 8 + 4 + 4 + 8 + 16 + 4
	slotPresent   = 1
	slotCopy      = 2 // which data copy is current
)

// nvmHeader is the first page of an NVM file.
//
//	+----------+---------+----------+---------+-----------+---------+
//	| magic 8B | ver le32| psz le32 | n le64  | region 16B| crc le32|
//	+----------+---------+----------+---------+-----------+---------+
//
// crc is the CRC32C of the bytes before it.
type nvmHeader struct {
	Version  uint32
	PageSize uint32
	Pages    uint64
	RegionID [16]byte
}

func (h nvmHeader) encode(b []byte) {
	copy(b, nvmMagic)
	binary.LittleEndian.PutUint32(b[8:], h.Version)
	binary.LittleEndian.PutUint32(b[12:], h.PageSize)
	binary.LittleEndian.PutUint64(b[16:], h.Pages)
	copy(b[24:40], h.RegionID[:])
	binary.LittleEndian.PutUint32(b[40:], Checksum(b[:40]))
}

// decodeNVMHeader parses a header; it is the decoder of an outside input (a
// file) and is fuzzed.
func decodeNVMHeader(b []byte) (nvmHeader, error) {
	var h nvmHeader
	if len(b) < nvmHeaderSize {
		return h, fmt.Errorf("%w: header of %d bytes", ErrBadFile, len(b))
	}
	if string(b[:8]) != nvmMagic {
		return h, fmt.Errorf("%w: bad magic %q", ErrBadFile, b[:8])
	}
	if got, want := binary.LittleEndian.Uint32(b[40:]), Checksum(b[:40]); got != want {
		return h, fmt.Errorf("%w: header checksum %08x, want %08x", ErrBadFile, got, want)
	}
	h.Version = binary.LittleEndian.Uint32(b[8:])
	h.PageSize = binary.LittleEndian.Uint32(b[12:])
	h.Pages = binary.LittleEndian.Uint64(b[16:])
	copy(h.RegionID[:], b[24:40])
	if h.Version != nvmVersion {
		return h, fmt.Errorf("%w: version %d, this build reads %d", ErrBadFile, h.Version, nvmVersion)
	}
	if h.PageSize < 4096 || h.PageSize&(h.PageSize-1) != 0 || h.PageSize > 1<<24 {
		return h, fmt.Errorf("%w: page size %d", ErrBadFile, h.PageSize)
	}
	if h.Pages == 0 || h.Pages > 1<<40 {
		return h, fmt.Errorf("%w: %d pages", ErrBadFile, h.Pages)
	}
	return h, nil
}

func nvmLayout(pageSize int, pages uint64) (slotsOff, dataOff, size int64) {
	slotsOff = int64(pageSize)
	slotBytes := (int64(pages)*8 + int64(pageSize) - 1) / int64(pageSize) * int64(pageSize)
	dataOff = slotsOff + slotBytes
	return slotsOff, dataOff, dataOff + 2*int64(pages)*int64(pageSize)
}

// OpenNVM opens (or, with Create, creates) an NVM store file.
func OpenNVM(path string, o NVMOptions) (*NVM, error) {
	if o.PageSize < 4096 || o.PageSize&(o.PageSize-1) != 0 || o.Pages == 0 {
		return nil, fmt.Errorf("%w: page size %d, %d pages", ErrBadPage, o.PageSize, o.Pages)
	}
	flags := os.O_RDWR
	if o.Create {
		flags |= os.O_CREATE
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: opening NVM file: %w", err)
	}
	s, err := openNVM(f, o)
	if err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func openNVM(f *os.File, o NVMOptions) (*NVM, error) {
	slotsOff, dataOff, size := nvmLayout(o.PageSize, o.Pages)
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	want := nvmHeader{Version: nvmVersion, PageSize: uint32(o.PageSize), Pages: o.Pages, RegionID: o.RegionID}
	hb := make([]byte, o.PageSize)
	if fi.Size() == 0 {
		if !o.Create {
			return nil, fmt.Errorf("%w: %s is empty", ErrBadFile, f.Name())
		}
		if err := f.Truncate(size); err != nil {
			return nil, nvmIOErr("sizing", err)
		}
		want.encode(hb)
		if _, err := f.WriteAt(hb, 0); err != nil {
			return nil, nvmIOErr("writing the header", err)
		}
		if err := f.Sync(); err != nil {
			return nil, nvmIOErr("syncing the header", err)
		}
	} else {
		if _, err := f.ReadAt(hb[:nvmHeaderSize], 0); err != nil {
			return nil, fmt.Errorf("%w: reading the header: %v", ErrBadFile, err)
		}
		h, err := decodeNVMHeader(hb)
		if err != nil {
			return nil, err
		}
		if h.RegionID != o.RegionID {
			return nil, fmt.Errorf("%w: file belongs to region %x, not %x", ErrWrongRegion, h.RegionID, o.RegionID)
		}
		if h.PageSize != want.PageSize || h.Pages != o.Pages {
			return nil, fmt.Errorf("%w: file holds %d pages of %d bytes, region has %d of %d", ErrWrongRegion, h.Pages, h.PageSize, o.Pages, o.PageSize)
		}
		if fi.Size() < size {
			return nil, fmt.Errorf("%w: %d bytes, the region needs %d", ErrBadFile, fi.Size(), size)
		}
	}
	workers := o.Workers
	if workers <= 0 {
		workers = 4
	}
	s := &NVM{f: f, hdr: want, slotsOff: slotsOff, dataOff: dataOff, reqs: make(chan nvmReq, 4*workers)}
	for range workers {
		s.wg.Add(1)
		go s.worker()
	}
	return s, nil
}

func nvmIOErr(what string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: NVM file %s: %v", ErrFull, what, err)
	}
	return fmt.Errorf("store: NVM file %s: %w", what, err)
}

// PageSize implements Store.
func (s *NVM) PageSize() int { return int(s.hdr.PageSize) }

// Submit implements Store. The Call is queued for a worker goroutine.
func (s *NVM) Submit(ctx context.Context, c *Call) {
	CheckDone(c)
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		c.Err = ErrClosed
		c.Done <- c
		return
	}
	select {
	case s.reqs <- nvmReq{ctx, c}:
	case <-ctx.Done():
		c.Err = ctx.Err()
		c.Done <- c
	}
	s.mu.RUnlock()
}

func (s *NVM) worker() {
	defer s.wg.Done()
	var slot [8]byte
	for r := range s.reqs {
		r.c.Err = s.do(r.ctx, r.c, slot[:])
		r.c.Done <- r.c
	}
}

func (s *NVM) do(ctx context.Context, c *Call, slot []byte) error {
	ps := int64(s.hdr.PageSize)
	for i := range c.Pages {
		if err := ctx.Err(); err != nil {
			return err
		}
		pg := &c.Pages[i]
		if uint64(pg.ID) >= s.hdr.Pages || (c.Op != OpFree && int64(len(pg.Data)) != ps) {
			pg.Err = fmt.Errorf("%w: page %d (%d bytes) in a file of %d pages", ErrBadPage, pg.ID, len(pg.Data), s.hdr.Pages)
			continue
		}
		if c.Op < OpRead || c.Op > OpFree {
			return fmt.Errorf("%w: unknown op %d", ErrBadPage, c.Op)
		}
		pg.Err = s.page(c.Op, pg, slot)
	}
	return nil
}

// page does one page of a call under the page's lock.
func (s *NVM) page(op Op, pg *Page, slot []byte) error {
	ps := int64(s.hdr.PageSize)
	slotAt := s.slotsOff + int64(pg.ID)*8
	copyAt := func(k uint32) int64 { return s.dataOff + (2*int64(pg.ID)+int64(k))*ps }
	l := &s.pageLocks[uint64(pg.ID)%uint64(len(s.pageLocks))]
	if op == OpRead {
		l.RLock()
		defer l.RUnlock()
	} else {
		l.Lock()
		defer l.Unlock()
	}
	switch op {
	case OpRead:
		if _, err := s.f.ReadAt(slot, slotAt); err != nil {
			return nvmIOErr("reading a slot", err)
		}
		flags := binary.LittleEndian.Uint32(slot[4:])
		if flags&slotPresent == 0 {
			return fmt.Errorf("%w: page %d", ErrNotFound, pg.ID)
		}
		if _, err := s.f.ReadAt(pg.Data, copyAt(flags&slotCopy/slotCopy)); err != nil {
			return nvmIOErr("reading a page", err)
		}
		pg.Sum = binary.LittleEndian.Uint32(slot[:4])
		if Checksum(pg.Data) != pg.Sum {
			return fmt.Errorf("%w: page %d in the NVM file", ErrCorrupt, pg.ID)
		}
	case OpWrite:
		if Checksum(pg.Data) != pg.Sum {
			return fmt.Errorf("%w: page %d handed over with a wrong checksum", ErrCorrupt, pg.ID)
		}
		if _, err := s.f.ReadAt(slot, slotAt); err != nil {
			return nvmIOErr("reading a slot", err)
		}
		// The copy that is not current; a page never written starts on 0.
		next := uint32(0)
		if flags := binary.LittleEndian.Uint32(slot[4:]); flags&slotPresent != 0 && flags&slotCopy == 0 {
			next = 1
		}
		if _, err := s.f.WriteAt(pg.Data, copyAt(next)); err != nil {
			return nvmIOErr("writing a page", err)
		}
		binary.LittleEndian.PutUint32(slot[:4], pg.Sum)
		binary.LittleEndian.PutUint32(slot[4:], slotPresent|next*slotCopy)
		if _, err := s.f.WriteAt(slot, slotAt); err != nil {
			return nvmIOErr("writing a slot", err)
		}
	case OpFree:
		clear(slot)
		if _, err := s.f.WriteAt(slot, slotAt); err != nil {
			return nvmIOErr("clearing a slot", err)
		}
	}
	return nil
}

// Sync makes every completed write durable (fdatasync).
func (s *NVM) Sync() error {
	if err := s.f.Sync(); err != nil {
		return nvmIOErr("syncing", err)
	}
	return nil
}

// Stat implements Statter by counting present slots; it reads the whole slot
// table and is meant for tools and tests, not the hot path.
func (s *NVM) Stat(ctx context.Context) (Stats, error) {
	st := Stats{Capacity: s.hdr.Pages}
	buf := make([]byte, 64<<10)
	total := int64(s.hdr.Pages) * 8
	for off := int64(0); off < total; off += int64(len(buf)) {
		if err := ctx.Err(); err != nil {
			return st, err
		}
		n := min(int64(len(buf)), total-off)
		if _, err := s.f.ReadAt(buf[:n], s.slotsOff+off); err != nil {
			return st, nvmIOErr("reading slots", err)
		}
		for i := int64(0); i < n; i += 8 {
			if binary.LittleEndian.Uint32(buf[i+4:])&slotPresent != 0 {
				st.Pages++
			}
		}
	}
	return st, nil
}

// Close waits for queued Calls and closes the file.
func (s *NVM) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		close(s.reqs)
		s.mu.Unlock()
		s.wg.Wait()
		err = s.f.Close()
	})
	return err
}
