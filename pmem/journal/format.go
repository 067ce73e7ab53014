package journal

import (
	"encoding/binary"
	"fmt"

	"github.com/farmem/farmem/pmem"
	"github.com/farmem/farmem/pmem/internal/crc32c"
)

// Journal states.
const (
	StateFree = 0 // no transaction (or an all-zero, never used journal)
	StateUndo = 1 // an undo transaction is active: roll its entries back
	StateRedo = 2 // a redo transaction committed: replay its entries
)

const (
	// Magic is the first word of every written journal header ("FMJ2";
	// "FMJ1" was the 64-byte header of pool format 1).
	Magic uint32 = 0x324a4d46
	// HeaderSize is the size of a journal header: half a cache line, so
	// that the first entry starts in the header's line. A 256-byte update
	// then fits five lines instead of six; every line a round flushes adds
	// to the write-back it waits for (docs/PMEM.md).
	HeaderSize = 32
	// headerSumOff is where the header checksum sits: the header's last
	// four bytes, covering the bytes before them.
	headerSumOff = HeaderSize - 4
	// EntryHeaderSize is the fixed part of an entry.
	EntryHeaderSize = 16
)

var le = binary.LittleEndian

// Header is a decoded journal header, the first 32 bytes of a journal
// (aligned to a cache line, as every journal is):
//
//	0      4     5    8      16      20     24         28    32
//	+------+-----+----+------+-------+------+----------+-----+
//	|magic |state|zero| id   | count | used | body crc | crc |
//	+------+-----+----+------+-------+------+----------+-----+
//
// id is the commit id (redo), the begin id (undo) or the last id the journal
// held (free). count entries occupy used bytes after the header. body crc is
// CRC32C of those bytes (redo only; 0 otherwise); crc is CRC32C of header
// bytes [0, 28), so a redo header is valid only if the header and every entry
// reached the media. An all-zero header is a free, never used journal.
//
// The entries that follow are
//
//	0        8     12    16
//	+--------+-----+-----+----------------------------+
//	| offset | len | crc | bytes (len, padded to 8)   |
//	+--------+-----+-----+----------------------------+
//
// holding new bytes (redo) or old bytes (undo). For undo the entry crc is
// CRC32C of (id, entry index, offset, len, bytes), so entries left over from
// an earlier transaction in the same journal never validate; undo entries
// are made durable one by one and the header is not rewritten per entry.
type Header struct {
	State   uint8
	ID      uint64
	Count   uint32
	Used    uint32
	BodyCRC uint32
}

func (h Header) encode(b []byte) {
	clear(b[:HeaderSize])
	le.PutUint32(b[0:], Magic)
	b[4] = h.State
	le.PutUint64(b[8:], h.ID)
	le.PutUint32(b[16:], h.Count)
	le.PutUint32(b[20:], h.Used)
	le.PutUint32(b[24:], h.BodyCRC)
	le.PutUint32(b[headerSumOff:], crc32c.Checksum(b[:headerSumOff]))
}

