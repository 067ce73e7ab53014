//go:build linux

package attach

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/farmem/farmem/uffd"
	"golang.org/x/sys/unix"
)

// Cred identifies the application at the other end of a connection, as the
// kernel reports it (SO_PEERCRED), not as the application claims.
type Cred struct {
	PID int32
	UID uint32
	GID uint32
}

// Request is what an application asks for, handed to Config.Admit.
type Request struct {
	Cred Cred
	Name string
	// Reattach is set when the application re-attaches an existing region
	// (after a pager restart); RegionID names it.
	Reattach bool
	RegionID uint64
	Size     int
	PageSize int
	// Features: for a re-attach, the userfaultfd features the region's
	// userfaultfd has enabled (a pager may refuse a region served in a
	// mode it cannot recover); 0 for a new region.
	Features uffd.Features
}

// Config configures the pager side. The zero value works.
type Config struct {
	// MaxSize is the largest region accepted; 0 means 1 TiB.
	MaxSize int64
	// Features are the userfaultfd features the application is asked to
	// enable (those its kernel offers); 0 means missing faults on shmem and
	// write-protect faults on shmem.
	Features uffd.Features
	// Modes are the register modes the application is asked for (those its
	// kernel supports on a memfd mapping); 0 means ModeMissing|ModeWP.
	Modes uffd.Mode
	// HandshakeTimeout bounds each handshake, from accept to Ready, including
	// the wait for Accept; 0 means DefaultTimeout.
	HandshakeTimeout time.Duration
	// Admit decides a request and returns the region id: for a new region a
	// fresh nonzero id, for a re-attach the id asked for (or an error that
	// wraps ErrUnknownRegion or ErrDenied). It is called from the handshake
	// goroutines, concurrently. An admitted region may still fail to attach
	// (the application may vanish), so Admit should not commit resources.
	// nil admits everything with ids 1, 2, 3 ... and re-attaches as asked.
	Admit func(Request) (uint64, error)
	// OnReject, if set, is told about every failed handshake (for logs).
	OnReject func(Cred, error)
}

// Attachment is a region attached by an application, as the pager sees it.
// The pager owns it: it serves faults on Uffd at AppBase, reads and writes
// the region through PagerView (its own shared mapping of Memfd), and calls
// Close when done. Done is closed when the application disconnects.
type Attachment struct {
	Cred     Cred
	Name     string
	RegionID uint64
	Size     int
	PageSize int
	// Reattached is set when a restarted pager got the region back: the
	// pages resident in Memfd survived; a predecessor may have read faults it
	// never resolved, so wake the whole range once serving (Uffd.Wake).
	Reattached bool
	// Memfd holds the region's contents; PunchHole on it evicts.
	Memfd int
	// Uffd is the application's userfaultfd.
	Uffd *uffd.FD
	// Features and Modes are those the application enabled and registered.
	Features uffd.Features
	Modes    uffd.Mode
	// AppBase is the address of the application's mapping: the base for
	// Copy and the origin of fault addresses.
	AppBase uintptr
	// PagerView is the pager's own shared mapping of Memfd. Touching a hole
	// through it silently allocates a zero page: touch only installed pages.
	PagerView []byte
	// Conn is the liveness channel; the pager should not read from it (a
	// goroutine of the Attachment does).
	Conn *net.UnixConn

	t         *transport
	done      chan struct{}
	err       error
	closeOnce sync.Once
	closing   atomic.Bool
}

// Done is closed when the connection to the application ends: it
// detached, exited, or Close was called.
func (a *Attachment) Done() <-chan struct{} { return a.done }

// Err returns nil while the application is connected, then ErrAppGone (or
// ErrClosed after Close).
func (a *Attachment) Err() error {
	select {
	case <-a.done:
		return a.err
	default:
		return nil
	}
}

func (a *Attachment) watch() {
	go func() {
		var err error
		for {
			m, fds, rerr := a.t.recv()
			closeAll(fds)
			if rerr != nil {
				err = fmt.Errorf("%w: %w", ErrAppGone, rerr)
				break
			}
			if m.Type == TypeBye {
				err = fmt.Errorf("%w: %v: %s", ErrAppGone, m.Code, m.Text)
				break
			}
		}
		if a.closing.Load() {
			err = ErrClosed
		}
		a.err = err
		close(a.done)
	}()
}

