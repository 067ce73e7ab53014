//go:build linux && (amd64 || arm64 || riscv64 || loong64 || s390x)

package uffd

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// MemfdCreate creates a memfd (MFD_CLOEXEC) of size bytes, all holes. A
// region of transparent memory lives in one: the pager and the application
// both map it shared, the pager installs pages into the application's
// mapping with Copy and reads the application's writes through its own.
func MemfdCreate(name string, size int64) (int, error) {
	if size <= 0 {
		return -1, fmt.Errorf("uffd: memfd size %d: must be positive", size)
	}
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("uffd: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, size); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("uffd: memfd ftruncate %d: %w", size, err)
	}
	return fd, nil
}

// PunchHole frees [off, off+length) of a memfd (fallocate PUNCH_HOLE |
// KEEP_SIZE). This is how the pager evicts: the application's next access to
// those pages raises a new missing fault. (MADV_DONTNEED on a shared mapping
// does not: the page stays in the page cache.) Touching a hole through the
// pager's own mapping silently allocates a zero page, so the pager must track
// which pages it installed and never touch the others.
func PunchHole(fd int, off, length int64) error {
	if err := unix.Fallocate(fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, length); err != nil {
		return fmt.Errorf("uffd: punch hole %d+%d: %w", off, length, err)
	}
	return nil
}

// MapShared maps size bytes of fd read-write and shared.
func MapShared(fd int, size int) ([]byte, error) {
	if size <= 0 {
		return nil, fmt.Errorf("uffd: map size %d: must be positive", size)
	}
	b, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("uffd: mmap shared %d: %w", size, err)
	}
	return b, nil
}

// Unmap unmaps a mapping made by MapShared.
func Unmap(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := unix.Munmap(b); err != nil {
		return fmt.Errorf("uffd: munmap: %w", err)
	}
	return nil
}
