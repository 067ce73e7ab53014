package engine

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// newArena maps n bytes of anonymous memory outside the Go heap, so that the
// garbage collector neither scans nor moves frames. The kernel provides the
// pages lazily: an unused frame costs no RSS.
func newArena(n int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, n, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, fmt.Errorf("engine: mapping a %d-byte frame arena: %w", n, err)
	}
	return b, nil
}

func freeArena(b []byte) error { return unix.Munmap(b) }