// Close detaches the region: it says Bye to the application (whose faults
// then block until a pager re-attaches), and closes the connection, the
// userfaultfd, the view and the memfd. The pager must have stopped using
// Uffd and PagerView first.
func (a *Attachment) Close() error {
	return a.close(CodeShutdown, "pager closed the region")
}

func (a *Attachment) close(code Code, why string) error {
	var errs []error
	a.closeOnce.Do(func() {
		a.closing.Store(true)
		select {
		case <-a.done:
		default:
			_ = a.t.send(&Message{Type: TypeBye, Code: code, Text: why})
		}
		errs = append(errs, a.Conn.Close())
		<-a.done
		errs = append(errs, a.Uffd.Close(), uffd.Unmap(a.PagerView), unix.Close(a.Memfd))
	})
	return errors.Join(errs...)
}

// Listener accepts applications on a Unix socket (SOCK_SEQPACKET). Each
// connection is one region; handshakes run concurrently, each bounded by
// Config.HandshakeTimeout, and completed attachments are handed out by
// Accept. One Listener serves any number of applications and regions.
type Listener struct {
	cfg    Config
	path   string
	ln     *net.UnixListener
	ready  chan *pending
	closed chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[*net.UnixConn]struct{} // connections in their handshake
	nextID atomic.Uint64
}

type pending struct {
	a     *Attachment
	taken chan bool // true once Ready went out and the attachment is live
}

// Listen listens on socketPath. A stale socket file left by a dead pager is
// replaced; a live one is not (ErrBadRequest wrapping EADDRINUSE).
func Listen(socketPath string, cfg Config) (*Listener, error) {
	if cfg.MaxSize == 0 {
		cfg.MaxSize = 1 << 40
	}
	if cfg.MaxSize < 0 {
		return nil, fmt.Errorf("%w: max size %d", ErrBadRequest, cfg.MaxSize)
	}
	if cfg.Features == 0 {
		cfg.Features = uffd.FeatureMissingShmem | uffd.FeaturePagefaultFlagWP | uffd.FeatureWPHugetlbfsShmem
	}
	if cfg.Modes == 0 {
		cfg.Modes = uffd.ModeMissing | uffd.ModeWP
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultTimeout
	}
	removeStale(socketPath)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: socketPath, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("attach: listen on %s: %w", socketPath, err)
	}
	l := &Listener{cfg: cfg, path: socketPath, ln: ln, ready: make(chan *pending), closed: make(chan struct{}),
		conns: map[*net.UnixConn]struct{}{}}
	l.wg.Add(1)
	go l.acceptLoop()
	return l, nil
}

func removeStale(path string) {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return
	}
	c, err := net.DialTimeout("unixpacket", path, time.Second)
	if err == nil {
		c.Close()
		return
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		_ = os.Remove(path)
	}
}

// Path returns the socket path.
func (l *Listener) Path() string { return l.path }

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		c, err := l.ln.AcceptUnix()
		if err != nil {
			select {
			case <-l.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and friends: back off instead of spinning.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.handshake(c)
		}()
	}
}

// Accept returns the next attached region. It fails with ErrClosed after
// Close, or with the context's error.
func (l *Listener) Accept(ctx context.Context) (*Attachment, error) {
	for {
		select {
		case p := <-l.ready:
			// The handshake goroutine sends Ready now that we took it.
			if ok := <-p.taken; ok {
				return p.a, nil
			}
		case <-l.closed:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close stops accepting, aborts the handshakes in progress and removes the
// socket file. Attachments already handed out stay open.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		close(l.closed)
		err = l.ln.Close() // also unlinks the socket file
		l.mu.Lock()
		for c := range l.conns {
			_ = c.SetDeadline(time.Unix(1, 0))
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return err
}

// handshake runs the pager side of one connection.
func (l *Listener) handshake(c *net.UnixConn) {
	l.mu.Lock()
	select {
	case <-l.closed:
		l.mu.Unlock()
		c.Close()
		return
	default:
	}
	dl := time.Now().Add(l.cfg.HandshakeTimeout)
	_ = c.SetDeadline(dl)
	l.conns[c] = struct{}{}
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
	}()
	var cred Cred
	a, err := l.handshakeErr(c, &cred, dl)
	if err == nil {
		return
	}
	if a != nil {
		releaseHalf(a)
	}
	if l.cfg.OnReject != nil {
		l.cfg.OnReject(cred, err)
	}
	c.Close()
}

func releaseHalf(a *Attachment) {
	if a.Uffd != nil {
		a.Uffd.Close()
	}
	if a.PagerView != nil {
		uffd.Unmap(a.PagerView)
	}
	if a.Memfd >= 0 {
		unix.Close(a.Memfd)
	}
}

func peerCred(c *net.UnixConn) (Cred, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return Cred{}, err
	}
	var uc *unix.Ucred
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		uc, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Cred{}, err
	}
	if gerr != nil {
		return Cred{}, gerr
	}
	return Cred{PID: uc.Pid, UID: uc.Uid, GID: uc.Gid}, nil
}

