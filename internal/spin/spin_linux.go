//go:build linux

// Package spin busy-polls a connection for data before a caller sleeps in
// Go's network poller.
//
// On a virtual machine an idle vCPU halts, and the hypervisor has to wake
// it when a packet arrives; on the 2-vCPU KVM guests farmem is measured on,
// that wake-up costs more than a loopback round trip. A thread that expects
// data within microseconds (a fault waiting for its page, a memnode between
// requests of a busy client) keeps its vCPU awake by polling for a short
// while first. docs/BENCHMARKS.md has the measurements.
package spin

import (
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Poller polls one connection. Make it once per connection: Readable then
// allocates nothing, so it can sit on a fault path. Its methods are for the
// connection's single reader; a nil Poller never spins.
type Poller struct {
	rc    syscall.RawConn
	poll  func(fd uintptr) bool
	peek  func(fd uintptr) bool
	end   time.Time
	ready bool
}

// New returns a Poller for nc, or nil when nc is not a socket.
func New(nc net.Conn) *Poller {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &Poller{rc: rc}
	p.poll = func(fd uintptr) bool {
		var b [1]byte
		for i := 0; ; i++ {
			// recvfrom(MSG_PEEK|MSG_DONTWAIT) with no address: unix.Recvfrom
			// would allocate a socket address on every call.
			_, _, errno := unix.Syscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
				unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
			if errno != unix.EAGAIN && errno != unix.EINTR {
				// Data, end of stream or an error: the caller's read tells
				// which.
				p.ready = true
				return true
			}
			if i&15 == 15 && time.Now().After(p.end) {
				return true
			}
		}
	}
	p.peek = func(fd uintptr) bool {
		var b [1]byte
		// Non-blocking, so a raw system call: the runtime need not be
		// told (entersyscall would wake its sysmon thread if it sleeps).
		_, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
			unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
		p.ready = errno != unix.EAGAIN && errno != unix.EINTR
		return true
	}
	return p
}

// Ready reports, without waiting, whether the connection has data to read
// (or has failed or ended). It consumes nothing and allocates nothing.
func (p *Poller) Ready() bool {
	if p == nil {
		return false
	}
	p.ready = false
	p.rc.Read(p.peek)
	return p.ready
}

// Readable busy-polls for up to d until the connection has data to read (or
// has failed or ended), without consuming anything, and reports whether it
// has.
func (p *Poller) Readable(d time.Duration) bool {
	if p == nil || d <= 0 {
		return false
	}
	p.ready = false
	p.end = time.Now().Add(d)
	p.rc.Read(p.poll)
	return p.ready
}
