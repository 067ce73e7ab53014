//go:build !linux

package attach

import (
	"context"
	"net"
	"time"

	"github.com/farmem/farmem/uffd"
)

// DefaultTimeout bounds a handshake when no shorter one is given.
const DefaultTimeout = 5 * time.Second

// Options configures the application side.
type Options struct {
	Name     string
	PageSize int
	Timeout  time.Duration
}

// Region is an attached region; none can be attached on this platform.
type Region struct{}

// Attach returns ErrNotSupported.
func Attach(context.Context, string, int, Options) (*Region, error) { return nil, ErrNotSupported }

// ID returns 0.
func (*Region) ID() uint64 { return 0 }

// Bytes returns nil.
func (*Region) Bytes() []byte { return nil }

// PageSize returns 0.
func (*Region) PageSize() int { return 0 }

// Modes returns 0.
func (*Region) Modes() uffd.Mode { return 0 }

// Done returns a closed channel.
func (*Region) Done() <-chan struct{} { c := make(chan struct{}); close(c); return c }

// Err returns ErrNotSupported.
func (*Region) Err() error { return ErrNotSupported }

// Reattach returns ErrNotSupported.
func (*Region) Reattach(context.Context, string, Options) error { return ErrNotSupported }

// Close returns ErrNotSupported.
func (*Region) Close() error { return ErrNotSupported }

// Cred identifies the application at the other end of a connection.
type Cred struct {
	PID int32
	UID uint32
	GID uint32
}

// Request is what an application asks for.
type Request struct {
	Cred     Cred
	Name     string
	Reattach bool
	RegionID uint64
	Size     int
	PageSize int
	// Features: for a re-attach, the userfaultfd features the region's
	// userfaultfd has enabled (a pager may refuse a region served in a
	// mode it cannot recover); 0 for a new region.
	Features uffd.Features
}

// Config configures the pager side.
type Config struct {
	MaxSize          int64
	Features         uffd.Features
	Modes            uffd.Mode
	HandshakeTimeout time.Duration
	Admit            func(Request) (uint64, error)
	OnReject         func(Cred, error)
}

// Attachment is a region attached by an application, as the pager sees it.
type Attachment struct {
	Cred       Cred
	Name       string
	RegionID   uint64
	Size       int
	PageSize   int
	Reattached bool
	Memfd      int
	Uffd       *uffd.FD
	Features   uffd.Features
	Modes      uffd.Mode
	AppBase    uintptr
	PagerView  []byte
	Conn       *net.UnixConn
}

// Done returns a closed channel.
func (*Attachment) Done() <-chan struct{} { c := make(chan struct{}); close(c); return c }

// Err returns ErrNotSupported.
func (*Attachment) Err() error { return ErrNotSupported }

// Close returns ErrNotSupported.
func (*Attachment) Close() error { return ErrNotSupported }

// Listener accepts applications; none on this platform.
type Listener struct{}

// Listen returns ErrNotSupported.
func Listen(string, Config) (*Listener, error) { return nil, ErrNotSupported }

// Path returns "".
func (*Listener) Path() string { return "" }

// Accept returns ErrNotSupported.
func (*Listener) Accept(context.Context) (*Attachment, error) { return nil, ErrNotSupported }

// Close returns ErrNotSupported.
func (*Listener) Close() error { return ErrNotSupported }
