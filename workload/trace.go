package workload

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
)

// Limits of the trace formats, checked by every decoder and encoder.
const (
	// DefaultTraceLength is the length of a text access that names none.
	DefaultTraceLength = 4096
	// MaxTraceOffset bounds Offset+Length of an access.
	MaxTraceOffset = 1 << 50
	// MaxTraceLength bounds the length of one access.
	MaxTraceLength = 1 << 30
	// MaxTextLine is the longest text line accepted, in bytes.
	MaxTextLine = 4096
)

// Access is one record of a trace: a read or a write of Length bytes at
// byte offset Offset.
type Access struct {
	Write  bool
	Offset int64
	Length int64
}

// String formats the access as a line of the text form.
func (a Access) String() string {
	op := "R"
	if a.Write {
		op = "W"
	}
	return fmt.Sprintf("%s %d %d", op, a.Offset, a.Length)
}

func (a Access) check() error {
	if a.Length <= 0 || a.Length > MaxTraceLength || a.Offset < 0 || a.Offset > MaxTraceOffset-a.Length {
		return fmt.Errorf("%w: %v (want 0 < length ≤ %d, offset+length ≤ %d)", ErrTraceOutOfRange, a, int64(MaxTraceLength), int64(MaxTraceOffset))
	}
	return nil
}

// Format is a trace encoding.
type Format int

// The trace formats.
const (
	Text Format = iota + 1
	Binary
)

// String returns "text" or "binary".
func (f Format) String() string {
	switch f {
	case Text:
		return "text"
	case Binary:
		return "binary"
	}
	return "format?"
}

// ParseFormat parses "text" or "binary".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "text", "txt":
		return Text, nil
	case "binary", "bin":
		return Binary, nil
	}
	return 0, fmt.Errorf("%w: trace format %q (want text or binary)", ErrTraceFormat, s)
}

// TraceReader yields the accesses of a trace in order; Next returns io.EOF
// after the last one and a named error (ErrTraceSyntax, ErrTraceTruncated,
// ErrTraceOutOfRange, ErrTraceFormat) for a damaged trace.
type TraceReader interface {
	Next() (Access, error)
}

// TraceWriter encodes accesses; Close finishes the trace (the binary form
// writes its trailer) and flushes, without closing the underlying writer.
type TraceWriter interface {
	Write(a Access) error
	Close() error
}

// NewTraceReader detects the format of r by its first bytes (the binary
// magic, or else text) and returns a reader for it.
func NewTraceReader(r io.Reader) (TraceReader, Format, error) {
	br := bufio.NewReaderSize(r, MaxTextLine)
	head, err := br.Peek(len(binaryMagic))
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, 0, fmt.Errorf("%w: %w", ErrTraceIO, err)
	}
	if bytes.Equal(head, []byte(binaryMagic)) {
		return newBinaryReader(br), Binary, nil
	}
	return newTextReader(br), Text, nil
}

// NewTraceWriter returns a writer of format f on w.
func NewTraceWriter(w io.Writer, f Format) (TraceWriter, error) {
	switch f {
	case Text:
		return NewTextWriter(w), nil
	case Binary:
		return NewBinaryWriter(w, DefaultTraceLength), nil
	}
	return nil, fmt.Errorf("%w: %v", ErrTraceFormat, f)
}

// Convert reads a trace in either format from src and writes it to dst in
// format to, returning the number of accesses.
func Convert(dst io.Writer, src io.Reader, to Format) (int64, error) {
	r, _, err := NewTraceReader(src)
	if err != nil {
		return 0, err
	}
	w, err := NewTraceWriter(dst, to)
	if err != nil {
		return 0, err
	}
	var n int64
	for {
		a, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return n, err
		}
		if err := w.Write(a); err != nil {
			return n, err
		}
		n++
	}
	return n, w.Close()
}

// TextReader decodes the text form: one access per line,
//
//	R|W <offset> [length]
//
// with decimal or 0x-prefixed hexadecimal numbers separated by spaces or
// tabs, a length of DefaultTraceLength when omitted, # starting a comment
// that runs to the end of the line, and blank lines ignored. The letters
// may be lower case. Errors name the line.
type TextReader struct {
	r    *bufio.Reader
	line int
}

// NewTextReader returns a TextReader on r.
func NewTextReader(r io.Reader) *TextReader {
	return newTextReader(bufio.NewReaderSize(r, MaxTextLine))
}

func newTextReader(br *bufio.Reader) *TextReader { return &TextReader{r: br} }

