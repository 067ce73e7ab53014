//go:build linux

package cpuqos

import (
	"encoding/binary"
	"fmt"
	"os"
	"sync"
	"time"
)

// Request is a held CPU latency request. Close drops it.
type Request struct {
	mu sync.Mutex
	f  *os.File
	d  time.Duration
}

// Hold asks that no CPU take longer than d to wake up (0: idle CPUs poll)
// until Close. The value is rounded down to whole microseconds.
func Hold(d time.Duration) (*Request, error) {
	if d < 0 || d > maxLatency {
		return nil, fmt.Errorf("%w: %v (0 to %v)", ErrLatency, d, maxLatency)
	}
	f, err := os.OpenFile(Path, os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(d/time.Microsecond))
	if _, err := f.Write(b[:]); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: writing %s: %w", ErrUnavailable, Path, err)
	}
	return &Request{f: f, d: d}, nil
}

// Latency returns the requested latency.
func (r *Request) Latency() time.Duration { return r.d }

// Close drops the request. It may be called more than once.
func (r *Request) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.f == nil {
		return nil
	}
	err := r.f.Close()
	r.f = nil
	return err
}

// Current returns the latency the kernel enforces now: the smallest of all
// requests held on the machine, or the default (about 2000 s) when none is.
func Current() (time.Duration, error) {
	f, err := os.Open(Path)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	defer f.Close()
	var b [4]byte
	if _, err := f.Read(b[:]); err != nil {
		return 0, fmt.Errorf("%w: reading %s: %w", ErrUnavailable, Path, err)
	}
	return time.Duration(int32(binary.NativeEndian.Uint32(b[:]))) * time.Microsecond, nil
}
