package pmem

import "unsafe"

// Implemented in cacheflush_amd64.s. The range functions flush every 64-byte
// line in [addr, end); addr must be line aligned.
func clwbRange(addr, end uintptr)
func clflushoptRange(addr, end uintptr)
func clflushRange(addr, end uintptr)
func sfence()
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// FlushInstr names a cache-line flush instruction.
type FlushInstr int

// The flush instructions, best first.
const (
	FlushNone       FlushInstr = iota // no usable instruction
	FlushCLWB                         // write back, line stays cached
	FlushCLFLUSHOPT                   // write back and evict, weakly ordered
	FlushCLFLUSH                      // write back and evict, strongly ordered
)

func (f FlushInstr) String() string {
	switch f {
	case FlushCLWB:
		return "clwb"
	case FlushCLFLUSHOPT:
		return "clflushopt"
	case FlushCLFLUSH:
		return "clflush"
	}
	return "none"
}

// DetectFlush returns the best cache-line flush instruction this CPU has,
// from CPUID (golang.org/x/sys/cpu does not expose CLWB/CLFLUSHOPT):
// leaf 7 EBX bit 24 is CLWB, bit 23 CLFLUSHOPT; leaf 1 EDX bit 19 is CLFLUSH.
func DetectFlush() FlushInstr {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf >= 7 {
		_, ebx, _, _ := cpuid(7, 0)
		if ebx&(1<<24) != 0 {
			return FlushCLWB
		}
		if ebx&(1<<23) != 0 {
			return FlushCLFLUSHOPT
		}
	}
	_, _, _, edx := cpuid(1, 0)
	if edx&(1<<19) != 0 {
		return FlushCLFLUSH
	}
	return FlushNone
}

// flushLines writes back the lines covering [off, off+n) of mem with instr.
func flushLines(instr FlushInstr, mem []byte, off, n int) {
	start, end := lineSpan(off, n)
	if start < 0 || end > len(mem) || start >= end {
		return
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	a, e := base+uintptr(start), base+uintptr(end)
	switch instr {
	case FlushCLWB:
		clwbRange(a, e)
	case FlushCLFLUSHOPT:
		clflushoptRange(a, e)
	case FlushCLFLUSH:
		clflushRange(a, e)
	}
}

func storeFence() { sfence() }
