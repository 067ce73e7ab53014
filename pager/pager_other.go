//go:build !linux

package pager

import (
	"context"

	"github.com/farmem/farmem/attach"
)

// Pager serves page faults; on this platform none can be created.
type Pager struct{}

// New returns ErrNotSupported.
func New(Config) (*Pager, error) { return nil, ErrNotSupported }

// PageSize returns 0.
func (*Pager) PageSize() int { return 0 }

// AttachConfig returns the zero Config.
func (*Pager) AttachConfig() attach.Config { return attach.Config{} }

// Serve returns ErrNotSupported.
func (*Pager) Serve(context.Context, *attach.Listener) error { return ErrNotSupported }

// Stats returns zero counters.
func (*Pager) Stats() Stats { return Stats{} }

// Close returns nil.
func (*Pager) Close() error { return nil }

// ResetServiceLatency does nothing.
func (*Pager) ResetServiceLatency() {}
