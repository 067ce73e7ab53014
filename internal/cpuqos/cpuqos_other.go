//go:build !linux

package cpuqos

import "time"

// Request is a held CPU latency request; never made on this platform.
type Request struct{ d time.Duration }

// Hold returns ErrUnavailable: PM QoS is a Linux interface.
func Hold(d time.Duration) (*Request, error) { return nil, ErrUnavailable }

// Latency returns the requested latency.
func (r *Request) Latency() time.Duration { return r.d }

// Close does nothing.
func (r *Request) Close() error { return nil }

// Current returns ErrUnavailable.
func Current() (time.Duration, error) { return 0, ErrUnavailable }
