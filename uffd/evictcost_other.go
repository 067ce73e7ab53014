//go:build !(linux && (amd64 || arm64 || riscv64 || loong64 || s390x))

package uffd

// MeasureEviction returns ErrNotSupported.
func MeasureEviction(pages, batch int) (EvictionResult, error) {
	return EvictionResult{Pages: pages, Batch: batch}, ErrNotSupported
}
