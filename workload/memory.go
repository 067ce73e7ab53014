package workload

import (
	"fmt"
	"io"
)

// Memory is the region a workload runs on: the explicit farmem Region, a
// transparent mapping wrapped by SliceMemory, or a wrapper that measures or
// injects faults around either.
//
// The contract is that of io.ReaderAt and io.WriterAt: ReadAt fills all of
// p or returns an error, WriteAt stores all of p or returns an error. The
// caller owns p; a Memory must not keep it after returning. Offsets are byte
// offsets in [0, Config.Size). Workloads call a Memory from one goroutine,
// except under RunOptions.Workers > 1, where each worker touches a disjoint
// set of bytes for writes (reads of shared read-only bytes, such as the
// page table of pagewalk, may be concurrent).
type Memory interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
}

// SliceMemory is a Memory over a plain byte slice, such as the []byte of a
// transparent mapping (farmem.Map) or a make([]byte, n) in tests. It copies
// with the built-in copy, so on a mapping every access is an ordinary load or
// store that may page-fault.
//
// SliceMemory is safe for concurrent use on disjoint byte ranges, as the
// slice itself is.
type SliceMemory []byte

var _ Memory = SliceMemory(nil)

// ReadAt copies len(p) bytes at off into p. An access beyond the slice
// returns io.EOF (after copying what is in range), as io.ReaderAt demands.
func (m SliceMemory) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m)) {
		return 0, fmt.Errorf("workload: SliceMemory read at %d: %w", off, io.EOF)
	}
	n := copy(p, m[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt copies p into the slice at off. An access beyond the slice
// returns io.ErrShortWrite after copying what is in range.
func (m SliceMemory) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off > int64(len(m)) {
		return 0, fmt.Errorf("workload: SliceMemory write at %d: %w", off, io.ErrShortWrite)
	}
	n := copy(m[off:], p)
	if n < len(p) {
		return n, io.ErrShortWrite
	}
	return n, nil
}
