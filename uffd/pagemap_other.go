//go:build !(linux && (amd64 || arm64 || riscv64 || loong64 || s390x))

package uffd

// DefaultScanVec is the number of regions a PagemapScanner returns per
// ioctl when OpenPagemap is given no size.
const DefaultScanVec = 512

// PagemapScanner runs PAGEMAP_SCAN; on this platform none can be opened.
type PagemapScanner struct{}

// OpenPagemap returns ErrScanNotSupported.
func OpenPagemap(int, int) (*PagemapScanner, error) { return nil, ErrScanNotSupported }

// ScanSupported returns ErrScanNotSupported.
func ScanSupported() error { return ErrScanNotSupported }

// Close returns nil.
func (*PagemapScanner) Close() error { return nil }

// VecLen returns 0.
func (*PagemapScanner) VecLen() int { return 0 }

// Scan returns ErrScanNotSupported.
func (*PagemapScanner) Scan(start, _ uintptr, _ ScanRequest) ([]PageRegion, uintptr, error) {
	return nil, start, ErrScanNotSupported
}

// ScanAll returns ErrScanNotSupported.
func (*PagemapScanner) ScanAll(uintptr, uintptr, ScanRequest, func([]PageRegion) error) (int, error) {
	return 0, ErrScanNotSupported
}