func (l *Listener) admit(req Request) (uint64, error) {
	if l.cfg.Admit != nil {
		id, err := l.cfg.Admit(req)
		if err == nil && id == 0 {
			err = fmt.Errorf("%w: Admit returned region id 0", ErrDenied)
		}
		if err == nil && req.Reattach && id != req.RegionID {
			err = fmt.Errorf("%w: Admit returned region %d for a re-attach of %d", ErrUnknownRegion, id, req.RegionID)
		}
		return id, err
	}
	if req.Reattach {
		return req.RegionID, nil
	}
	return l.nextID.Add(1), nil
}

// handshakeErr returns the half-built attachment (for cleanup) and the
// error, or hands the attachment to Accept and returns nil.
func (l *Listener) handshakeErr(c *net.UnixConn, cred *Cred, dl time.Time) (*Attachment, error) {
	var err error
	if *cred, err = peerCred(c); err != nil {
		return nil, fmt.Errorf("attach: SO_PEERCRED: %w", err)
	}
	t := newTransport(c)
	a := &Attachment{Cred: *cred, Conn: c, t: t, Memfd: -1, PageSize: os.Getpagesize(), done: make(chan struct{})}
	// reject tells the application why, best effort, and returns err.
	reject := func(err error) (*Attachment, error) {
		_ = t.send(&Message{Type: TypeError, Code: codeOf(err), Text: truncate(err.Error(), MaxText)})
		return a, err
	}
	hello, _, err := expect(t, TypeHello)
	if err != nil {
		return reject(err)
	}
	a.Name = hello.Name
	if hello.MinVersion > Version || hello.MaxVersion < Version {
		return reject(fmt.Errorf("%w: application speaks %d..%d, pager %d", ErrVersion, hello.MinVersion, hello.MaxVersion, Version))
	}
	welcome := Message{Type: TypeWelcome, Version: Version, PageSize: uint32(a.PageSize), MaxSize: uint64(l.cfg.MaxSize),
		Features: uint64(l.cfg.Features), Modes: uint64(l.cfg.Modes)}
	if err := t.send(&welcome); err != nil {
		return a, err
	}
	m, fds, err := t.recv()
	if err != nil {
		return reject(err)
	}
	switch m.Type {
	case TypeAlloc:
		if err := l.checkSize(m.Size, m.PageSize, a.PageSize); err != nil {
			return reject(err)
		}
		a.Size = int(m.Size)
		if a.RegionID, err = l.admit(Request{Cred: *cred, Name: a.Name, Size: a.Size, PageSize: a.PageSize}); err != nil {
			return reject(err)
		}
		if a.Memfd, err = uffd.MemfdCreate(fmt.Sprintf("farmem-region-%d", a.RegionID), int64(a.Size)); err != nil {
			return reject(err)
		}
		if err := t.send(&Message{Type: TypeRegion, RegionID: a.RegionID, Size: m.Size, PageSize: uint32(a.PageSize)}, a.Memfd); err != nil {
			return a, err
		}
		if m, fds, err = expect(t, TypeRegister); err != nil {
			return reject(err)
		}
		if err := a.adoptUffd(fds[0], m); err != nil {
			return reject(err)
		}
	case TypeReattach:
		if !isMemfd(fds[0]) {
			closeAll(fds)
			return reject(fmt.Errorf("%w: re-attach memfd is %q", ErrFDs, fdKind(fds[0])))
		}
		a.Memfd, a.Reattached, a.RegionID = fds[0], true, m.RegionID
		if err := l.checkSize(m.Size, m.PageSize, a.PageSize); err != nil {
			unix.Close(fds[1])
			return reject(err)
		}
		a.Size = int(m.Size)
		var st unix.Stat_t
		if err := unix.Fstat(a.Memfd, &st); err != nil || st.Size != int64(a.Size) {
			unix.Close(fds[1])
			return reject(fmt.Errorf("%w: re-attach memfd of %d bytes for a region of %d", ErrBadRequest, st.Size, a.Size))
		}
		if _, err := l.admit(Request{Cred: *cred, Name: a.Name, Reattach: true, RegionID: m.RegionID, Size: a.Size, PageSize: a.PageSize,
			Features: uffd.Features(m.Features)}); err != nil {
			unix.Close(fds[1])
			return reject(err)
		}
		if err := a.adoptUffd(fds[1], m); err != nil {
			return reject(err)
		}
	default:
		closeAll(fds)
		if m.Type == TypeError {
			return a, &RemoteError{Code: m.Code, Text: m.Text}
		}
		return reject(fmt.Errorf("%w: %v after welcome", ErrUnexpected, m.Type))
	}
	if a.PagerView, err = uffd.MapShared(a.Memfd, a.Size); err != nil {
		return reject(err)
	}

	// Hand the attachment to Accept; Ready goes out only once the pager took
	// it, so the application never runs ahead of its pager.
	p := &pending{a: a, taken: make(chan bool)}
	timer := time.NewTimer(time.Until(dl))
	defer timer.Stop()
	select {
	case l.ready <- p:
	case <-l.closed:
		return reject(fmt.Errorf("%w: pager shutting down", ErrClosed))
	case <-timer.C:
		return reject(fmt.Errorf("%w: the pager did not accept the region", ErrTimeout))
	}
	err = t.send(&Message{Type: TypeReady, RegionID: a.RegionID})
	if err == nil {
		// Leave the handshake set and clear the deadline together, so that
		// a concurrent Listener.Close cannot expire a live attachment.
		l.mu.Lock()
		delete(l.conns, c)
		_ = c.SetDeadline(time.Time{})
		l.mu.Unlock()
		a.watch()
	}
	p.taken <- err == nil
	if err != nil {
		return a, err
	}
	return nil, nil
}