// DecodeHeader decodes the journal header at the start of j, a whole journal
// of len(j) bytes. A structurally impossible header is ErrJournalCorrupt; a
// well-formed header whose checksum (or, for redo, body checksum) fails is
// ErrTorn, with the decoded fields returned for reporting. No input panics.
func DecodeHeader(j []byte) (Header, error) {
	var h Header
	if len(j) < HeaderSize {
		return h, fmt.Errorf("%w: journal of %d bytes", ErrJournalCorrupt, len(j))
	}
	b := j[:HeaderSize]
	if isZero(b) {
		return h, nil
	}
	if m := le.Uint32(b[0:]); m != Magic {
		return h, fmt.Errorf("%w: magic %08x", ErrJournalCorrupt, m)
	}
	h.State = b[4]
	h.ID = le.Uint64(b[8:])
	h.Count = le.Uint32(b[16:])
	h.Used = le.Uint32(b[20:])
	h.BodyCRC = le.Uint32(b[24:])
	if h.State > StateRedo {
		return h, fmt.Errorf("%w: state %d", ErrJournalCorrupt, h.State)
	}
	if le.Uint32(b[headerSumOff:]) != crc32c.Checksum(b[:headerSumOff]) {
		return h, ErrTorn
	}
	if uint64(h.Used) > uint64(len(j)-HeaderSize) || uint64(h.Count)*EntryHeaderSize > uint64(h.Used) {
		return h, fmt.Errorf("%w: %d entries in %d bytes of a %d-byte journal", ErrJournalCorrupt, h.Count, h.Used, len(j))
	}
	if h.State != StateRedo && (h.Count != 0 || h.Used != 0) {
		return h, fmt.Errorf("%w: %d entries in a journal in state %d", ErrJournalCorrupt, h.Count, h.State)
	}
	if h.State == StateRedo && crc32c.Checksum(j[HeaderSize:HeaderSize+int(h.Used)]) != h.BodyCRC {
		return h, ErrTorn
	}
	return h, nil
}

func isZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func pad8(n int) int { return (n + 7) &^ 7 }

// entrySize is the space an entry of n data bytes takes.
func entrySize(n int) int { return EntryHeaderSize + pad8(n) }

// undoCRC is the checksum of an undo entry: it binds the entry to its
// transaction id and position.
func undoCRC(id uint64, idx uint32, off uint64, data []byte) uint32 {
	var pre [24]byte
	le.PutUint64(pre[0:], id)
	le.PutUint32(pre[8:], idx)
	le.PutUint64(pre[12:], off)
	le.PutUint32(pre[20:], uint32(len(data)))
	c := crc32c.Update(0, pre[:])
	return crc32c.Update(c, data)
}

// putEntry encodes an entry at b (which must have room) and returns its size.
func putEntry(b []byte, off uint64, data []byte, crc uint32) int {
	le.PutUint64(b[0:], off)
	le.PutUint32(b[8:], uint32(len(data)))
	le.PutUint32(b[12:], crc)
	copy(b[EntryHeaderSize:], data)
	n := entrySize(len(data))
	clear(b[EntryHeaderSize+len(data) : n])
	return n
}

// Entry is one decoded journal entry. Data aliases the journal.
type Entry struct {
	Off  uint64
	Data []byte
}

// DecodeEntries decodes the entries of a journal body (the bytes after the
// header). For redo (undoID == 0) it decodes exactly count entries filling
// used bytes and returns ErrEntryCorrupt if they do not. For undo it decodes
// entries while their checksum (bound to undoID) validates and stops at the
// first that does not, which is where the interrupted transaction stopped
// logging. Every entry must lie inside [0, poolSize). No input panics.
func DecodeEntries(body []byte, count, used uint32, undoID uint64, poolSize uint64) ([]Entry, error) {
	var out []Entry
	pos := 0
	limit := len(body)
	if undoID == 0 {
		if int(used) > len(body) {
			return nil, fmt.Errorf("%w: used %d beyond the journal", ErrEntryCorrupt, used)
		}
		limit = int(used)
	}
	for i := uint32(0); ; i++ {
		if undoID == 0 && i == count {
			break
		}
		if pos+EntryHeaderSize > limit {
			if undoID != 0 {
				break
			}
			return nil, fmt.Errorf("%w: entry %d header beyond used bytes", ErrEntryCorrupt, i)
		}
		off := le.Uint64(body[pos:])
		n := le.Uint32(body[pos+8:])
		crc := le.Uint32(body[pos+12:])
		if uint64(n) > uint64(limit-pos-EntryHeaderSize) || off > poolSize || uint64(n) > poolSize-off {
			if undoID != 0 {
				break
			}
			return nil, fmt.Errorf("%w: entry %d [%d,+%d)", ErrEntryCorrupt, i, off, n)
		}
		data := body[pos+EntryHeaderSize : pos+EntryHeaderSize+int(n)]
		if undoID != 0 && (n == 0 || crc != undoCRC(undoID, i, off, data)) {
			break
		}
		out = append(out, Entry{Off: off, Data: data})
		pos += entrySize(int(n))
	}
	if undoID == 0 && pos != int(used) {
		return nil, fmt.Errorf("%w: entries fill %d bytes, header says %d", ErrEntryCorrupt, pos, used)
	}
	return out, nil
}

