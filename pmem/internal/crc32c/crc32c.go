// Package crc32c computes CRC-32C (Castagnoli), the checksum the pmem
// packages put on journal headers and transaction bodies, faster than
// hash/crc32 for the sizes those have (tens of bytes to a few KiB). Its
// results are bit for bit those of crc32.Update(crc,
// crc32.MakeTable(crc32.Castagnoli), p), for every input.
//
// Why a package of its own: on amd64, hash/crc32 runs the SSE4.2 CRC32
// instruction as one serial chain below 504 bytes, and that instruction
// has a latency of 3 cycles for a throughput of one a cycle, so two thirds
// of the CRC unit sit idle: a 280-byte record costs about 105 cycles. This
// package splits any buffer of 96 bytes or more into three parts, runs the
// three CRC chains interleaved, and merges them with carry-less multiplies
// (PCLMULQDQ) by constants x^n mod P, which exist for every part length,
// where hash/crc32 needs a 4 KiB table for each of its two fixed part
// lengths and so leaves shorter buffers serial. Measured on the AMD EPYC
// (Zen 4) these packages run on, a 280-byte checksum takes 18 ns instead
// of 32 when the caller waits for it, and 12.5-15.5 ns instead of 21-23
// when calls run back to back; below 96 bytes Update runs one chain, as
// hash/crc32 does, but without its dispatch: 28 bytes cost 4 ns instead
// of 8 back to back. See crc32c_amd64.s for the method and the numbers.
//
// On other architectures, and on amd64 processors without SSE4.2 and
// PCLMULQDQ, Update is hash/crc32's Castagnoli code (which uses the CRC32C
// instructions of arm64 itself).
package crc32c

// Checksum returns the CRC-32C of p (Update(0, p)).
func Checksum(p []byte) uint32 { return Update(0, p) }