func (d *TextReader) syntax(format string, args ...any) error {
	return fmt.Errorf("%w: line %d: %s", ErrTraceSyntax, d.line, fmt.Sprintf(format, args...))
}

// Next returns the next access, or io.EOF at the end.
func (d *TextReader) Next() (Access, error) {
	for {
		line, err := d.r.ReadSlice('\n')
		if len(line) == 0 && err == io.EOF {
			return Access{}, io.EOF
		}
		d.line++
		if errors.Is(err, bufio.ErrBufferFull) {
			return Access{}, d.syntax("line longer than %d bytes", MaxTextLine)
		}
		if err != nil && err != io.EOF {
			return Access{}, fmt.Errorf("%w: line %d: %w", ErrTraceIO, d.line, err)
		}
		if i := bytes.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		var f [4][]byte
		nf := 0
		for len(line) > 0 {
			line = trimSpace(line)
			if len(line) == 0 {
				break
			}
			j := 0
			for j < len(line) && !isSpace(line[j]) {
				j++
			}
			if nf == len(f) {
				return Access{}, d.syntax("too many fields")
			}
			f[nf] = line[:j]
			nf++
			line = line[j:]
		}
		if nf == 0 {
			continue
		}
		var a Access
		switch {
		case len(f[0]) == 1 && (f[0][0] == 'R' || f[0][0] == 'r'):
		case len(f[0]) == 1 && (f[0][0] == 'W' || f[0][0] == 'w'):
			a.Write = true
		default:
			return Access{}, d.syntax("op %q is not R or W", f[0])
		}
		if nf < 2 {
			return Access{}, d.syntax("missing offset")
		}
		if nf > 3 {
			return Access{}, d.syntax("too many fields")
		}
		var ok bool
		if a.Offset, ok = parseNum(f[1]); !ok {
			return Access{}, d.syntax("bad offset %q", f[1])
		}
		a.Length = DefaultTraceLength
		if nf == 3 {
			if a.Length, ok = parseNum(f[2]); !ok {
				return Access{}, d.syntax("bad length %q", f[2])
			}
			if a.Length == 0 {
				return Access{}, d.syntax("zero length")
			}
		}
		if err := a.check(); err != nil {
			return Access{}, fmt.Errorf("line %d: %w", d.line, err)
		}
		return a, nil
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f'
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	return b
}

// parseNum parses a decimal or 0x hexadecimal number up to MaxTraceOffset
// without allocating.
func parseNum(b []byte) (int64, bool) {
	base := int64(10)
	if len(b) > 2 && b[0] == '0' && (b[1] == 'x' || b[1] == 'X') {
		base, b = 16, b[2:]
	}
	if len(b) == 0 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		var d int64
		switch {
		case c >= '0' && c <= '9':
			d = int64(c - '0')
		case base == 16 && c >= 'a' && c <= 'f':
			d = int64(c-'a') + 10
		case base == 16 && c >= 'A' && c <= 'F':
			d = int64(c-'A') + 10
		default:
			return 0, false
		}
		v = v*base + d
		if v > MaxTraceOffset {
			return 0, false
		}
	}
	return v, true
}

// TextWriter encodes the text form (see TextReader). It omits the length
// when it is DefaultTraceLength.
type TextWriter struct {
	w       *bufio.Writer
	started bool
	buf     []byte
}

// NewTextWriter returns a TextWriter on w.
func NewTextWriter(w io.Writer) *TextWriter {
	return &TextWriter{w: bufio.NewWriter(w), buf: make([]byte, 0, 64)}
}

// Write encodes one access.
func (t *TextWriter) Write(a Access) error {
	if err := a.check(); err != nil {
		return err
	}
	if !t.started {
		t.started = true
		if _, err := t.w.WriteString("# farmem trace (text): R|W <offset> [length, default 4096]\n"); err != nil {
			return err
		}
	}
	b := t.buf[:0]
	if a.Write {
		b = append(b, 'W', ' ')
	} else {
		b = append(b, 'R', ' ')
	}
	b = strconv.AppendInt(b, a.Offset, 10)
	if a.Length != DefaultTraceLength {
		b = append(b, ' ')
		b = strconv.AppendInt(b, a.Length, 10)
	}
	b = append(b, '\n')
	t.buf = b
	_, err := t.w.Write(b)
	return err
}

// Close flushes the writer.
func (t *TextWriter) Close() error { return t.w.Flush() }

const (
	binaryMagic      = "FMTR"
	binaryVersion    = 1
	binaryHeaderSize = 16
)

