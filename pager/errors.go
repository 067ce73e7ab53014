package pager

import "errors"

// Errors of the pager. Test with errors.Is.
var (
	// ErrNotSupported: the pager needs Linux userfaultfd (see
	// pager_other.go).
	ErrNotSupported = errors.New("pager: not supported on this platform")
	// ErrConfig: a Config field is invalid; the message names it.
	ErrConfig = errors.New("pager: invalid config")
	// ErrClosed: the Pager was closed.
	ErrClosed = errors.New("pager: closed")
	// ErrNotRecoverable: a re-attach named a region whose evicted pages this
	// pager cannot find (its far tier does not survive a pager restart).
	ErrNotRecoverable = errors.New("pager: region not recoverable")
	// ErrLostPage: the far tier does not hold a page that the pager wrote
	// there. The faulting thread is not served zeros: the fetch is retried
	// and the error counted and logged.
	ErrLostPage = errors.New("pager: page missing from the far tier")
)
