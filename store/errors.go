package store

import "errors"

// Errors reported by stores. Implementations wrap them with detail; test with
// errors.Is.
var (
	// ErrNotFound: a read named a page the store does not hold.
	ErrNotFound = errors.New("store: page not found")
	// ErrCorrupt marks data that failed its checksum, on media or on the wire.
	ErrCorrupt = errors.New("store: checksum mismatch")
	// ErrFull: the store has no room for another page.
	ErrFull = errors.New("store: out of capacity")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store: closed")
	// ErrBadPage: a page's ID or buffer does not fit the store (out of range,
	// wrong length).
	ErrBadPage = errors.New("store: bad page")
	// ErrUnavailable: the backend cannot be reached (connection refused,
	// reset, no healthy node).
	ErrUnavailable = errors.New("store: backend unavailable")
	// ErrBadFile: a store file is not one (bad magic, checksum, version or
	// size).
	ErrBadFile = errors.New("store: not a valid store file")
	// ErrWrongRegion: a store file belongs to another region or page shape.
	ErrWrongRegion = errors.New("store: file belongs to another region")
)
