//go:build !(linux && (amd64 || arm64 || riscv64 || loong64 || s390x))

package uffd

import "time"

// Options configures Open. On this platform Open always fails.
type Options struct {
	Want, Need   Features
	UserModeOnly bool
	Device       bool
}

// FD is a userfaultfd; on this platform none can be created.
type FD struct{}

// HelperEnv is the environment variable that makes MaybeRunHelper turn a
// re-executed binary into a helper process.
const HelperEnv = "FARMEM_UFFD_HELPER"

// Probe returns ErrNotSupported.
func Probe() (Features, error) { return 0, ErrNotSupported }

// Open returns ErrNotSupported.
func Open(Options) (*FD, error) { return nil, ErrNotSupported }

// FromFD returns ErrNotSupported.
func FromFD(int, Features) (*FD, error) { return nil, ErrNotSupported }

// Fd returns -1.
func (*FD) Fd() int { return -1 }

// Features returns 0.
func (*FD) Features() Features { return 0 }

// Available returns 0.
func (*FD) Available() Features { return 0 }

// PageSize returns 0.
func (*FD) PageSize() int { return 0 }

// Register returns ErrNotSupported.
func (*FD) Register(uintptr, int, Mode) (Ioctls, error) { return 0, ErrNotSupported }

// Unregister returns ErrNotSupported.
func (*FD) Unregister(uintptr, int) error { return ErrNotSupported }

// Wake returns ErrNotSupported.
func (*FD) Wake(uintptr, int) error { return ErrNotSupported }

// Copy returns ErrNotSupported.
func (*FD) Copy(uintptr, []byte, CopyMode) (int, error) { return 0, ErrNotSupported }

// ZeroPage returns ErrNotSupported.
func (*FD) ZeroPage(uintptr, int, bool) (int, error) { return 0, ErrNotSupported }

// Continue returns ErrNotSupported.
func (*FD) Continue(uintptr, int, bool) (int, error) { return 0, ErrNotSupported }

// WriteProtect returns ErrNotSupported.
func (*FD) WriteProtect(uintptr, int, bool, bool) error { return ErrNotSupported }

// TryRead returns ErrNotSupported.
func (*FD) TryRead([]Msg) (int, error) { return 0, ErrNotSupported }

// Read returns ErrNotSupported.
func (*FD) Read([]Msg) (int, error) { return 0, ErrNotSupported }

// Shutdown returns ErrNotSupported.
func (*FD) Shutdown() error { return ErrNotSupported }

// Close returns ErrNotSupported.
func (*FD) Close() error { return ErrNotSupported }

// MemfdCreate returns ErrNotSupported.
func MemfdCreate(string, int64) (int, error) { return -1, ErrNotSupported }

// PunchHole returns ErrNotSupported.
func PunchHole(int, int64, int64) error { return ErrNotSupported }

// MapShared returns ErrNotSupported.
func MapShared(int, int) ([]byte, error) { return nil, ErrNotSupported }

// Unmap returns ErrNotSupported.
func Unmap([]byte) error { return ErrNotSupported }

// MaybeRunHelper returns at once: there are no helpers on this platform.
func MaybeRunHelper() {}

// MeasureBareFault returns ErrNotSupported.
func MeasureBareFault(int) (p50, p99 time.Duration, err error) { return 0, 0, ErrNotSupported }

// BareFaultSamples returns ErrNotSupported.
func BareFaultSamples(int) ([]time.Duration, error) { return nil, ErrNotSupported }

// MeasureDirtyTracking returns ErrNotSupported.
func MeasureDirtyTracking(pages, rounds int) (DirtyTrackingResult, error) {
	return DirtyTrackingResult{Pages: pages, Rounds: rounds}, ErrNotSupported
}
