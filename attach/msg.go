package attach

import (
	"encoding/binary"
	"fmt"
)

// Version is the protocol version this package speaks.
const Version = 1

// Limits of the variable fields.
const (
	// MaxName is the longest application name in a Hello.
	MaxName = 64
	// MaxText is the longest text in an Error or Bye.
	MaxText = 256
	// HeaderSize is the size of the message header.
	HeaderSize = 8
	// MaxMessage bounds a whole message (header and payload); a receiver
	// needs a buffer of this size.
	MaxMessage = HeaderSize + 4 + MaxText
)

// magic opens every message: "FMAT" (farmem attach).
var magic = [4]byte{'F', 'M', 'A', 'T'}

// Type is the kind of a message.
type Type uint8

// Message types, with the direction they travel in.
const (
	TypeHello    Type = 1 // app → pager: versions, name
	TypeWelcome  Type = 2 // pager → app: version, page size, limits, wanted uffd features and modes
	TypeAlloc    Type = 3 // app → pager: region size and page size
	TypeRegion   Type = 4 // pager → app: region id, size, page size; carries the memfd
	TypeRegister Type = 5 // app → pager: mapping address and length, features and modes; carries the uffd
	TypeReattach Type = 6 // app → new pager: region id, address, length ...; carries memfd and uffd
	TypeReady    Type = 7 // pager → app: region id; the region is served
	TypeError    Type = 8 // either way during the handshake: code and text; the sender then closes
	TypeBye      Type = 9 // either way after Ready: code and text; the sender then closes
)

// String returns the message type's name.
func (t Type) String() string {
	switch t {
	case TypeHello:
		return "hello"
	case TypeWelcome:
		return "welcome"
	case TypeAlloc:
		return "alloc"
	case TypeRegion:
		return "region"
	case TypeRegister:
		return "register"
	case TypeReattach:
		return "reattach"
	case TypeReady:
		return "ready"
	case TypeError:
		return "error"
	case TypeBye:
		return "bye"
	}
	return fmt.Sprintf("type %d", uint8(t))
}

// FDs returns how many descriptors travel with a message of type t
// (SCM_RIGHTS on the same record): 1 for Region (the memfd) and Register (the
// userfaultfd), 2 for Reattach (memfd, then userfaultfd), 0 otherwise.
func (t Type) FDs() int {
	switch t {
	case TypeRegion, TypeRegister:
		return 1
	case TypeReattach:
		return 2
	}
	return 0
}

// fixed payload sizes; -1 marks the variable ones.
func payloadSize(t Type) int {
	switch t {
	case TypeHello:
		return -1
	case TypeWelcome:
		return 2 + 2 + 4 + 8 + 8 + 8
	case TypeAlloc:
		return 8 + 4 + 4
	case TypeRegion:
		return 8 + 8 + 4 + 4
	case TypeRegister:
		return 8 + 8 + 8 + 8
	case TypeReattach:
		return 8 + 8 + 8 + 4 + 4 + 8 + 8
	case TypeReady:
		return 8
	case TypeError, TypeBye:
		return -1
	}
	return -2
}

