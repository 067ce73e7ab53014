package memnode

import "errors"

// Errors of the memnode server. Errors reported to clients travel as wire
// codes (see internal/wire); these are the server's own.
var (
	// ErrConfig: a Config field is out of range (capacity below one page,
	// page size not a power of two, ...).
	ErrConfig = errors.New("memnode: bad config")
	// ErrServerClosed is returned by Serve after Shutdown or Close.
	ErrServerClosed = errors.New("memnode: server closed")
	// ErrIdle: a connection was closed after its idle timeout.
	ErrIdle = errors.New("memnode: idle timeout")
)
