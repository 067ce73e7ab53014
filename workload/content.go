package workload

import (
	"encoding/binary"
	"fmt"
)

// wordStep is added per 8-byte word of the content pattern, so every word of
// a unit differs from its neighbours and a shifted copy does not verify.
const wordStep = 0xd6e8feb86659fd93

// pattern is the expected content of one unit (a page, a grain, a kv value)
// at one version: the 8-byte word at absolute byte offset o (o a multiple of
// 8) is base + (o/8)·wordStep, stored little-endian, or zero for a unit never
// written. Because the word depends on its absolute offset, a page written
// to the wrong place, a stale version and a flipped byte all fail to verify.
type pattern struct {
	base uint64
	zero bool
}

// zeroPattern is the content of bytes never written: the region starts zeroed.
var zeroPattern = pattern{zero: true}

// newPattern returns the pattern of unit at version ver (0: never written).
func newPattern(seed, unit uint64, ver uint32) pattern {
	if ver == 0 {
		return zeroPattern
	}
	return pattern{base: hash2(seed, unit, uint64(ver))}
}

func (p pattern) word(w uint64) uint64 {
	if p.zero {
		return 0
	}
	return p.base + w*wordStep
}

func (p pattern) byteAt(o int64) byte {
	return byte(p.word(uint64(o)>>3) >> (8 * (uint64(o) & 7)))
}

// fill writes the pattern's bytes for absolute offsets [off, off+len(b)).
func (p pattern) fill(b []byte, off int64) {
	i := 0
	for ; i < len(b) && (off+int64(i))&7 != 0; i++ {
		b[i] = p.byteAt(off + int64(i))
	}
	x, step := p.word(uint64(off+int64(i))>>3), uint64(wordStep)
	if p.zero {
		step = 0
	}
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], x)
		x += step
	}
	for ; i < len(b); i++ {
		b[i] = p.byteAt(off + int64(i))
	}
}

// check compares b, read from absolute offset off, with the pattern. It
// returns the number of differing bytes and the index of the first.
func (p pattern) check(b []byte, off int64) (bad, first int) {
	first = -1
	i := 0
	for ; i < len(b) && (off+int64(i))&7 != 0; i++ {
		if b[i] != p.byteAt(off+int64(i)) {
			bad++
			if first < 0 {
				first = i
			}
		}
	}
	want, step := p.word(uint64(off+int64(i))>>3), uint64(wordStep)
	if p.zero {
		step = 0
	}
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:]) ^ want
		want += step
		if x != 0 {
			for j := 0; j < 8; j++ {
				if byte(x>>(8*j)) != 0 {
					bad++
					if first < 0 {
						first = i + j
					}
				}
			}
		}
	}
	for ; i < len(b); i++ {
		if b[i] != p.byteAt(off+int64(i)) {
			bad++
			if first < 0 {
				first = i
			}
		}
	}
	return bad, first
}

// unknownVersion marks a unit whose write failed: its content is not known,
// so it is not verified until the next successful write.
const unknownVersion = ^uint32(0)

// nextVersion returns the version after v, skipping 0 (never written) and
// unknownVersion.
func nextVersion(v uint32) uint32 {
	v++
	if v == 0 || v == unknownVersion {
		v = 1
	}
	return v
}

// MaxFirstMismatches is how many mismatches Stats keeps in detail.
const MaxFirstMismatches = 8

// Mismatch describes one access whose bytes did not match the shadow model.
type Mismatch struct {
	// What names the structure that failed to verify (every mismatch is
	// found by a read): "page", "grain", "kv slot", "kv key
	// missing", "kv probe limit", "table entry".
	What string
	// Offset and Length are those of the access (the ReadAt call).
	Offset int64
	Length int
	// BadOffset is the region offset of the first differing byte, Got and
	// Want its value and the expected one; BadBytes counts the differing
	// bytes of the access.
	BadOffset int64
	Got, Want byte
	BadBytes  int
	// Zero is true when the bytes checked were all zero where data was
	// expected: the signature of a page lost and recreated empty.
	Zero bool
}

