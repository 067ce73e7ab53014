package wire

import (
	"errors"
	"io"
)

// ReadFrame reads one frame from r: the header into hdr (HeaderSize bytes,
// caller-owned scratch) and the body into buf, which is grown only when too
// small. It returns the header and the body (a prefix of the possibly grown
// buffer, whose full capacity the caller should keep for the next call). A
// stream that ends cleanly before a header returns io.EOF; one that ends
// inside a frame returns ErrTruncated.
func ReadFrame(r io.Reader, hdr *[HeaderSize]byte, buf []byte, maxBody uint32) (Header, []byte, error) {
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = ErrTruncated
		}
		return Header{}, buf[:0], err
	}
	h, err := ParseHeader(hdr[:], maxBody)
	if err != nil {
		return h, buf[:0], err
	}
	if cap(buf) < int(h.Len) {
		buf = make([]byte, h.Len, roundUp(int(h.Len)))
	}
	body := buf[:h.Len]
	if _, err := io.ReadFull(r, body); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = ErrTruncated
		}
		return h, body[:0], err
	}
	return h, body, nil
}

// roundUp grows buffers in 64 KiB steps so that a stream of slightly larger
// frames does not reallocate each time.
func roundUp(n int) int { return (n + 0xffff) &^ 0xffff }

// ValidateBody fully decodes a body of type t with pages of pageSize bytes and
// returns the malformation it finds, if any. The memnode and the client parse
// each type with its own parser; ValidateBody is the single entry point that
// tests and fuzzers use.
func ValidateBody(t Type, body []byte, pageSize int) error {
	var err error
	switch t {
	case THello:
		_, err = ParseHello(body)
	case TWelcome:
		_, err = ParseWelcome(body)
	case TRead, TFree:
		_, err = ParseIDs(body)
	case TWrite:
		_, err = ParseWrite(body, pageSize)
	case TReadReply:
		_, err = ParseReadReply(body, pageSize)
	case TWriteReply:
		_, err = ParseWriteReply(body)
	case TFreeReply:
		_, err = ParseFreeReply(body)
	case TStat:
		if len(body) != 0 {
			err = ErrBadLength
		}
	case TStatReply:
		_, err = ParseStatReply(body)
	case TError:
		_, err = ParseError(body)
	default:
		err = ErrUnknownType
	}
	return err
}
