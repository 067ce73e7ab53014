package faultproxy

import "errors"

// Errors of the schedule parser. Parse wraps them with the offending event;
// test with errors.Is.
var (
	// ErrSpecSyntax: an event is not of the form kind@start[+duration][:param]
	// (empty event, missing '@', stray characters).
	ErrSpecSyntax = errors.New("faultproxy: spec syntax error")
	// ErrUnknownKind: the kind before '@' is not one of blackhole, delay,
	// reset, cut, kill.
	ErrUnknownKind = errors.New("faultproxy: unknown fault kind")
	// ErrBadDuration: a start, duration or parameter is not a valid
	// non-negative Go duration, is zero where it must be positive, or lies
	// beyond MaxSpan.
	ErrBadDuration = errors.New("faultproxy: bad duration")
	// ErrUnexpectedDuration: a kind that is instantaneous (reset) was given
	// a +duration.
	ErrUnexpectedDuration = errors.New("faultproxy: kind takes no duration")
	// ErrUnexpectedParam: a kind other than delay was given a :param.
	ErrUnexpectedParam = errors.New("faultproxy: kind takes no parameter")
	// ErrOverlap: two events of the same kind overlap in time.
	ErrOverlap = errors.New("faultproxy: events of the same kind overlap")
	// ErrTooManyEvents: the spec has more than MaxEvents events.
	ErrTooManyEvents = errors.New("faultproxy: too many events")
)

// Errors of the proxy and the runner.
var (
	// ErrNoHooks: a schedule with kill events was given to a runner without
	// Kill and Restart hooks.
	ErrNoHooks = errors.New("faultproxy: schedule kills the backend but no hooks were given")
	// ErrHook: a Kill or Restart hook failed; the runner goes on with the
	// schedule and reports the failures joined at the end of Run.
	ErrHook = errors.New("faultproxy: backend hook failed")
	// ErrClosed: the proxy was closed.
	ErrClosed = errors.New("faultproxy: proxy closed")
)
