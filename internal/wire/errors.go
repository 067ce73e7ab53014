package wire

import (
	"errors"
	"fmt"
)

// ErrBadFrame marks every malformation of a frame: errors.Is(err, ErrBadFrame)
// holds for each of the specific malformation errors below. A peer that sends
// a malformed frame has lost framing, so the connection is closed.
var ErrBadFrame = errors.New("wire: bad frame")

// malformed is a specific malformation; it matches ErrBadFrame with errors.Is.
type malformed struct{ msg string }

func (e *malformed) Error() string        { return e.msg }
func (e *malformed) Is(target error) bool { return target == ErrBadFrame }

// Malformations found by the decoder. Each is errors.Is ErrBadFrame.
var (
	// ErrBadMagic: the first two bytes of a header are not "FM".
	ErrBadMagic error = &malformed{"wire: bad magic"}
	// ErrUnknownType: the header names a frame type this version does not know.
	ErrUnknownType error = &malformed{"wire: unknown frame type"}
	// ErrTruncated: a frame or body ends before its declared content.
	ErrTruncated error = &malformed{"wire: truncated frame"}
	// ErrBadLength: the body length does not match what its counts declare.
	ErrBadLength error = &malformed{"wire: body length does not match its content"}
	// ErrBadStatus: a per-page status is not a known code.
	ErrBadStatus error = &malformed{"wire: bad page status"}
	// ErrBadName: a namespace name is empty, too long or not printable.
	ErrBadName error = &malformed{"wire: bad namespace name"}
	// ErrBadField: a field holds a value outside its range (zero page size,
	// oversized token, reserved bits set).
	ErrBadField error = &malformed{"wire: field out of range"}
)

// Errors that a peer reports with an Error frame or a per-page status. Each
// has a Code; Code.Err and CodeOf translate between them.
var (
	// ErrBadVersion: the peer speaks another protocol version.
	ErrBadVersion = errors.New("wire: unsupported protocol version")
	// ErrBadToken: the handshake's token is missing or wrong.
	ErrBadToken = errors.New("wire: bad token")
	// ErrFull: the memnode has no room for the page.
	ErrFull = errors.New("wire: memnode full")
	// ErrNotFound: the page is not stored in this namespace.
	ErrNotFound = errors.New("wire: page not found")
	// ErrCorrupt: the page failed its CRC32C (on receipt or in storage).
	ErrCorrupt = errors.New("wire: page checksum mismatch")
	// ErrTooLarge: a frame, or the reply it would need, exceeds the frame limit.
	ErrTooLarge = errors.New("wire: frame too large")
	// ErrBadPageSize: the handshake's page size differs from the memnode's.
	ErrBadPageSize = errors.New("wire: page size mismatch")
	// ErrNotAttached: a request arrived before the handshake, or a second
	// handshake arrived.
	ErrNotAttached = errors.New("wire: handshake missing or repeated")
	// ErrShuttingDown: the memnode is shutting down.
	ErrShuttingDown = errors.New("wire: memnode shutting down")
	// ErrInternal: the memnode failed for a reason of its own.
	ErrInternal = errors.New("wire: memnode internal error")
)

// Code is a status on the wire: 0 is success, anything else names an error.
// Codes appear in Error frames and as per-page statuses.
type Code uint16

// The codes of protocol version 1. New codes may be added; a decoder treats an
// unknown code in an Error frame as ErrInternal and in a per-page status as a
// malformation.
const (
	OK             Code = 0
	CodeBadFrame   Code = 1
	CodeBadVersion Code = 2
	CodeBadToken   Code = 3
	CodeFull       Code = 4
	CodeNotFound   Code = 5
	CodeCorrupt    Code = 6
	CodeTooLarge   Code = 7
	CodeBadPageSz  Code = 8
	CodeNotAttach  Code = 9
	CodeShutdown   Code = 10
	CodeBadName    Code = 11
	CodeInternal   Code = 12
	maxCode             = CodeInternal
)

var codeErrs = [...]error{
	OK:             nil,
	CodeBadFrame:   ErrBadFrame,
	CodeBadVersion: ErrBadVersion,
	CodeBadToken:   ErrBadToken,
	CodeFull:       ErrFull,
	CodeNotFound:   ErrNotFound,
	CodeCorrupt:    ErrCorrupt,
	CodeTooLarge:   ErrTooLarge,
	CodeBadPageSz:  ErrBadPageSize,
	CodeNotAttach:  ErrNotAttached,
	CodeShutdown:   ErrShuttingDown,
	CodeBadName:    ErrBadName,
	CodeInternal:   ErrInternal,
}

// Err returns the named error of c (nil for OK, ErrInternal for an unknown code).
func (c Code) Err() error {
	if int(c) < len(codeErrs) {
		return codeErrs[c]
	}
	return ErrInternal
}

// String names the code, as metrics labels do.
func (c Code) String() string {
	switch c {
	case OK:
		return "ok"
	case CodeBadFrame:
		return "bad_frame"
	case CodeBadVersion:
		return "bad_version"
	case CodeBadToken:
		return "bad_token"
	case CodeFull:
		return "full"
	case CodeNotFound:
		return "not_found"
	case CodeCorrupt:
		return "corrupt"
	case CodeTooLarge:
		return "too_large"
	case CodeBadPageSz:
		return "bad_page_size"
	case CodeNotAttach:
		return "not_attached"
	case CodeShutdown:
		return "shutting_down"
	case CodeBadName:
		return "bad_namespace"
	case CodeInternal:
		return "internal"
	}
	return fmt.Sprintf("code_%d", uint16(c))
}

// CodeOf returns the code that reports err to a peer. Malformations map to
// CodeBadFrame (CodeBadName for a bad namespace); errors without a code map
// to CodeInternal.
func CodeOf(err error) Code {
	if err == nil {
		return OK
	}
	if errors.Is(err, ErrBadName) {
		return CodeBadName
	}
	for c := CodeBadFrame; c <= maxCode; c++ {
		if c != CodeBadFrame && errors.Is(err, codeErrs[c]) {
			return c
		}
	}
	if errors.Is(err, ErrBadFrame) {
		return CodeBadFrame
	}
	return CodeInternal
}

// RemoteError is an error reported by the peer in an Error frame. It wraps the
// code's named error, so errors.Is(err, ErrBadToken) works on it.
type RemoteError struct {
	Code Code
	Msg  string
}

func (e *RemoteError) Error() string {
	if e.Msg == "" {
		return e.Code.Err().Error()
	}
	return e.Code.Err().Error() + ": " + e.Msg
}

// Unwrap returns the named error of the code.
func (e *RemoteError) Unwrap() error { return e.Code.Err() }
