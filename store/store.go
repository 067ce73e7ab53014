package store

import (
	"context"
	"hash/crc32"
)

// PageID names a page of a region: its byte offset divided by the page size.
type PageID uint64

// Op is the kind of a Call.
type Op uint8

// The operations a Store performs.
const (
	// OpRead fills each Page.Data and Page.Sum.
	OpRead Op = iota + 1
	// OpWrite stores each Page.Data with its Page.Sum.
	OpWrite
	// OpFree drops each page; Page.Data is ignored. Freeing an absent page is
	// not an error.
	OpFree
)

func (o Op) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	case OpFree:
		return "free"
	}
	return "op?"
}

// Page is one page of a Call.
type Page struct {
	ID PageID
	// Data is exactly one page long for reads and writes; nil for frees. The
	// caller owns it.
	Data []byte
	// Sum is the CRC32C of Data: supplied by the caller on write, returned by
	// the store on read.
	Sum uint32
	// Err is this page's outcome, set by the store. Nil means success.
	Err error
}

// Call is one batched request. It is reusable once it has been received from
// Done: reset Err and each Page.Err (Reset does it) before the next Submit.
type Call struct {
	Op    Op
	Pages []Page
	// Err is set when the whole call failed (transport, deadline, closed
	// store); per-page failures are in Pages[i].Err.
	Err error
	// Done receives the Call once it completes. It must have a buffer of at
	// least one; Submit panics otherwise (as net/rpc does), because an
	// unbuffered channel would let a slow caller stall the store.
	Done chan *Call
}

// Reset clears the results of a completed call so that it can be submitted
// again with the same pages.
func (c *Call) Reset() {
	c.Err = nil
	for i := range c.Pages {
		c.Pages[i].Err = nil
	}
}

// FirstErr returns the call's error, or else the first per-page error.
func (c *Call) FirstErr() error {
	if c.Err != nil {
		return c.Err
	}
	for i := range c.Pages {
		if c.Pages[i].Err != nil {
			return c.Pages[i].Err
		}
	}
	return nil
}

// Store is a tier backend. Implementations are safe for concurrent use.
type Store interface {
	// Submit starts c and returns; c is sent on c.Done exactly once when it
	// completes, also when ctx expires or the store is closed. Submit may
	// block for flow control but never beyond ctx.
	Submit(ctx context.Context, c *Call)
	// PageSize is the size of every page, in bytes.
	PageSize() int
	// Close releases the store. Calls in flight complete with ErrClosed.
	Close() error
}

// Stats is what an optional Statter reports.
type Stats struct {
	// Pages is the number of pages held; Capacity the most it can hold
	// (0: unlimited).
	Pages, Capacity uint64
}

// Statter is an optional interface of a Store that can report its usage.
type Statter interface {
	Stat(ctx context.Context) (Stats, error)
}

// Doer is an optional interface of a Store with a synchronous path cheaper
// than Submit plus a wait (the remote store reads the reply on the calling
// goroutine, saving a goroutine hand-off per fault).
type Doer interface {
	Do(ctx context.Context, c *Call) error
}

// Do submits c and waits for it, returning c.FirstErr(). A nil c.Done is
// replaced by a new buffered channel. A Store that is a Doer does the call
// its own way.
func Do(ctx context.Context, s Store, c *Call) error {
	if d, ok := s.(Doer); ok {
		return d.Do(ctx, c)
	}
	if c.Done == nil {
		c.Done = make(chan *Call, 1)
	}
	s.Submit(ctx, c)
	<-c.Done
	return c.FirstErr()
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the CRC32C of a page, the checksum every store keeps.
func Checksum(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

// CheckDone panics if c.Done cannot hold a completion; stores call it first
// in Submit.
func CheckDone(c *Call) {
	if cap(c.Done) == 0 {
		panic("store: Call.Done must be a buffered channel")
	}
}
