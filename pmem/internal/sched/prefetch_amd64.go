package sched

import "unsafe"

// PrefetchW asks for the cache line at p in a writable state, ahead of a
// write to it (PREFETCHW). It does nothing on a CPU whose CPUID does not
// report PREFETCHW (leaf 0x80000001, ECX bit 8: every AMD x86-64, Intel
// from Broadwell on). It never faults and changes nothing but caches.
//
//go:noescape
func PrefetchW(p unsafe.Pointer)

// hasPrefetchW is read by PrefetchW (prefetch_amd64.s).
var hasPrefetchW = detectPrefetchW()

func detectPrefetchW() bool {
	if maxExt, _ := cpuid(0x80000000); maxExt < 0x80000001 {
		return false
	}
	_, ecx := cpuid(0x80000001)
	return ecx&(1<<8) != 0
}

// cpuid returns EAX and ECX of CPUID leaf (subleaf 0).
func cpuid(leaf uint32) (eax, ecx uint32)
