//go:build linux

package attach

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/farmem/farmem/uffd"
	"golang.org/x/sys/unix"
)

// DefaultTimeout bounds a handshake when no shorter one is given.
const DefaultTimeout = 5 * time.Second

// Options configures the application side.
type Options struct {
	// Name labels the application in the pager's logs (at most MaxName
	// bytes).
	Name string
	// PageSize asks for a page size; 0 takes the pager's. Only the system
	// page size is served today.
	PageSize int
	// Timeout bounds the handshake (the context's deadline applies too); 0
	// means DefaultTimeout.
	Timeout time.Duration
}

// Region is an attached region on the application side: a shared mapping
// of the pager's memfd, registered with a userfaultfd whose faults the pager
// serves. Its connection to the pager stays open as the liveness channel.
//
// If the pager dies, Done is closed and Err says so (ErrPagerLost). The
// application keeps its own copy of the userfaultfd open, so an access to a
// page that is not resident blocks rather than reading zeros, until a pager
// re-attaches the region (Reattach) or the Region is closed.
type Region struct {
	id       uint64
	mem      []byte
	memfd    int
	uffd     *uffd.FD
	pageSize int
	modes    uffd.Mode

	mu     sync.Mutex
	conn   *net.UnixConn
	done   chan struct{}
	err    error
	closed bool
}

// Attach connects to the pager at socketPath, asks for a region of size
// bytes, maps the memfd it receives, registers the mapping with a new
// userfaultfd in the modes the pager asks for (those the kernel supports),
// and passes the userfaultfd to the pager. The returned Region's Bytes are
// served by the pager.
func Attach(ctx context.Context, socketPath string, size int, opts Options) (_ *Region, err error) {
	if size <= 0 {
		return nil, fmt.Errorf("%w: size %d", ErrBadRequest, size)
	}
	if len(opts.Name) > MaxName {
		return nil, fmt.Errorf("%w: name of %d bytes (max %d)", ErrBadRequest, len(opts.Name), MaxName)
	}
	if opts.PageSize < 0 {
		return nil, fmt.Errorf("%w: page size %d", ErrBadRequest, opts.PageSize)
	}
	conn, t, welcome, stop, err := dialHello(ctx, socketPath, opts)
	if err != nil {
		return nil, err
	}
	defer stop()
	r := &Region{memfd: -1}
	defer func() {
		if err != nil {
			conn.Close()
			r.release()
		}
	}()

	if err := t.send(&Message{Type: TypeAlloc, Size: uint64(size), PageSize: uint32(opts.PageSize)}); err != nil {
		return nil, err
	}
	m, fds, err := expect(t, TypeRegion)
	if err != nil {
		return nil, err
	}
	r.memfd = fds[0]
	if !isMemfd(r.memfd) {
		return nil, fmt.Errorf("%w: the region's descriptor is not a memfd (%s)", ErrFDs, fdKind(r.memfd))
	}
	if m.Size != uint64(size) || m.PageSize == 0 || m.PageSize != welcome.PageSize ||
		int(m.PageSize) != os.Getpagesize() || m.RegionID == 0 {
		return nil, fmt.Errorf("%w: region %d of %d bytes, pages of %d, for a request of %d bytes",
			ErrUnexpected, m.RegionID, m.Size, m.PageSize, size)
	}
	r.id, r.pageSize = m.RegionID, int(m.PageSize)
	if r.mem, err = uffd.MapShared(r.memfd, size); err != nil {
		return nil, err
	}
	if r.uffd, err = uffd.Open(uffd.Options{Want: uffd.Features(welcome.Features)}); err != nil {
		return nil, err
	}
	r.modes = supportedModes(uffd.Mode(welcome.Modes), r.uffd.Features())
	if _, err := r.uffd.Register(uffd.Addr(r.mem), size, r.modes); err != nil {
		return nil, err
	}
	reg := Message{Type: TypeRegister, Addr: uint64(uffd.Addr(r.mem)), Size: uint64(size),
		Features: uint64(r.uffd.Features()), Modes: uint64(r.modes)}
	if err := t.send(&reg, r.uffd.Fd()); err != nil {
		return nil, err
	}
	if err := expectReady(t, r.id); err != nil {
		return nil, err
	}
	// End the context watch before the liveness reader starts, so that a
	// late cancellation cannot pass for a dead pager.
	stop()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.start(conn, t)
	return r, nil
}

