//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TryRead reads the pending events into buf without blocking and returns how
// many it stored (0 when none is pending). It allocates nothing. Fork events
// (only with FeatureEventFork) are not returned: the new descriptor they carry
// is closed, since farmem does not follow forked children.
func (f *FD) TryRead(buf []Msg) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	for {
		n, err := f.readOnce(buf)
		if err != nil || n == 0 {
			return n, err
		}
		if n = dropForks(buf[:n]); n > 0 {
			return n, nil
		}
	}
}

func (f *FD) readOnce(buf []Msg) (int, error) {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&buf[0])), len(buf)*MsgSize)
	for {
		n, err := unix.Read(f.fd, b)
		switch {
		case err == nil:
			return n / MsgSize, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EAGAIN):
			return 0, nil
		case errors.Is(err, unix.EBADF):
			return 0, ErrClosed
		}
		return 0, fmt.Errorf("uffd: read events: %w", err)
	}
}

func dropForks(buf []Msg) int {
	j := 0
	for i := range buf {
		if buf[i].Event == EventFork {
			_ = unix.Close(buf[i].ForkFD())
			continue
		}
		buf[j] = buf[i]
		j++
	}
	return j
}

// Read blocks until at least one event is pending, then reads as many as fit
// in buf (see TryRead). After Shutdown or Close it returns ErrClosed, also to
// a Read already blocked. It allocates nothing per event.
func (f *FD) Read(buf []Msg) (int, error) {
	stop, err := f.stopDescriptor()
	if err != nil {
		return 0, err
	}
	fds := [2]unix.PollFd{{Fd: int32(f.fd), Events: unix.POLLIN}, {Fd: int32(stop), Events: unix.POLLIN}}
	for {
		if f.isStopped() {
			return 0, ErrClosed
		}
		n, err := f.TryRead(buf)
		if err != nil || n > 0 {
			return n, err
		}
		fds[0].Revents, fds[1].Revents = 0, 0
		if _, err := unix.Poll(fds[:], -1); err != nil && !errors.Is(err, unix.EINTR) {
			return 0, fmt.Errorf("uffd: poll: %w", err)
		}
		if fds[1].Revents != 0 {
			return 0, ErrClosed
		}
		if fds[0].Revents&(unix.POLLERR|unix.POLLNVAL) != 0 {
			return 0, fmt.Errorf("uffd: poll: descriptor error (revents %#x)", fds[0].Revents)
		}
	}
}

func (f *FD) isStopped() bool {
	f.stopMu.Lock()
	defer f.stopMu.Unlock()
	return f.stopped
}

func (f *FD) stopDescriptor() (int, error) {
	f.stopMu.Lock()
	defer f.stopMu.Unlock()
	if f.stopped {
		return -1, ErrClosed
	}
	if f.stopFD < 0 {
		efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			return -1, fmt.Errorf("uffd: eventfd: %w", err)
		}
		f.stopFD = efd
	}
	return f.stopFD, nil
}

// Shutdown makes every current and future Read return ErrClosed, without
// closing the descriptor (range ioctls keep working, so in-flight installs
// can finish). It is idempotent.
func (f *FD) Shutdown() error {
	f.stopMu.Lock()
	defer f.stopMu.Unlock()
	if f.stopped {
		return nil
	}
	f.stopped = true
	if f.stopFD >= 0 {
		var one = [8]byte{1}
		if _, err := unix.Write(f.stopFD, one[:]); err != nil {
			return fmt.Errorf("uffd: shutdown: %w", err)
		}
	}
	return nil
}
