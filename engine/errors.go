package engine

import "errors"

// Errors returned by the engine; test with errors.Is.
var (
	// ErrConfig: the Config is invalid; the message says which field.
	ErrConfig = errors.New("engine: invalid config")
	// ErrOutOfRange: an access lies outside the region.
	ErrOutOfRange = errors.New("engine: access out of range")
	// ErrClosed: the engine was closed.
	ErrClosed = errors.New("engine: closed")
	// ErrNoFrames: every frame is pinned, so no page can be brought in; the
	// DRAM budget is too small for the number of pages pinned at once.
	ErrNoFrames = errors.New("engine: no evictable frame")
)
