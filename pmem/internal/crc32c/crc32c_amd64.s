#include "textflag.h"
#include "go_asm.h"

// The method.
//
// Let CRC(I, M) be the CRC-32C of the message M from the initial value I,
// neither inverted (Update inverts crc on entry and the result on exit, as
// hash/crc32 does). In polynomials over GF(2), with P the Castagnoli
// polynomial, CRC(I, M) = (I·x^(8|M|) + M·x^32) mod P, and so for
// M = A B C:
//
//	CRC(I, ABC) = CRC(I, A)·x^(8(|B|+|C|)) + CRC(0, B)·x^(8|C|) + CRC(0, C)
//
// The three CRCs are independent chains of CRC32Q instructions. CRC32Q has
// a latency of 3 cycles and a throughput of one a cycle (measured here:
// 0.82 ns for one chain, 0.274 ns per instruction for three interleaved
// chains), so three chains run in the time of one.
//
// The registers hold polynomials bit-reflected (bit 0 is the highest
// power), and CRC32Q c, w computes c·x^64 + w·x^32. PCLMULQDQ of two
// reflected 32-bit values a and k gives the reflected 64-bit value of
// a·k·x (the product of reflected operands comes out one place short).
// So with k = x^(8s-33) mod P, XORing v = PCLMULQDQ(a, k) into a data word
// that C's chain has yet to read adds v·x^32 = a·x^(8s) to what the chain
// computes from there: the CRC32Q of that word does the reduction mod P.
// Merging A and B into C's last word takes s = |B|+|C| for A and s = |C|
// for B; bytes after that word multiply every term alike, so s counts up
// to the end of that word only. shiftConst[m] holds x^(64m-33) for s = 8m.
//
// The layout: 0 to 7 head bytes, run in A's chain (which starts from the
// inverted crc) before its words; W words, nA for A, nB = nA for B, the
// rest, nC, for C; from ALIGN bytes on, 0 to 7 tail bytes after C's last
// word. B and C start from 0.
//
// hash/crc32 merges with tables instead, four 256-entry tables for each
// part length, so it has two part lengths (168 and 1344 bytes) and runs
// shorter buffers as one chain. A constant for every length lets the parts
// be as long as the buffer allows: nA = (W-D)/3, so C gets D to D+2 words
// more than A and B, and runs them while A and B are merged. The merge
// takes about 16 cycles from the end of A and B to the end of C: MOVL to
// an X register and MOVQ back about 7 (measured as a round trip),
// PCLMULQDQ 4, PXOR and XORQ 1 each, the CRC32Q of C's last word 3. That
// is 5 of C's words: D = 5 measured best; D = 2 (more even parts, at 280
// bytes 11/11/13 words instead of 10/10/15) cost 0.5 ns, as C then waits
// for the merge.
//
// Measured on the Zen 4 (ns per call; the machine is shared, and runs
// vary by about 10%): 280 bytes back to back 12.5-15.5 (hash/crc32
// 21-23), each call waiting for the one before 18 (hash/crc32 32). The
// three chains of 12 words on their own, with no merge and no head or
// tail, take 11.2-11.6 ns: the floor of this method, set by the CRC unit.
#define D 5

// From ALIGN bytes on, the part before the words is however many bytes
// bring them to an 8-byte boundary, and the bytes left over after C's
// last word are run after it; below, the part before the words is the
// length mod 8, so nothing is left over. Loads that cross a cache line
// cost a 1040-byte buffer at an address 4 mod 8 48.6 ns instead of 40.6
// and a 4096-byte one at an odd address 160 ns instead of 147; at 280
// bytes they cost nothing measurable, while the left-over bytes would add
// up to 9 cycles to C's chain, the one that ends last.
#define ALIGN 512

// Buffers of MIN3 bytes or more take three chains (which need W >= D+3
// words, so that nA >= 1). Below it one chain is as fast: the merge and
// the division cost what the chains save. Measured, one chain / three,
// in ns, for a call that waits for the one before: 64 bytes 9.7 / 10.3,
// 80 bytes 11.5 / 11.7, 96 bytes 12.9 / 12.3, 120 bytes 15.7 / 13.6; for
// calls back to back, which one chain lets the processor overlap, one
// chain wins up to about 150 bytes (96 bytes: 6.1 / 7.2, 160 bytes:
// 9.7 / 8.6).
#define MIN3 96

