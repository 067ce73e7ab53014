//go:build !amd64

package sched

import "unsafe"

// PrefetchW does nothing on this architecture.
func PrefetchW(p unsafe.Pointer) {}
