package attach

import (
	"errors"
	"fmt"
)

// Errors of the attach protocol. Test with errors.Is.
var (
	// ErrNotSupported: the attach protocol needs Linux userfaultfd; see
	// attach_other.go.
	ErrNotSupported = errors.New("attach: not supported on this platform")

	// ErrFrame: a message is malformed: bad magic, a length that does not
	// match the record, a field out of range, nonzero reserved bits.
	ErrFrame = errors.New("attach: malformed message")
	// ErrUnknownType: a message of a type this version does not know.
	ErrUnknownType = errors.New("attach: unknown message type")
	// ErrFDs: a message arrived with the wrong number of descriptors, or with
	// descriptors of the wrong kind (not a memfd, not a userfaultfd).
	ErrFDs = errors.New("attach: wrong descriptors with message")
	// ErrUnexpected: a well-formed message arrived out of order.
	ErrUnexpected = errors.New("attach: unexpected message")
	// ErrTimeout: the handshake did not finish in time.
	ErrTimeout = errors.New("attach: handshake timed out")

	// ErrRejected: the peer answered with an Error message; the error is a
	// *RemoteError, which also matches the sentinel of its code (ErrVersion,
	// ErrBadRequest, ErrTooLarge, ErrUnknownRegion, ErrDenied).
	ErrRejected = errors.New("attach: rejected by peer")
	// ErrVersion: no protocol version in common.
	ErrVersion = errors.New("attach: no common protocol version")
	// ErrBadRequest: a size, page size, address or descriptor was refused.
	ErrBadRequest = errors.New("attach: bad request")
	// ErrTooLarge: the region is larger than the pager allows.
	ErrTooLarge = errors.New("attach: region too large")
	// ErrUnknownRegion: a re-attach named a region the pager cannot recover.
	ErrUnknownRegion = errors.New("attach: unknown region")
	// ErrDenied: the pager's admission refused the application.
	ErrDenied = errors.New("attach: denied")

	// ErrPagerLost: the connection to the pager broke after the region was
	// attached: the pager died. The application still holds its userfaultfd,
	// so accesses to pages that are not resident block (they never read
	// zeros) until a pager re-attaches the region (Region.Reattach).
	ErrPagerLost = errors.New("attach: pager connection lost; faults on the region block until a pager re-attaches")
	// ErrPagerShutdown: the pager detached the region on purpose (a Bye
	// message). Faults block as with ErrPagerLost.
	ErrPagerShutdown = errors.New("attach: pager shut down; faults on the region block until a pager re-attaches")
	// ErrAppGone: (pager side) the application's connection closed: it
	// detached or exited. Its region can be dropped.
	ErrAppGone = errors.New("attach: application gone")
	// ErrStillAttached: Reattach was called while the connection to the
	// pager is alive.
	ErrStillAttached = errors.New("attach: region still attached")
	// ErrClosed: the Region, Attachment or Listener was closed.
	ErrClosed = errors.New("attach: closed")
)

// Code is the reason carried by Error and Bye messages.
type Code uint16

// Codes of Error and Bye messages.
const (
	CodeVersion       Code = 1 // no common protocol version
	CodeBadRequest    Code = 2 // a field or descriptor was refused
	CodeTooLarge      Code = 3 // the region exceeds the pager's limit
	CodeUnknownRegion Code = 4 // re-attach of a region the pager cannot recover
	CodeDenied        Code = 5 // admission refused
	CodeInternal      Code = 6 // the pager failed (memfd, mmap ...)
	CodeShutdown      Code = 7 // Bye: the pager is shutting down
	CodeDetach        Code = 8 // Bye: the application detaches
)

// String returns the code's name.
func (c Code) String() string {
	switch c {
	case CodeVersion:
		return "version"
	case CodeBadRequest:
		return "bad request"
	case CodeTooLarge:
		return "too large"
	case CodeUnknownRegion:
		return "unknown region"
	case CodeDenied:
		return "denied"
	case CodeInternal:
		return "internal"
	case CodeShutdown:
		return "shutdown"
	case CodeDetach:
		return "detach"
	}
	return fmt.Sprintf("code %d", uint16(c))
}

func (c Code) sentinel() error {
	switch c {
	case CodeVersion:
		return ErrVersion
	case CodeBadRequest:
		return ErrBadRequest
	case CodeTooLarge:
		return ErrTooLarge
	case CodeUnknownRegion:
		return ErrUnknownRegion
	case CodeDenied:
		return ErrDenied
	}
	return nil
}

// codeOf picks the wire code for a local error.
func codeOf(err error) Code {
	switch {
	case errors.Is(err, ErrVersion):
		return CodeVersion
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrUnknownRegion):
		return CodeUnknownRegion
	case errors.Is(err, ErrDenied):
		return CodeDenied
	case errors.Is(err, ErrBadRequest), errors.Is(err, ErrFrame), errors.Is(err, ErrFDs),
		errors.Is(err, ErrUnexpected), errors.Is(err, ErrUnknownType):
		return CodeBadRequest
	}
	return CodeInternal
}

// RemoteError is an Error message received from the peer.
type RemoteError struct {
	Code Code
	Text string
}

// Error describes the rejection with its code and the peer's text.
func (e *RemoteError) Error() string {
	return fmt.Sprintf("attach: rejected by peer: %v: %s", e.Code, e.Text)
}

// Unwrap makes a RemoteError match ErrRejected and the sentinel of its code.
func (e *RemoteError) Unwrap() []error {
	if s := e.Code.sentinel(); s != nil {
		return []error{ErrRejected, s}
	}
	return []error{ErrRejected}
}