// Info describes one journal for Inspect and `farmem pmem check`.
type Info struct {
	Index   int
	Off     uint64
	Header  Header
	Entries int
	// Status is "free", "unused", "undo-active", "redo-pending" (will be
	// replayed), "redo-applied" (id <= watermark, ignored) or "torn".
	Status string
	Err    error // ErrJournalCorrupt / ErrEntryCorrupt, or nil
}

// Inspect decodes every journal of the pool in mem (read-only) and the
// watermark. Corruption is reported per journal in Info.Err and, for the
// first one found, as the error result (marked pmem.ErrCorrupt).
func Inspect(mem []byte, h pmem.Header) (watermark uint64, infos []Info, err error) {
	watermark = le.Uint64(mem[pmem.WatermarkOff:])
	for i := 0; i < int(h.Journals); i++ {
		off := h.JournalOff + uint64(i)*uint64(h.JournalSize)
		j := mem[off : off+uint64(h.JournalSize)]
		inf := Info{Index: i, Off: off}
		hd, derr := DecodeHeader(j)
		inf.Header = hd
		switch {
		case derr == ErrTorn:
			inf.Status = "torn"
		case derr != nil:
			inf.Status = "corrupt"
			inf.Err = derr
		case isZero(j[:HeaderSize]):
			inf.Status = "unused"
		case hd.State == StateFree:
			inf.Status = "free"
		case hd.State == StateUndo:
			inf.Status = "undo-active"
			es, _ := DecodeEntries(j[HeaderSize:], 0, 0, hd.ID, h.Size)
			inf.Entries = len(es)
		case hd.ID <= watermark:
			inf.Status = "redo-applied"
		default:
			inf.Status = "redo-pending"
			es, eerr := DecodeEntries(j[HeaderSize:], hd.Count, hd.Used, 0, h.Size)
			inf.Entries = len(es)
			if eerr != nil {
				inf.Status = "corrupt"
				inf.Err = eerr
			}
		}
		if inf.Err == nil && (inf.Status == "redo-pending" || inf.Status == "undo-active") {
			if e := checkEntries(j, hd, h); e != nil {
				inf.Status, inf.Err = "corrupt", e
			}
		}
		if inf.Err != nil && err == nil {
			err = fmt.Errorf("journal %d at offset %d: %w", i, off, inf.Err)
		}
		infos = append(infos, inf)
	}
	return watermark, infos, err
}

// writable reports whether a transaction may write [off, off+n): the
// allocation map and heap, or the root slots.
func writable(h pmem.Header, off, n uint64) bool {
	if off > h.Size || n > h.Size-off {
		return false
	}
	return off >= h.MapOff || (off >= 128 && off+n <= 256)
}

// checkEntries returns ErrEntryCorrupt if an entry of an active journal
// targets memory no transaction may write (the header or journal area).
func checkEntries(j []byte, hd Header, h pmem.Header) error {
	var es []Entry
	if hd.State == StateUndo {
		es, _ = DecodeEntries(j[HeaderSize:], 0, 0, hd.ID, h.Size)
	} else {
		es, _ = DecodeEntries(j[HeaderSize:], hd.Count, hd.Used, 0, h.Size)
	}
	for i, e := range es {
		if !writable(h, e.Off, uint64(len(e.Data))) {
			return fmt.Errorf("%w: entry %d targets [%d,+%d), outside the writable pool", ErrEntryCorrupt, i, e.Off, len(e.Data))
		}
	}
	return nil
}
