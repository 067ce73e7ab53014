//go:build !linux

package spin

import (
	"net"
	"time"
)

// Poller does not spin on this platform.
type Poller struct{}

// New returns nil: there is nothing to poll with.
func New(net.Conn) *Poller { return nil }

// Readable returns false at once.
func (p *Poller) Readable(time.Duration) bool { return false }

// Ready returns false at once.
func (p *Poller) Ready() bool { return false }