// Message is one message of the attach protocol. Each type uses some of the
// fields (listed below); the others must be zero. Every message is one
// SOCK_SEQPACKET record, descriptors travel as SCM_RIGHTS on the record of
// the message that names them, and all integers are little-endian.
//
// Header, 8 bytes, then the payload:
//
//	 0       1       2       3       4       5       6       7       8
//	+-------+-------+-------+-------+-------+-------+-------+-------+
//	|  'F'  |  'M'  |  'A'  |  'T'  | type  |   0   | payload length|
//	+-------+-------+-------+-------+-------+-------+-------+-------+
//
// Payloads (offsets within the payload; "0" marks reserved zero fields):
//
//	Hello     0 min version u16 | 2 max version u16 | 4 flags u32 = 0 |
//	          8 name length u8  | 9 name (≤ 64 bytes)
//	Welcome   0 version u16 | 2 0 u16 | 4 page size u32 | 8 max size u64 |
//	          16 uffd features u64 | 24 register modes u64             (32)
//	Alloc     0 size u64 | 8 page size u32 (0: pager's) | 12 0 u32     (16)
//	Region    0 region id u64 | 8 size u64 | 16 page size u32 | 20 0 u32 (24)
//	          + SCM_RIGHTS [memfd]
//	Register  0 address u64 | 8 length u64 | 16 features u64 | 24 modes u64 (32)
//	          + SCM_RIGHTS [userfaultfd]
//	Reattach  0 region id u64 | 8 address u64 | 16 length u64 |
//	          24 page size u32 | 28 0 u32 | 32 features u64 | 40 modes u64 (48)
//	          + SCM_RIGHTS [memfd, userfaultfd]
//	Ready     0 region id u64                                            (8)
//	Error,Bye 0 code u16 | 2 text length u16 | 4 text (≤ 256 bytes)
type Message struct {
	Type Type
	// MinVersion and MaxVersion: Hello, the versions the application speaks.
	MinVersion, MaxVersion uint16
	// Name: Hello, a label for the pager's logs.
	Name string
	// Version: Welcome, the version chosen.
	Version uint16
	// PageSize: Welcome, Alloc, Region, Reattach.
	PageSize uint32
	// MaxSize: Welcome, the largest region the pager accepts.
	MaxSize uint64
	// Features: Welcome (wanted), Register and Reattach (enabled): the
	// userfaultfd feature bits (uffd.Features).
	Features uint64
	// Modes: Welcome (wanted), Register and Reattach (registered): the
	// userfaultfd register modes (uffd.Mode).
	Modes uint64
	// Size: Alloc, Region, Register and Reattach (the mapping's length).
	Size uint64
	// RegionID: Region, Reattach, Ready.
	RegionID uint64
	// Addr: Register, Reattach: the application's mapping address.
	Addr uint64
	// Code and Text: Error, Bye.
	Code Code
	Text string
}

var le = binary.LittleEndian

// Append encodes m after dst. It fails with ErrFrame when a variable field is
// too long and with ErrUnknownType for an unknown type. Fields the type
// does not use are not encoded.
func Append(dst []byte, m *Message) ([]byte, error) {
	size := payloadSize(m.Type)
	switch m.Type {
	case TypeHello:
		if len(m.Name) > MaxName {
			return dst, fmt.Errorf("%w: name of %d bytes (max %d)", ErrFrame, len(m.Name), MaxName)
		}
		size = 9 + len(m.Name)
	case TypeError, TypeBye:
		if len(m.Text) > MaxText {
			return dst, fmt.Errorf("%w: text of %d bytes (max %d)", ErrFrame, len(m.Text), MaxText)
		}
		size = 4 + len(m.Text)
	}
	if size < 0 {
		return dst, fmt.Errorf("%w: %v", ErrUnknownType, m.Type)
	}
	dst = append(dst, magic[:]...)
	dst = append(dst, byte(m.Type), 0)
	dst = le.AppendUint16(dst, uint16(size))
	switch m.Type {
	case TypeHello:
		dst = le.AppendUint16(dst, m.MinVersion)
		dst = le.AppendUint16(dst, m.MaxVersion)
		dst = le.AppendUint32(dst, 0)
		dst = append(dst, byte(len(m.Name)))
		dst = append(dst, m.Name...)
	case TypeWelcome:
		dst = le.AppendUint16(dst, m.Version)
		dst = le.AppendUint16(dst, 0)
		dst = le.AppendUint32(dst, m.PageSize)
		dst = le.AppendUint64(dst, m.MaxSize)
		dst = le.AppendUint64(dst, m.Features)
		dst = le.AppendUint64(dst, m.Modes)
	case TypeAlloc:
		dst = le.AppendUint64(dst, m.Size)
		dst = le.AppendUint32(dst, m.PageSize)
		dst = le.AppendUint32(dst, 0)
	case TypeRegion:
		dst = le.AppendUint64(dst, m.RegionID)
		dst = le.AppendUint64(dst, m.Size)
		dst = le.AppendUint32(dst, m.PageSize)
		dst = le.AppendUint32(dst, 0)
	case TypeRegister:
		dst = le.AppendUint64(dst, m.Addr)
		dst = le.AppendUint64(dst, m.Size)
		dst = le.AppendUint64(dst, m.Features)
		dst = le.AppendUint64(dst, m.Modes)
	case TypeReattach:
		dst = le.AppendUint64(dst, m.RegionID)
		dst = le.AppendUint64(dst, m.Addr)
		dst = le.AppendUint64(dst, m.Size)
		dst = le.AppendUint32(dst, m.PageSize)
		dst = le.AppendUint32(dst, 0)
		dst = le.AppendUint64(dst, m.Features)
		dst = le.AppendUint64(dst, m.Modes)
	case TypeReady:
		dst = le.AppendUint64(dst, m.RegionID)
	case TypeError, TypeBye:
		dst = le.AppendUint16(dst, uint16(m.Code))
		dst = le.AppendUint16(dst, uint16(len(m.Text)))
		dst = append(dst, m.Text...)
	}
	return dst, nil
}

