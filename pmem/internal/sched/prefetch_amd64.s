#include "textflag.h"

// func PrefetchW(p unsafe.Pointer)
// PREFETCHW (AX), only where CPUID reports it (hasPrefetchW). Go's
// assembler has no mnemonic for it: 0F 0D /1.
TEXT ·PrefetchW(SB),NOSPLIT,$0-8
	CMPB ·hasPrefetchW(SB), $0
	JEQ  done
	MOVQ p+0(FP), AX
	BYTE $0x0F; BYTE $0x0D; BYTE $0x08
done:
	RET

// func cpuid(leaf uint32) (eax, ecx uint32)
TEXT ·cpuid(SB),NOSPLIT,$0-16
	MOVL leaf+0(FP), AX
	XORL CX, CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL CX, ecx+12(FP)
	RET