// The binary form, written by BinaryWriter and read by BinaryReader. All
// integers are little-endian; uvarint is encoding/binary's unsigned varint.
//
//	header, 16 bytes:
//	 0       4         6         8                12            16
//	 +-------+---------+---------+----------------+-------------+
//	 | FMTR  | version | flags   | default length | reserved    |
//	 |       | u16 = 1 | u16 = 0 | u32            | u32 = 0     |
//	 +-------+---------+---------+----------------+-------------+
//
//	record, 1 to 20 bytes:
//	 +---------------------------------------------+-----------------+
//	 | uvarint h = zigzag(offset - prevEnd)<<2     | uvarint length  |
//	 |             | hasLength<<1 | isWrite        | iff hasLength   |
//	 +---------------------------------------------+-----------------+
//	   prevEnd = offset + length of the previous record (0 at first);
//	   without hasLength the length is the header's default length.
//	   A sequential scan of default-length accesses is one byte each.
//
//	trailer:
//	 +------+------+----------------+----------------------------------+
//	 | 0x02 | 0x00 | uvarint count  | CRC32C u32 of all bytes before   |
//	 +------+------+----------------+----------------------------------+
//	   an end marker (hasLength with length 0, which no access has), the
//	   number of records, and a checksum; nothing may follow. A file cut
//	   anywhere before the end of the trailer is ErrTraceTruncated.

// BinaryReader decodes the binary form (see the diagram above
// BinaryReader's methods in trace.go and docs/WORKLOADS.md).
type BinaryReader struct {
	r       *bufio.Reader
	crc     uint32
	defLen  int64
	prevEnd int64
	n       uint64
	started bool
	done    bool
	err     error
	one     [1]byte
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// NewBinaryReader returns a BinaryReader on r.
func NewBinaryReader(r io.Reader) *BinaryReader { return newBinaryReader(bufio.NewReader(r)) }

func newBinaryReader(br *bufio.Reader) *BinaryReader { return &BinaryReader{r: br} }

func (d *BinaryReader) header() error {
	var h [binaryHeaderSize]byte
	if n, err := io.ReadFull(d.r, h[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: header is %d of %d bytes", ErrTraceTruncated, n, binaryHeaderSize)
		}
		return fmt.Errorf("%w: header: %w", ErrTraceIO, err)
	}
	d.crc = crc32.Update(0, crcTable, h[:])
	switch {
	case string(h[0:4]) != binaryMagic:
		return fmt.Errorf("%w: magic %q, want %q", ErrTraceFormat, h[0:4], binaryMagic)
	case binary.LittleEndian.Uint16(h[4:]) != binaryVersion:
		return fmt.Errorf("%w: version %d, want %d", ErrTraceFormat, binary.LittleEndian.Uint16(h[4:]), binaryVersion)
	case binary.LittleEndian.Uint16(h[6:]) != 0 || binary.LittleEndian.Uint32(h[12:]) != 0:
		return fmt.Errorf("%w: unknown flags or reserved bits set", ErrTraceFormat)
	}
	d.defLen = int64(binary.LittleEndian.Uint32(h[8:]))
	if d.defLen > MaxTraceLength {
		return fmt.Errorf("%w: default length %d beyond %d", ErrTraceOutOfRange, d.defLen, int64(MaxTraceLength))
	}
	return nil
}

// uvarint reads one uvarint and folds its bytes into the checksum.
func (d *BinaryReader) uvarint(what string) (uint64, error) {
	var x uint64
	var s uint
	for i := 0; i < binary.MaxVarintLen64; i++ {
		c, err := d.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				if i == 0 && what == "record" {
					return 0, fmt.Errorf("%w: no end marker after %d records", ErrTraceTruncated, d.n)
				}
				return 0, fmt.Errorf("%w: inside %s %d", ErrTraceTruncated, what, d.n)
			}
			return 0, fmt.Errorf("%w: %w", ErrTraceIO, err)
		}
		d.one[0] = c
		d.crc = crc32.Update(d.crc, crcTable, d.one[:])
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			return x | uint64(c)<<s, nil
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	return 0, fmt.Errorf("%w: varint overflows in %s %d", ErrTraceSyntax, what, d.n)
}

// Next returns the next access, or io.EOF after the trailer.
func (d *BinaryReader) Next() (Access, error) {
	if d.err != nil {
		return Access{}, d.err
	}
	a, err := d.next()
	if err != nil {
		d.err = err
	}
	return a, err
}