// Decode decodes one whole record. It never panics; a record that is not
// exactly one well-formed message fails with ErrFrame (or ErrUnknownType).
// Decoding is strict, so that Append(Decode(b)) == b for every accepted b.
func Decode(b []byte) (Message, error) {
	var m Message
	if len(b) < HeaderSize {
		return m, fmt.Errorf("%w: %d bytes, shorter than the header", ErrFrame, len(b))
	}
	if [4]byte(b[:4]) != magic {
		return m, fmt.Errorf("%w: bad magic %q", ErrFrame, b[:4])
	}
	m.Type = Type(b[4])
	if b[5] != 0 {
		return m, fmt.Errorf("%w: reserved header byte %#x", ErrFrame, b[5])
	}
	n := int(le.Uint16(b[6:]))
	p := b[HeaderSize:]
	if n != len(p) {
		return m, fmt.Errorf("%w: %v: payload length %d, record carries %d", ErrFrame, m.Type, n, len(p))
	}
	want := payloadSize(m.Type)
	if want == -2 {
		return m, fmt.Errorf("%w: %d", ErrUnknownType, b[4])
	}
	if want >= 0 && n != want {
		return m, fmt.Errorf("%w: %v payload of %d bytes, want %d", ErrFrame, m.Type, n, want)
	}
	reserved := func(v uint64) error {
		if v != 0 {
			return fmt.Errorf("%w: %v: reserved field %#x", ErrFrame, m.Type, v)
		}
		return nil
	}
	var err error
	switch m.Type {
	case TypeHello:
		if n < 9 {
			return m, fmt.Errorf("%w: hello payload of %d bytes", ErrFrame, n)
		}
		m.MinVersion, m.MaxVersion = le.Uint16(p), le.Uint16(p[2:])
		err = reserved(uint64(le.Uint32(p[4:])))
		nl := int(p[8])
		if nl > MaxName || 9+nl != n {
			return m, fmt.Errorf("%w: hello name length %d in a payload of %d", ErrFrame, nl, n)
		}
		m.Name = string(p[9:])
		if err == nil && m.MinVersion > m.MaxVersion {
			err = fmt.Errorf("%w: hello versions %d..%d", ErrFrame, m.MinVersion, m.MaxVersion)
		}
	case TypeWelcome:
		m.Version = le.Uint16(p)
		err = reserved(uint64(le.Uint16(p[2:])))
		m.PageSize, m.MaxSize = le.Uint32(p[4:]), le.Uint64(p[8:])
		m.Features, m.Modes = le.Uint64(p[16:]), le.Uint64(p[24:])
	case TypeAlloc:
		m.Size, m.PageSize = le.Uint64(p), le.Uint32(p[8:])
		err = reserved(uint64(le.Uint32(p[12:])))
	case TypeRegion:
		m.RegionID, m.Size, m.PageSize = le.Uint64(p), le.Uint64(p[8:]), le.Uint32(p[16:])
		err = reserved(uint64(le.Uint32(p[20:])))
	case TypeRegister:
		m.Addr, m.Size, m.Features, m.Modes = le.Uint64(p), le.Uint64(p[8:]), le.Uint64(p[16:]), le.Uint64(p[24:])
	case TypeReattach:
		m.RegionID, m.Addr, m.Size = le.Uint64(p), le.Uint64(p[8:]), le.Uint64(p[16:])
		m.PageSize = le.Uint32(p[24:])
		err = reserved(uint64(le.Uint32(p[28:])))
		m.Features, m.Modes = le.Uint64(p[32:]), le.Uint64(p[40:])
	case TypeReady:
		m.RegionID = le.Uint64(p)
	case TypeError, TypeBye:
		if n < 4 {
			return m, fmt.Errorf("%w: %v payload of %d bytes", ErrFrame, m.Type, n)
		}
		m.Code = Code(le.Uint16(p))
		tl := int(le.Uint16(p[2:]))
		if tl > MaxText || 4+tl != n {
			return m, fmt.Errorf("%w: %v text length %d in a payload of %d", ErrFrame, m.Type, tl, n)
		}
		m.Text = string(p[4:])
	}
	if err != nil {
		return Message{}, err
	}
	return m, nil
}
