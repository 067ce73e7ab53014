package sched

import "unsafe"

// PrefetchW asks for the cache line at p in a writable state, ahead of a
// write to it (PREFETCHW, which every x86-64 with 3DNow!-prefetch or
// PRFCHW has; a CPU without it treats the encoding as a NOP). It never
// faults and changes nothing but caches.
//
//go:noescape
func PrefetchW(p unsafe.Pointer)