func (d *BinaryReader) next() (Access, error) {
	if d.done {
		return Access{}, io.EOF
	}
	if !d.started {
		d.started = true
		if err := d.header(); err != nil {
			return Access{}, err
		}
	}
	h, err := d.uvarint("record")
	if err != nil {
		return Access{}, err
	}
	a := Access{Write: h&1 != 0, Length: d.defLen}
	if h&2 != 0 {
		l, err := d.uvarint("record")
		if err != nil {
			return Access{}, err
		}
		if l == 0 {
			if h != 2 {
				return Access{}, fmt.Errorf("%w: record %d has zero length", ErrTraceSyntax, d.n)
			}
			return Access{}, d.trailer()
		}
		if l > MaxTraceLength {
			return Access{}, fmt.Errorf("%w: record %d length %d beyond %d", ErrTraceOutOfRange, d.n, l, int64(MaxTraceLength))
		}
		a.Length = int64(l)
	} else if a.Length == 0 {
		return Access{}, fmt.Errorf("%w: record %d has no length and the header no default", ErrTraceSyntax, d.n)
	}
	z := h >> 2
	delta := int64(z>>1) ^ -int64(z&1)
	off := d.prevEnd + delta // prevEnd ≤ 2^50 and |delta| < 2^62: no overflow
	a.Offset = off
	if err := a.check(); err != nil {
		return Access{}, fmt.Errorf("record %d: %w", d.n, err)
	}
	d.prevEnd = a.Offset + a.Length
	d.n++
	return a, nil
}

func (d *BinaryReader) trailer() error {
	count, err := d.uvarint("trailer")
	if err != nil {
		return err
	}
	want := d.crc
	var sum [4]byte
	if _, err := io.ReadFull(d.r, sum[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: inside the trailer checksum", ErrTraceTruncated)
		}
		return fmt.Errorf("%w: %w", ErrTraceIO, err)
	}
	if count != d.n {
		return fmt.Errorf("%w: trailer counts %d records, read %d", ErrTraceFormat, count, d.n)
	}
	if got := binary.LittleEndian.Uint32(sum[:]); got != want {
		return fmt.Errorf("%w: checksum %#08x, computed %#08x", ErrTraceFormat, got, want)
	}
	if _, err := d.r.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: data after the end marker", ErrTraceSyntax)
	}
	d.done = true
	return io.EOF
}

// BinaryWriter encodes the binary form.
type BinaryWriter struct {
	w       *bufio.Writer
	crc     uint32
	defLen  int64
	prevEnd int64
	n       uint64
	started bool
	buf     [2 * binary.MaxVarintLen64]byte
}

// NewBinaryWriter returns a BinaryWriter on w whose header names
// defaultLength (at most MaxTraceLength; 0 writes every length).
func NewBinaryWriter(w io.Writer, defaultLength uint32) *BinaryWriter {
	if int64(defaultLength) > MaxTraceLength {
		defaultLength = 0
	}
	return &BinaryWriter{w: bufio.NewWriter(w), defLen: int64(defaultLength)}
}

func (e *BinaryWriter) put(b []byte) error {
	e.crc = crc32.Update(e.crc, crcTable, b)
	_, err := e.w.Write(b)
	return err
}

func (e *BinaryWriter) start() error {
	if e.started {
		return nil
	}
	e.started = true
	var h [binaryHeaderSize]byte
	copy(h[:], binaryMagic)
	binary.LittleEndian.PutUint16(h[4:], binaryVersion)
	binary.LittleEndian.PutUint32(h[8:], uint32(e.defLen))
	return e.put(h[:])
}

// Write encodes one access.
func (e *BinaryWriter) Write(a Access) error {
	if err := a.check(); err != nil {
		return err
	}
	if err := e.start(); err != nil {
		return err
	}
	d := a.Offset - e.prevEnd
	h := uint64(d<<1^d>>63) << 2
	if a.Write {
		h |= 1
	}
	hasLen := a.Length != e.defLen
	if hasLen {
		h |= 2
	}
	n := binary.PutUvarint(e.buf[:], h)
	if hasLen {
		n += binary.PutUvarint(e.buf[n:], uint64(a.Length))
	}
	e.prevEnd = a.Offset + a.Length
	e.n++
	return e.put(e.buf[:n])
}

// Close writes the trailer and flushes.
func (e *BinaryWriter) Close() error {
	if err := e.start(); err != nil {
		return err
	}
	b := append(e.buf[:0], 0x02, 0x00)
	b = binary.AppendUvarint(b, e.n)
	if err := e.put(b); err != nil {
		return err
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], e.crc)
	if _, err := e.w.Write(sum[:]); err != nil {
		return err
	}
	return e.w.Flush()
}
