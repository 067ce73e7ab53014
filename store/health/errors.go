package health

import "errors"

// Errors of the health package; test with errors.Is.
var (
	// ErrBadConfig: a Config value is out of range (negative, floor above
	// ceiling, ...).
	ErrBadConfig = errors.New("health: bad config")
	// ErrTraceSyntax: a trace line is not "AT EVENT [ARG] [xN] [=> ...]".
	ErrTraceSyntax = errors.New("health: trace syntax error")
	// ErrTraceEvent: a trace line names an unknown event.
	ErrTraceEvent = errors.New("health: unknown trace event")
	// ErrTraceValue: a time, latency, count or epoch in a trace does not
	// parse or is out of range.
	ErrTraceValue = errors.New("health: bad trace value")
)
