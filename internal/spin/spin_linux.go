//go:build linux

// Package spin busy-polls a connection for data before a caller sleeps in
// Go's network poller.
//
// On a virtual machine an idle vCPU halts, and the hypervisor has to wake
// it when a packet arrives; on the 2-vCPU KVM guests farmem is measured on,
// that wake-up costs more than a loopback round trip. A thread that expects
// data within microseconds (a memnode between requests of a busy client, a
// fault waiting for its page) keeps its vCPU awake by polling for a short
// while first. Measured with farmem bench on a quiet guest: fault p50 61-69
// µs without spinning, 40 µs with the client spinning, against a raw round
// trip of 20-25 µs (docs/BENCHMARKS.md has the figures with both sides).
package spin

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Readable busy-polls nc for up to d until it has data to read (or has
// failed or ended), without consuming anything, and reports whether it has.
// It returns false at once for a connection that is not a socket.
func Readable(nc net.Conn, d time.Duration) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok || d <= 0 {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	ready := false
	end := time.Now().Add(d)
	rc.Read(func(fd uintptr) bool {
		var b [1]byte
		for i := 0; ; i++ {
			_, _, rerr := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
			if rerr != unix.EAGAIN && rerr != unix.EINTR {
				// Data, end of stream (n == 0) or an error: the caller's
				// read tells which.
				ready = true
				return true
			}
			if i&15 == 15 && time.Now().After(end) {
				return true
			}
		}
	})
	return ready
}
