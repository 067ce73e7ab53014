//go:build !linux

package spin

import (
	"net"
	"time"
)

// Readable does not spin on this platform: it returns false at once.
func Readable(net.Conn, time.Duration) bool { return false }
