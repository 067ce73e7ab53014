//go:build amd64 && !race

package sched

// Implemented in word_amd64.s: a plain MOV, a release store under x86's
// total store order.
//
//go:noescape
func storeRelease32(p *uint32, v uint32)

//go:noescape
func storeRelease64(p *uint64, v uint64)