// func Update(crc uint32, p []byte) uint32
TEXT ·Update(SB),NOSPLIT,$0-36
	CMPB ·hasAsm(SB), $0
	JEQ  generic
	MOVL crc+0(FP), AX
	MOVQ p_base+8(FP), SI
	MOVQ p_len+16(FP), CX
	NOTL AX
	CMPQ CX, $MIN3
	JAE  triple

	// Below MIN3 bytes: one chain of words, then 4, 2 and 1 bytes.
	CMPQ CX, $8
	JB   tail4
loop1:
	CRC32Q (SI), AX
	ADDQ $8, SI
	SUBQ $8, CX
	CMPQ CX, $8
	JAE  loop1
tail4:
	TESTQ $4, CX
	JZ   tail2
	CRC32L (SI), AX
	ADDQ $4, SI
tail2:
	TESTQ $2, CX
	JZ   tail1
	CRC32W (SI), AX
	ADDQ $2, SI
tail1:
	TESTQ $1, CX
	JZ   done1
	CRC32B (SI), AX
done1:
	NOTL AX
	MOVL AX, ret+32(FP)
	RET

triple:
	CMPQ CX, $const_maxLen
	JA   long

	// The bytes before the words, into A's chain (AX): the length mod 8
	// (BX = length) or the distance to an 8-byte boundary (BX = -p).
	MOVQ CX, BX
	CMPQ CX, $ALIGN
	JB   head1
	MOVQ SI, BX
	NEGQ BX
head1:
	TESTQ $1, BX
	JZ   head2
	CRC32B (SI), AX
	INCQ SI
	DECQ CX
head2:
	TESTQ $2, BX
	JZ   head4
	CRC32W (SI), AX
	ADDQ $2, SI
	SUBQ $2, CX
head4:
	TESTQ $4, BX
	JZ   split
	CRC32L (SI), AX
	ADDQ $4, SI
	SUBQ $4, CX

split:
	MOVQ CX, R13
	ANDQ $7, R13          // R13 = bytes after the words (0 below ALIGN)
	SHRQ $3, CX           // CX = W, the words
	// nA = (W-D)/3: for x < 2^32, x/3 = x*0xAAAAAAAB >> 33.
	LEAQ -D(CX), R8
	MOVL $0xAAAAAAAB, R9
	IMULQ R9, R8
	SHRQ $33, R8          // R8 = nA = nB
	LEAQ (R8)(R8*1), R9
	SUBQ R9, CX           // CX = nC
	LEAQ (SI)(R8*8), DI   // DI = B
	LEAQ (DI)(R8*8), R10  // R10 = C
	LEAQ ·shiftConst(SB), R11
	LEAQ (R8)(CX*1), R9
	MOVL (R11)(R9*4), X2  // X2 = shiftConst[nB+nC], for A
	MOVL (R11)(CX*4), X3  // X3 = shiftConst[nC], for B
	XORL BX, BX
	XORL DX, DX
	MOVQ R8, R9

	// A (AX), B (BX) and C (DX) side by side. Unaligned loads are fine:
	// see ALIGN. Unrolling changes nothing, as the CRC unit is the limit.
loop3:
	CRC32Q (SI), AX
	CRC32Q (DI), BX
	CRC32Q (R10), DX
	ADDQ $8, SI
	ADDQ $8, DI
	ADDQ $8, R10
	DECQ R9
	JNZ  loop3

	// R12 = A·shiftConst[nB+nC]·x + B·shiftConst[nC]·x, which runs while
	// C goes on: it is first in program order so that it issues at once.
	MOVL AX, X0
	MOVL BX, X1
	PCLMULQDQ $0, X2, X0
	PCLMULQDQ $0, X3, X1
	PXOR X1, X0
	MOVQ X0, R12

	// C's words but its last (nC-nA-1 >= D-1 of them).
	SUBQ R8, CX
	DECQ CX
loopC:
	CRC32Q (R10), DX
	ADDQ $8, R10
	DECQ CX
	JNZ  loopC

	// C's last word, with A and B merged in, then the bytes after it.
	XORQ (R10), R12
	CRC32Q R12, DX
	ADDQ $8, R10
	TESTQ $4, R13
	JZ   after2
	CRC32L (R10), DX
	ADDQ $4, R10
after2:
	TESTQ $2, R13
	JZ   after1
	CRC32W (R10), DX
	ADDQ $2, R10
after1:
	TESTQ $1, R13
	JZ   done3
	CRC32B (R10), DX
done3:
	NOTL DX
	MOVL DX, ret+32(FP)
	RET

	// Tail calls with Update's own arguments, still in place.
generic:
	JMP ·updateGeneric(SB)
long:
	JMP ·updateLong(SB)
