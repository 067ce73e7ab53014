package remote

import (
	"errors"
	"fmt"

	"github.com/farmem/farmem/internal/wire"
	"github.com/farmem/farmem/store"
)

// Errors of the memnode client. Per-page and per-call errors also wrap the
// store package's errors (store.ErrNotFound, store.ErrFull, store.ErrCorrupt,
// store.ErrUnavailable, store.ErrClosed) so that callers need not know this
// package.
var (
	// ErrConfig: a Config field is missing or out of range.
	ErrConfig = errors.New("remote: bad config")
	// ErrHandshake: a memnode refused the handshake (wrong token, page size
	// mismatch, ...); the wire error it sent is wrapped too.
	ErrHandshake = errors.New("remote: memnode refused the handshake")
	// ErrProtocol: a memnode sent a reply that does not fit its request
	// (wrong type, count or page id); the connection is dropped.
	ErrProtocol = errors.New("remote: protocol violation by memnode")
)

// Prebuilt per-page errors, so that reporting one costs no allocation.
var (
	errNotFound    = fmt.Errorf("remote: %w", store.ErrNotFound)
	errFull        = fmt.Errorf("remote: memnode %w", store.ErrFull)
	errCorruptNode = fmt.Errorf("remote: memnode reports %w", store.ErrCorrupt)
	errCorruptWire = fmt.Errorf("remote: page failed its CRC32C on receipt: %w", store.ErrCorrupt)
	errBadPage     = fmt.Errorf("remote: page data is not one page long: %w", store.ErrBadPage)
	errClosed      = fmt.Errorf("remote: %w", store.ErrClosed)
)

// codeErr maps a per-page status to its error.
func codeErr(c wire.Code) error {
	switch c {
	case wire.OK:
		return nil
	case wire.CodeNotFound:
		return errNotFound
	case wire.CodeFull:
		return errFull
	case wire.CodeCorrupt:
		return errCorruptNode
	}
	return fmt.Errorf("remote: %w", c.Err())
}

// remoteErr maps an Error frame answering a request to the error of its
// pages, wrapping both the store error (where one fits) and the wire error.
func remoteErr(re *wire.RemoteError) error {
	switch re.Code {
	case wire.CodeFull:
		return fmt.Errorf("remote: %w: %w", store.ErrFull, re)
	case wire.CodeCorrupt:
		return fmt.Errorf("remote: %w: %w", store.ErrCorrupt, re)
	case wire.CodeNotFound:
		return fmt.Errorf("remote: %w: %w", store.ErrNotFound, re)
	case wire.CodeShutdown:
		return fmt.Errorf("remote: %w: %w", store.ErrUnavailable, re)
	}
	return fmt.Errorf("remote: memnode error: %w", re)
}