// isZero reports whether b is all zero bytes.
func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// String describes the mismatch on one line.
func (m Mismatch) String() string {
	z := ""
	if m.Zero {
		z = " (all zero)"
	}
	return fmt.Sprintf("%s read [%d,+%d): %d bad bytes, first at %d: got %#02x want %#02x%s",
		m.What, m.Offset, m.Length, m.BadBytes, m.BadOffset, m.Got, m.Want, z)
}

// Stats are the counters of a workload's measured phase.
type Stats struct {
	// Ops counts completed operations (an op of kv or pagewalk makes several
	// Memory calls).
	Ops uint64
	// Reads and Writes count operations by kind; BytesRead and BytesWritten
	// count the bytes of every Memory call, including table walks and probes.
	Reads, Writes           uint64
	BytesRead, BytesWritten uint64
	// Mismatches counts read accesses with at least one wrong byte (or a kv
	// key that could not be found); MismatchBytes counts the wrong bytes.
	Mismatches, MismatchBytes uint64
	// Lost counts the mismatches that read all zeros where data was
	// expected (Mismatch.Zero): lost pages, as opposed to damaged ones.
	Lost   uint64
	first  [MaxFirstMismatches]Mismatch
	nfirst int
}

// FirstMismatches returns the first (up to MaxFirstMismatches) mismatches.
func (s *Stats) FirstMismatches() []Mismatch {
	return append([]Mismatch(nil), s.first[:s.nfirst]...)
}

// add adds o's counters to s and keeps the first mismatches of both.
func (s *Stats) add(o *Stats) {
	s.Ops += o.Ops
	s.Reads += o.Reads
	s.Writes += o.Writes
	s.BytesRead += o.BytesRead
	s.BytesWritten += o.BytesWritten
	s.Mismatches += o.Mismatches
	s.MismatchBytes += o.MismatchBytes
	s.Lost += o.Lost
	for i := 0; i < o.nfirst && s.nfirst < MaxFirstMismatches; i++ {
		s.first[s.nfirst] = o.first[i]
		s.nfirst++
	}
}

func (s *Stats) mismatch(m Mismatch) {
	s.Mismatches++
	s.MismatchBytes += uint64(m.BadBytes)
	if m.Zero {
		s.Lost++
	}
	if s.nfirst < MaxFirstMismatches {
		s.first[s.nfirst] = m
		s.nfirst++
	}
}

// verify checks b (read at off, as part of the access [aoff, aoff+alen))
// against p and records a mismatch. It reports whether b matched.
func (s *Stats) verify(what string, p pattern, b []byte, off, aoff int64, alen int) bool {
	bad, first := p.check(b, off)
	if bad == 0 {
		return true
	}
	o := off + int64(first)
	s.mismatch(Mismatch{What: what, Offset: aoff, Length: alen, BadOffset: o,
		Got: b[first], Want: p.byteAt(o), BadBytes: bad, Zero: isZero(b)})
	return false
}

// ioCounter is the shared plumbing of every workload: counted, checked Memory calls.
type ioCounter struct{ st Stats }

func (c *ioCounter) readAt(mem Memory, b []byte, off int64) error {
	n, err := mem.ReadAt(b, off)
	c.st.BytesRead += uint64(n)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%w: read %d of %d bytes at %d", ErrShortIO, n, len(b), off)
	}
	return nil
}

func (c *ioCounter) writeAt(mem Memory, b []byte, off int64) error {
	n, err := mem.WriteAt(b, off)
	c.st.BytesWritten += uint64(n)
	if err != nil {
		return err
	}
	if n != len(b) {
		return fmt.Errorf("%w: wrote %d of %d bytes at %d", ErrShortIO, n, len(b), off)
	}
	return nil
}

// Stats returns a copy of the counters.
func (c *ioCounter) Stats() Stats { return c.st }

// ResetStats zeroes the counters (Run does it before the measured phase).
func (c *ioCounter) ResetStats() { c.st = Stats{} }
