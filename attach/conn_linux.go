//go:build linux

package attach

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// transport sends and receives whole messages with their descriptors over a
// SOCK_SEQPACKET connection. It reuses its buffers, so one goroutine at a
// time may receive and one may send.
type transport struct {
	c    *net.UnixConn
	rbuf [MaxMessage + 1]byte // one spare byte so that an oversized record shows as MSG_TRUNC
	oob  []byte
	wbuf []byte
}

func newTransport(c *net.UnixConn) *transport {
	return &transport{c: c, oob: make([]byte, unix.CmsgSpace(4*4)), wbuf: make([]byte, 0, MaxMessage)}
}

func (t *transport) send(m *Message, fds ...int) error {
	if len(fds) != m.Type.FDs() {
		// A broken invariant of this package, not bad input.
		panic(fmt.Sprintf("attach: %v sent with %d descriptors", m.Type, len(fds)))
	}
	b, err := Append(t.wbuf[:0], m)
	if err != nil {
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	n, oobn, err := t.c.WriteMsgUnix(b, oob, nil)
	if err != nil {
		return fmt.Errorf("attach: send %v: %w", m.Type, netErr(err))
	}
	if n != len(b) || oobn != len(oob) {
		return fmt.Errorf("attach: send %v: short write %d/%d", m.Type, n, len(b))
	}
	return nil
}

// recv receives one message and its descriptors (owned by the caller). A
// message with the wrong number of descriptors fails with ErrFDs, and the
// descriptors that came with it are closed. io.EOF means the peer closed.
func (t *transport) recv() (Message, []int, error) {
	n, oobn, flags, _, err := t.c.ReadMsgUnix(t.rbuf[:], t.oob)
	if err != nil {
		return Message{}, nil, fmt.Errorf("attach: receive: %w", netErr(err))
	}
	var fds []int
	if oobn > 0 {
		scms, perr := unix.ParseSocketControlMessage(t.oob[:oobn])
		if perr == nil {
			for i := range scms {
				got, rerr := unix.ParseUnixRights(&scms[i])
				if rerr == nil {
					fds = append(fds, got...)
				}
			}
		}
	}
	fail := func(err error) (Message, []int, error) {
		closeAll(fds)
		return Message{}, nil, err
	}
	if n == 0 && oobn == 0 {
		return fail(io.EOF)
	}
	if flags&unix.MSG_TRUNC != 0 {
		return fail(fmt.Errorf("%w: record longer than %d bytes", ErrFrame, MaxMessage))
	}
	if flags&unix.MSG_CTRUNC != 0 {
		return fail(fmt.Errorf("%w: control data truncated", ErrFDs))
	}
	m, err := Decode(t.rbuf[:n])
	if err != nil {
		return fail(err)
	}
	if len(fds) != m.Type.FDs() {
		return fail(fmt.Errorf("%w: %v with %d descriptors, want %d", ErrFDs, m.Type, len(fds), m.Type.FDs()))
	}
	return m, fds, nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// netErr turns deadline expiry into ErrTimeout.
func netErr(err error) error {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	}
	return err
}

// fdKind reads what a descriptor refers to, for checking received
// descriptors: "anon_inode:[userfaultfd]" or "/memfd:NAME (deleted)".
func fdKind(fd int) string {
	s, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		return ""
	}
	return s
}

func isUffd(fd int) bool  { return fdKind(fd) == "anon_inode:[userfaultfd]" }
func isMemfd(fd int) bool { return strings.HasPrefix(fdKind(fd), "/memfd:") }

// deadline is the earlier of now+d and the deadline of the context.
func deadline(d time.Duration, ctxDeadline time.Time, ok bool) time.Time {
	t := time.Now().Add(d)
	if ok && ctxDeadline.Before(t) {
		return ctxDeadline
	}
	return t
}
