package farmem

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/farmem/farmem/attach"
)

// Errors of Map and Mapping, re-exported from package attach so that an
// application needs only this package; test with errors.Is.
var (
	// ErrPagerLost: the pager serving the mapping died. Accesses to pages
	// that are not resident block (they never read zeros) until a pager
	// re-attaches the region; the Mapping retries that on its own.
	ErrPagerLost = attach.ErrPagerLost
	// ErrPagerShutdown: the pager detached the mapping on purpose (it is
	// shutting down). Faults block as with ErrPagerLost.
	ErrPagerShutdown = attach.ErrPagerShutdown
	// ErrMappingClosed: the Mapping was closed.
	ErrMappingClosed = attach.ErrClosed
)

// reattachEvery is how often a Mapping whose pager is gone tries to hand
// the region to a restarted pager on the same socket.
const reattachEvery = 100 * time.Millisecond

// Mapping is a region of transparent far memory: a plain []byte whose page
// faults are served by a pager process (farmem pager) through userfaultfd.
// Unmodified code works on Bytes: indexing, copy, sort, encoding/binary.
//
// The pager lives in another process: a Go program's page faults cannot be
// served from inside the program (a goroutine faulting inside runtime code
// cannot be stopped for garbage collection). If the pager dies, accesses to
// pages that are not resident block rather than return zeros, Err reports
// ErrPagerLost, and the Mapping keeps offering the region to a pager on the
// same socket path; once a restarted pager takes it back, the blocked
// accesses complete with the right data and Err returns nil again.
type Mapping struct {
	path string
	r    *attach.Region

	mu      sync.Mutex // serializes re-attach and Close
	stop    chan struct{}
	done    chan struct{}
	lastErr error // the last re-attach failure
	closed  bool
}

// Map asks the pager listening on socketPath for a region of size bytes (a
// multiple of the page size) and maps it. The returned Mapping's Bytes are
// ordinary memory backed by far memory.
func Map(ctx context.Context, socketPath string, size int) (*Mapping, error) {
	r, err := attach.Attach(ctx, socketPath, size, attach.Options{Name: "farmem.Map"})
	if err != nil {
		return nil, fmt.Errorf("farmem: map %d bytes from pager %s: %w", size, socketPath, err)
	}
	m := &Mapping{path: socketPath, r: r, stop: make(chan struct{}), done: make(chan struct{})}
	go m.watch()
	return m, nil
}

// Bytes returns the mapped region. It is valid until Close; no goroutine
// may use it during or after Close.
func (m *Mapping) Bytes() []byte { return m.r.Bytes() }

// ID returns the region id the pager assigned.
func (m *Mapping) ID() uint64 { return m.r.ID() }

// PageSize returns the region's page size.
func (m *Mapping) PageSize() int { return m.r.PageSize() }

// Err returns nil while a pager serves the mapping. Otherwise it says why
// not: ErrPagerLost or ErrPagerShutdown (with the last re-attach failure,
// if any), or ErrMappingClosed after Close.
func (m *Mapping) Err() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrMappingClosed
	}
	err := m.r.Err()
	if err != nil && m.lastErr != nil {
		return fmt.Errorf("%w (re-attach: %v)", err, m.lastErr)
	}
	return err
}

// watch waits for the pager connection to end and then offers the region
// to a pager on the same path until one takes it or the Mapping closes.
func (m *Mapping) watch() {
	defer close(m.done)
	for {
		select {
		case <-m.r.Done():
		case <-m.stop:
			return
		}
		select {
		case <-m.stop:
			return
		default:
		}
		for !m.tryReattach() {
			select {
			case <-time.After(reattachEvery):
			case <-m.stop:
				return
			}
		}
	}
}

func (m *Mapping) tryReattach() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := m.r.Reattach(ctx, m.path, attach.Options{Name: "farmem.Map"})
	if errors.Is(err, attach.ErrStillAttached) {
		err = nil
	}
	m.lastErr = err
	return err == nil
}

// Close detaches the region (the pager frees its pages) and unmaps it.
func (m *Mapping) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	close(m.stop)
	err := m.r.Close()
	m.mu.Unlock()
	<-m.done
	return err
}
