//go:build !amd64

package pmem

// FlushInstr names a cache-line flush instruction.
type FlushInstr int

// The flush instructions, best first. Only amd64 has an implementation.
const (
	FlushNone FlushInstr = iota
	FlushCLWB
	FlushCLFLUSHOPT
	FlushCLFLUSH
)

func (f FlushInstr) String() string { return "none" }

// DetectFlush reports FlushNone: cache-line flushing is implemented for amd64 only.
func DetectFlush() FlushInstr { return FlushNone }

func flushLines(FlushInstr, []byte, int, int) {}

func storeFence() {}
