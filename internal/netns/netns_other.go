//go:build !linux

package netns

import (
	"context"
	"os/exec"
)

// Create returns ErrNotSupported: network namespaces are Linux-only.
func Create() (*Pair, error) { return nil, ErrNotSupported }

// Partition returns ErrNotSupported.
func (p *Pair) Partition() error { return ErrNotSupported }

// Heal returns ErrNotSupported.
func (p *Pair) Heal() error { return ErrNotSupported }

// Close returns ErrNotSupported.
func (p *Pair) Close() error { return ErrNotSupported }

// Command returns a command that fails with ErrNotSupported when run.
func (p *Pair) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Err = ErrNotSupported
	return cmd
}

// Sweep returns ErrNotSupported.
func Sweep() error { return ErrNotSupported }
