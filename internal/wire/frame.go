package wire

import (
	"encoding/binary"
	"hash/crc32"
)

// Version is the protocol version this package speaks.
const Version = 1

// HeaderSize is the size of a frame header in bytes.
const HeaderSize = 16

// Magic is the two bytes "FM" that open every frame.
const Magic = uint16('F') | uint16('M')<<8

// MaxBodyLimit is the hard upper bound on a body length; a peer may announce a
// smaller limit (Welcome.MaxBody) but never a larger one.
const MaxBodyLimit = 64 << 20

// Size limits of handshake fields.
const (
	MaxNamespace = 255
	MaxToken     = 4096
	MaxErrorMsg  = 1024
	// EntryHeaderSize is the fixed part of each page entry in Write and
	// ReadReply bodies.
	EntryHeaderSize = 16
)

// Type is the kind of a frame. Replies have the high bit set and carry the
// request id of the request they answer.
type Type uint8

// Frame types of protocol version 1.
const (
	THello      Type = 0x01
	TRead       Type = 0x02
	TWrite      Type = 0x03
	TFree       Type = 0x04
	TStat       Type = 0x05
	TWelcome    Type = 0x81
	TReadReply  Type = 0x82
	TWriteReply Type = 0x83
	TFreeReply  Type = 0x84
	TStatReply  Type = 0x85
	TError      Type = 0xFF
)

// Known reports whether t is a frame type of this version.
func (t Type) Known() bool {
	switch t {
	case THello, TRead, TWrite, TFree, TStat, TWelcome, TReadReply, TWriteReply, TFreeReply, TStatReply, TError:
		return true
	}
	return false
}

// String names the frame type, as metrics labels do.
func (t Type) String() string {
	switch t {
	case THello:
		return "hello"
	case TRead:
		return "read"
	case TWrite:
		return "write"
	case TFree:
		return "free"
	case TStat:
		return "stat"
	case TWelcome:
		return "welcome"
	case TReadReply:
		return "read_reply"
	case TWriteReply:
		return "write_reply"
	case TFreeReply:
		return "free_reply"
	case TStatReply:
		return "stat_reply"
	case TError:
		return "error"
	}
	return "unknown"
}

// Header is the fixed 16-byte head of every frame. All integers on the wire
// are little-endian.
//
//	0       2       3       4               8                              16
//	+-------+-------+-------+---------------+-------------------------------+
//	| magic |version| type  |  body length  |          request id           |
//	| "FM"  |  u8   |  u8   |      u32      |              u64              |
//	+-------+-------+-------+---------------+-------------------------------+
//	| body: body-length bytes, laid out according to type ...               |
//	+-----------------------------------------------------------------------+
//
// Bodies by type (n is a u32 count, ids are u64 page ids, P is the page size
// agreed in the handshake, "sum" is the CRC32C (Castagnoli) of the page data):
//
//	Hello   0x01  page size u32 | ns len u16 | token len u16 | ns | token
//	Welcome 0x81  epoch u64 | capacity u64 | used u64 | max body u32 | page size u32
//	Read    0x02  n u32 | n x id u64
//	ReadRep 0x82  n u32 | n x ( id u64 | status u8 | 0 0 0 | sum u32 | P bytes iff status=0 )
//	Write   0x03  n u32 | n x ( id u64 | sum u32 | 0 u32 | P bytes )
//	WriteRe 0x83  n u32 | n x status u8
//	Free    0x04  n u32 | n x id u64
//	FreeRep 0x84  freed u32
//	Stat    0x05  (empty)
//	StatRep 0x85  capacity u64 | used u64 | namespace pages u64 | epoch u64
//	Error   0xFF  code u16 | msg len u16 | msg (UTF-8)
//
// Capacity and used count pages of the memnode as a whole. A reply carries
// the request id of its request; replies may arrive in any order. The request
// id of Hello and Welcome is free (clients use 0).
type Header struct {
	Version uint8
	Type    Type
	// Len is the body length in bytes.
	Len uint32
	// ID is the request id.
	ID uint64
}

var le = binary.LittleEndian

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC32C of data, the per-page checksum of the protocol
// (the same as store.Checksum).
func Checksum(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

// ParseHeader decodes a header from the first HeaderSize bytes of b. maxBody
// is the largest body accepted (0 or more than MaxBodyLimit: MaxBodyLimit). A
// frame of another version is reported with ErrBadVersion so that the caller
// can answer it before closing.
func ParseHeader(b []byte, maxBody uint32) (Header, error) {
	if len(b) < HeaderSize {
		return Header{}, ErrTruncated
	}
	if le.Uint16(b[0:2]) != Magic {
		return Header{}, ErrBadMagic
	}
	h := Header{Version: b[2], Type: Type(b[3]), Len: le.Uint32(b[4:8]), ID: le.Uint64(b[8:16])}
	if h.Version != Version {
		return h, ErrBadVersion
	}
	if !h.Type.Known() {
		return h, ErrUnknownType
	}
	if maxBody == 0 || maxBody > MaxBodyLimit {
		maxBody = MaxBodyLimit
	}
	if h.Len > maxBody {
		return h, ErrTooLarge
	}
	return h, nil
}

// AppendHeader appends h to dst.
func AppendHeader(dst []byte, h Header) []byte {
	dst = le.AppendUint16(dst, Magic)
	dst = append(dst, h.Version, byte(h.Type))
	dst = le.AppendUint32(dst, h.Len)
	return le.AppendUint64(dst, h.ID)
}

// StartFrame appends a header of type t and request id to dst with a zero
// body length, to be patched by EndFrame once the body has been appended.
// It returns the extended slice; the frame starts at the old len(dst).
func StartFrame(dst []byte, t Type, id uint64) []byte {
	return AppendHeader(dst, Header{Version: Version, Type: t, ID: id})
}

// EndFrame patches the body length of the frame that starts at offset start
// of buf. It returns ErrTooLarge if the body exceeds MaxBodyLimit.
func EndFrame(buf []byte, start int) error {
	n := len(buf) - start - HeaderSize
	if n < 0 {
		return ErrTruncated
	}
	if n > MaxBodyLimit {
		return ErrTooLarge
	}
	le.PutUint32(buf[start+4:], uint32(n))
	return nil
}
