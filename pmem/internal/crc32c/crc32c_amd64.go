package crc32c

import (
	"hash/crc32"

	"golang.org/x/sys/cpu"
)

// maxWords bounds the 8-byte words of one pass of the three-way code, and
// so the length of shiftConst: a longer buffer goes through updateLong in
// pieces of maxLen bytes. At 8 KiB a piece costs about 290 ns and the
// merge at its end about 3 ns, so longer pieces would gain at most 1%.
// crc32c_amd64.s reads both through go_asm.h.
const (
	maxWords = 1024
	maxLen   = maxWords * 8
)

// hasAsm tells Update (in crc32c_amd64.s) whether it may run its own code:
// CRC32 is SSE4.2, and the merge of the three chains needs PCLMULQDQ. Every
// x86-64 since 2010 (Intel Westmere, AMD Bulldozer) has both.
var hasAsm = cpu.X86.HasSSE42 && cpu.X86.HasPCLMULQDQ

// table is hash/crc32's Castagnoli table, for updateGeneric; made only when
// hasAsm is false, since making it on amd64 also builds hash/crc32's own
// 8 KiB of SSE4.2 tables.
var table *crc32.Table

// shiftConst[m] is x^(64m-33) mod P in the bit-reflected form of the CRC32
// instruction: the constant that PCLMULQDQ multiplies a chain's CRC by to
// move it m words (8m bytes) further along the message; see the assembly
// for the derivation. shiftConst[0] is unused.
var shiftConst [maxWords + 1]uint32

func init() {
	if !hasAsm {
		table = crc32.MakeTable(crc32.Castagnoli)
		return
	}
	// shiftConst[1] = x^31, which reflected is 1. Each next constant is the
	// one before times x^64 mod P, which is exactly what the CRC32
	// instruction computes for a word of zeros from a non-inverted crc:
	// Update inverts on entry and exit, and for 8 bytes it takes its serial
	// path, which does not read shiftConst. About 3 µs in all.
	var zero [8]byte
	k := uint32(1)
	for m := 1; m <= maxWords; m++ {
		shiftConst[m] = k
		k = ^Update(^k, zero[:])
	}
}

// Update returns the CRC-32C of p appended to the data whose CRC-32C is
// crc, exactly as crc32.Update(crc, crc32.MakeTable(crc32.Castagnoli), p).
//
// It is written in assembly (crc32c_amd64.s) so that a call costs one CALL:
// a Go wrapper around the assembly would not be inlined (two calls exceed
// the inliner's budget) and added about 0.5 ns to a 28-byte checksum
// (3.9 ns instead of 4.4, measured with each call's crc from the one
// before). It jumps to updateGeneric without SSE4.2 and PCLMULQDQ, and to
// updateLong past maxLen bytes.
//
//go:noescape
func Update(crc uint32, p []byte) uint32

// updateGeneric is Update without the assembly; only crc32c_amd64.s calls
// it.
func updateGeneric(crc uint32, p []byte) uint32 { return crc32.Update(crc, table, p) }

// updateLong is Update for more than maxLen bytes, in pieces of maxLen;
// only crc32c_amd64.s calls it.
func updateLong(crc uint32, p []byte) uint32 {
	for len(p) > maxLen {
		crc = Update(crc, p[:maxLen])
		p = p[maxLen:]
	}
	return Update(crc, p)
}
