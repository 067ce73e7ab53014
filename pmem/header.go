package pmem

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Pool geometry constants.
const (
	// Magic opens every pool file.
	Magic = "FARMEMPL"
	// Version is the on-media format version this package writes and reads.
	// 2: 32-byte journal headers (1 had 64-byte ones; package journal).
	Version = 2
	// HeaderSize is the size of the header page; the journal area follows it.
	HeaderSize = 4096
	// Unit is the allocation granule of the heap.
	Unit = 64
	// LayoutMax is the longest layout id, in bytes.
	LayoutMax = 32
	// RootNameMax is the longest root object name, in bytes.
	RootNameMax = 28

	rootSlotA = 128 // offset of root slot A in the header page
	rootSlotB = 192 // offset of root slot B
	// WatermarkOff is the offset of the journal watermark word: an 8-byte
	// commit id, owned by package journal, alone in its cache line.
	WatermarkOff = 256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var le = binary.LittleEndian

// Checksum is the CRC32C used by every on-media structure of the pool.
func Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// Header is the decoded immutable part of a pool header: the first 128 bytes
// of the file, written once at creation.
//
//	 0      8      12     16                      48      56   60   64
//	+------+------+------+-----------------------+-------+----+----+
//	|magic |vers. |flags |layout id (32, NUL pad) | size  | K  | S  |
//	+------+------+------+-----------------------+-------+----+----+
//	64            72            80            88            96      124  128
//	+-------------+-------------+-------------+-------------+--------+----+
//	|journal off  |alloc map off|heap off     |heap units   |reserved|crc |
//	+-------------+-------------+-------------+-------------+--------+----+
//
// All integers are little endian; crc is CRC32C of bytes [0, 124). K journals
// of S bytes each start at journal off; the allocation map holds one byte per
// heap unit of 64 bytes; the heap starts at heap off. Bytes 128..255 hold the
// two root slots (see RootSlot), 256..263 the journal watermark, and the rest
// of the 4 KiB header page is zero.
type Header struct {
	Version     uint32
	Flags       uint32
	Layout      string
	Size        uint64
	Journals    uint32 // K
	JournalSize uint32 // S, a multiple of 64
	JournalOff  uint64
	MapOff      uint64
	HeapOff     uint64
	HeapUnits   uint64
}

// Geometry computes the header for a pool of the given size, layout and
// journal configuration, or returns ErrBadOptions saying why not.
func Geometry(size uint64, layout string, k, s uint32) (Header, error) {
	h := Header{Version: Version, Layout: layout, Size: size, Journals: k, JournalSize: s, JournalOff: HeaderSize}
	switch {
	case len(layout) > LayoutMax || bytes.IndexByte([]byte(layout), 0) >= 0:
		return h, fmt.Errorf("%w: layout id must be at most %d bytes without NUL", ErrBadOptions, LayoutMax)
	case k < 1 || k > 1<<16:
		return h, fmt.Errorf("%w: journal count %d not in [1, 65536]", ErrBadOptions, k)
	case s < 256 || s > 1<<24 || s%CacheLine != 0:
		return h, fmt.Errorf("%w: journal size %d must be a multiple of 64 in [256, 16 MiB]", ErrBadOptions, s)
	}
	h.MapOff = h.JournalOff + uint64(k)*uint64(s)
	if size < h.MapOff+4*Unit || size > 1<<46 {
		return h, fmt.Errorf("%w: pool size %d too small for %d journals of %d bytes (or above 64 TiB)", ErrBadOptions, size, k, s)
	}
	rest := size - h.MapOff
	// units + round_up(units, 64) bytes of map <= rest, with 64-byte units.
	units := rest / (Unit + 1)
	for units > 0 && roundUp(units, CacheLine)+units*Unit > rest {
		units--
	}
	if units < 2 {
		return h, fmt.Errorf("%w: pool size %d leaves no heap", ErrBadOptions, size)
	}
	h.HeapUnits = units
	h.HeapOff = h.MapOff + roundUp(units, CacheLine)
	return h, nil
}

func roundUp(x, a uint64) uint64 { return (x + a - 1) / a * a }

// encode writes h into b[0:128].
func (h Header) encode(b []byte) {
	clear(b[:128])
	copy(b[0:8], Magic)
	le.PutUint32(b[8:], h.Version)
	le.PutUint32(b[12:], h.Flags)
	copy(b[16:48], h.Layout)
	le.PutUint64(b[48:], h.Size)
	le.PutUint32(b[56:], h.Journals)
	le.PutUint32(b[60:], h.JournalSize)
	le.PutUint64(b[64:], h.JournalOff)
	le.PutUint64(b[72:], h.MapOff)
	le.PutUint64(b[80:], h.HeapOff)
	le.PutUint64(b[88:], h.HeapUnits)
	le.PutUint32(b[124:], Checksum(b[:124]))
}

// DecodeHeader decodes and validates the pool header at the start of b,
// whose length is the size of the file. Every failure is a named error
// (ErrBadMagic, ErrBadVersion, ErrHeaderChecksum, ErrBadGeometry) marked
// ErrCorrupt; no input makes it panic.
func DecodeHeader(b []byte) (Header, error) {
	var h Header
	if len(b) < HeaderSize {
		if len(b) >= 8 && string(b[:8]) != Magic {
			return h, ErrBadMagic
		}
		return h, fmt.Errorf("%w: file of %d bytes is shorter than the header page", ErrBadGeometry, len(b))
	}
	if string(b[:8]) != Magic {
		return h, ErrBadMagic
	}
	if got, want := le.Uint32(b[124:]), Checksum(b[:124]); got != want {
		return h, fmt.Errorf("%w (stored %08x, computed %08x)", ErrHeaderChecksum, got, want)
	}
	if !allZero(b[96:124]) {
		return h, fmt.Errorf("%w: reserved header bytes are not zero", ErrBadGeometry)
	}
	h.Version = le.Uint32(b[8:])
	if h.Version != Version {
		return h, fmt.Errorf("%w: %d (this build reads %d)", ErrBadVersion, h.Version, Version)
	}
	h.Flags = le.Uint32(b[12:])
	h.Layout = string(bytes.TrimRight(b[16:48], "\x00"))
	h.Size = le.Uint64(b[48:])
	h.Journals = le.Uint32(b[56:])
	h.JournalSize = le.Uint32(b[60:])
	h.JournalOff = le.Uint64(b[64:])
	h.MapOff = le.Uint64(b[72:])
	h.HeapOff = le.Uint64(b[80:])
	h.HeapUnits = le.Uint64(b[88:])
	want, err := Geometry(h.Size, h.Layout, h.Journals, h.JournalSize)
	if err != nil {
		return h, fmt.Errorf("%w: %v", ErrBadGeometry, err)
	}
	want.Flags = h.Flags
	if want != h {
		return h, fmt.Errorf("%w: derived offsets do not match the stored ones", ErrBadGeometry)
	}
	if h.Size != uint64(len(b)) {
		return h, fmt.Errorf("%w: header says %d bytes, file has %d", ErrBadGeometry, h.Size, len(b))
	}
	return h, nil
}

// RootSlot is one of the two alternating root slots of the header page, the
// way bbolt keeps two meta pages: the valid slot with the higher sequence
// number is current, and a new root is written into the other one, so a torn
// slot write never loses the previous root. Root updates are additionally made
// through a journal transaction (see Pool.SetRoot), so they are atomic with
// the allocation they publish.
//
//	0       8       16      24                        52      60    64
//	+-------+-------+-------+--------------------------+-------+-----+
//	| seq   | off   | size  | name (28 bytes, NUL pad) |  zero | crc |
//	+-------+-------+-------+--------------------------+-------+-----+
//
// crc is CRC32C of bytes [0, 60). An all-zero slot is empty.
type RootSlot struct {
	Seq  uint64
	Off  uint64
	Size uint64
	Name string
}

func (r RootSlot) encode() []byte {
	b := make([]byte, 64)
	le.PutUint64(b[0:], r.Seq)
	le.PutUint64(b[8:], r.Off)
	le.PutUint64(b[16:], r.Size)
	copy(b[24:52], r.Name)
	le.PutUint32(b[60:], Checksum(b[:60]))
	return b
}

// decodeRootSlot returns the slot in b[0:64] and whether it is valid.
func decodeRootSlot(b []byte) (RootSlot, bool) {
	if le.Uint64(b[0:]) == 0 || le.Uint32(b[60:]) != Checksum(b[:60]) {
		return RootSlot{}, false
	}
	return RootSlot{
		Seq:  le.Uint64(b[0:]),
		Off:  le.Uint64(b[8:]),
		Size: le.Uint64(b[16:]),
		Name: string(bytes.TrimRight(b[24:52], "\x00")),
	}, true
}

// currentRoot picks the valid slot with the highest sequence number, and
// returns the offset of the other slot (where the next root goes).
func currentRoot(page []byte) (cur RootSlot, ok bool, next int) {
	a, okA := decodeRootSlot(page[rootSlotA:])
	b, okB := decodeRootSlot(page[rootSlotB:])
	switch {
	case okA && (!okB || a.Seq > b.Seq):
		return a, true, rootSlotB
	case okB:
		return b, true, rootSlotA
	}
	return RootSlot{}, false, rootSlotA
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