// supportedModes keeps the register modes that a shmem mapping supports
// with the enabled features.
func supportedModes(want uffd.Mode, f uffd.Features) uffd.Mode {
	m := want & uffd.ModeMissing
	if want&uffd.ModeWP != 0 && f&uffd.FeaturePagefaultFlagWP != 0 && f&uffd.FeatureWPHugetlbfsShmem != 0 {
		m |= uffd.ModeWP
	}
	if want&uffd.ModeMinor != 0 && f&uffd.FeatureMinorShmem != 0 {
		m |= uffd.ModeMinor
	}
	if m == 0 {
		m = uffd.ModeMissing
	}
	return m
}

// dialHello connects and exchanges Hello and Welcome. stop ends the
// handshake's context watch and clears the deadline.
func dialHello(ctx context.Context, socketPath string, opts Options) (*net.UnixConn, *transport, Message, func(), error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "unixpacket", socketPath)
	if err != nil {
		return nil, nil, Message{}, nil, fmt.Errorf("attach: connect to pager %s: %w", socketPath, err)
	}
	conn := c.(*net.UnixConn)
	dl, ok := ctx.Deadline()
	_ = conn.SetDeadline(deadline(timeout, dl, ok))
	// Cancelling ctx aborts the handshake at once.
	unwatch := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	var once sync.Once
	stop := func() {
		once.Do(func() {
			unwatch()
			_ = conn.SetDeadline(time.Time{})
		})
	}
	t := newTransport(conn)
	fail := func(err error) (*net.UnixConn, *transport, Message, func(), error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", err, ctx.Err())
		}
		return nil, nil, Message{}, nil, err
	}
	if err := t.send(&Message{Type: TypeHello, MinVersion: Version, MaxVersion: Version, Name: opts.Name}); err != nil {
		return fail(err)
	}
	w, _, err := expect(t, TypeWelcome)
	if err != nil {
		return fail(err)
	}
	if w.Version != Version {
		return fail(fmt.Errorf("%w: pager chose version %d", ErrVersion, w.Version))
	}
	if opts.PageSize != 0 && uint32(opts.PageSize) != w.PageSize {
		return fail(fmt.Errorf("%w: pager serves pages of %d bytes, not %d", ErrBadRequest, w.PageSize, opts.PageSize))
	}
	return conn, t, w, stop, nil
}

// expect receives the next message and requires type want; an Error
// message becomes a *RemoteError.
func expect(t *transport, want Type) (Message, []int, error) {
	m, fds, err := t.recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return m, nil, fmt.Errorf("attach: waiting for %v: %w", want, io.ErrUnexpectedEOF)
		}
		return m, nil, err
	}
	if m.Type == TypeError {
		return m, nil, &RemoteError{Code: m.Code, Text: m.Text}
	}
	if m.Type != want {
		closeAll(fds)
		return m, nil, fmt.Errorf("%w: %v while waiting for %v", ErrUnexpected, m.Type, want)
	}
	return m, fds, nil
}

func expectReady(t *transport, id uint64) error {
	m, _, err := expect(t, TypeReady)
	if err != nil {
		return err
	}
	if m.RegionID != id {
		return fmt.Errorf("%w: ready for region %d, want %d", ErrUnexpected, m.RegionID, id)
	}
	return nil
}

// start makes conn the liveness channel: a goroutine waits for it to end.
func (r *Region) start(conn *net.UnixConn, t *transport) {
	done := make(chan struct{})
	r.mu.Lock()
	r.conn, r.done, r.err = conn, done, nil
	r.mu.Unlock()
	go func() {
		var err error
		for {
			m, fds, rerr := t.recv()
			closeAll(fds)
			if rerr != nil {
				err = fmt.Errorf("%w: %w", ErrPagerLost, rerr)
				break
			}
			if m.Type == TypeBye {
				err = fmt.Errorf("%w: %v: %s", ErrPagerShutdown, m.Code, m.Text)
				break
			}
			// Nothing else is sent after Ready in this version; later
			// versions may add notices, which are ignored here.
		}
		r.mu.Lock()
		if r.closed {
			err = ErrClosed
		}
		r.err = err
		r.mu.Unlock()
		conn.Close()
		close(done)
	}()
}