func (l *Listener) checkSize(size uint64, pageSize uint32, ours int) error {
	if pageSize != 0 && int(pageSize) != ours {
		return fmt.Errorf("%w: page size %d, pager serves %d", ErrBadRequest, pageSize, ours)
	}
	if size == 0 || size%uint64(ours) != 0 {
		return fmt.Errorf("%w: size %d is not a positive multiple of the page size %d", ErrBadRequest, size, ours)
	}
	if size > uint64(l.cfg.MaxSize) {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, l.cfg.MaxSize)
	}
	return nil
}

// adoptUffd checks a received userfaultfd and its mapping description.
func (a *Attachment) adoptUffd(fd int, m Message) error {
	if !isUffd(fd) {
		unix.Close(fd)
		return fmt.Errorf("%w: descriptor is %q, not a userfaultfd", ErrFDs, fdKind(fd))
	}
	f, err := uffd.FromFD(fd, uffd.Features(m.Features))
	if err != nil {
		unix.Close(fd)
		return err
	}
	a.Uffd = f
	if m.Addr == 0 || m.Addr%uint64(a.PageSize) != 0 || m.Size != uint64(a.Size) {
		return fmt.Errorf("%w: mapping at %#x of %d bytes for a region of %d", ErrBadRequest, m.Addr, m.Size, a.Size)
	}
	if uffd.Mode(m.Modes)&uffd.ModeMissing == 0 && uffd.Mode(m.Modes)&uffd.ModeMinor == 0 {
		return fmt.Errorf("%w: mapping registered with modes %#x: no missing or minor faults", ErrBadRequest, m.Modes)
	}
	a.AppBase, a.Features, a.Modes = uintptr(m.Addr), uffd.Features(m.Features), uffd.Mode(m.Modes)
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