// ID returns the region id the pager assigned.
func (r *Region) ID() uint64 { return r.id }

// Bytes returns the region as memory. Indexing, copy, sort: everything
// works on it; pages are fetched by the pager on first access. The slice is
// valid until Close.
func (r *Region) Bytes() []byte { return r.mem }

// PageSize returns the region's page size.
func (r *Region) PageSize() int { return r.pageSize }

// Modes returns the userfaultfd modes the mapping is registered with.
func (r *Region) Modes() uffd.Mode { return r.modes }

// Done is closed when the connection to the pager ends (see Err). After a
// successful Reattach, call Done again for the new connection's channel.
func (r *Region) Done() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done
}

// Err returns nil while the pager is attached, and afterwards why it is
// not: ErrPagerLost (the pager died), ErrPagerShutdown (it detached the
// region) or ErrClosed.
func (r *Region) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	default:
		return nil
	}
}

// Reattach hands the region to a (restarted) pager at socketPath after the
// previous one died: it sends the region id, the mapping's address and the
// memfd and userfaultfd (both still open here), and waits for Ready. Pages
// resident in the memfd survived the old pager; the new pager recovers the
// others from its backup. Faults blocked meanwhile are retried once the new
// pager wakes the range.
func (r *Region) Reattach(ctx context.Context, socketPath string, opts Options) error {
	r.mu.Lock()
	closed, done := r.closed, r.done
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	select {
	case <-done:
	default:
		return ErrStillAttached
	}
	if opts.PageSize == 0 {
		opts.PageSize = r.pageSize
	}
	conn, t, _, stop, err := dialHello(ctx, socketPath, opts)
	if err != nil {
		return err
	}
	defer stop()
	m := Message{Type: TypeReattach, RegionID: r.id, Addr: uint64(uffd.Addr(r.mem)), Size: uint64(len(r.mem)),
		PageSize: uint32(r.pageSize), Features: uint64(r.uffd.Features()), Modes: uint64(r.modes)}
	if err := t.send(&m, r.memfd, r.uffd.Fd()); err != nil {
		conn.Close()
		return err
	}
	if err := expectReady(t, r.id); err != nil {
		conn.Close()
		return err
	}
	stop()
	if err := ctx.Err(); err != nil {
		conn.Close()
		return err
	}
	r.start(conn, t)
	return nil
}

// Close detaches the region: it tells the pager (Bye), unregisters the
// range, and unmaps it. No goroutine may use Bytes during or after Close.
func (r *Region) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	conn, done := r.conn, r.done
	r.mu.Unlock()
	if conn != nil {
		select {
		case <-done:
		default:
			_ = newTransport(conn).send(&Message{Type: TypeBye, Code: CodeDetach, Text: "application closed the region"})
		}
		conn.Close()
		<-done
	}
	return r.release()
}

// release frees the local resources, in an order that never leaves a
// thread blocked on the range: unregister first (no more faults, no unmap
// event waiting for a reader), then close the userfaultfd, then unmap.
func (r *Region) release() error {
	var errs []error
	if r.uffd != nil {
		if len(r.mem) > 0 {
			if err := r.uffd.Unregister(uffd.Addr(r.mem), len(r.mem)); err != nil {
				errs = append(errs, err)
			}
		}
		errs = append(errs, r.uffd.Close())
		r.uffd = nil
	}
	if r.mem != nil {
		errs = append(errs, uffd.Unmap(r.mem))
		r.mem = nil
	}
	if r.memfd >= 0 {
		errs = append(errs, unix.Close(r.memfd))
		r.memfd = -1
	}
	return errors.Join(errs...)
}
