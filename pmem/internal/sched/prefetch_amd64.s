#include "textflag.h"

// func PrefetchW(p unsafe.Pointer)
// PREFETCHW (AX): Go's assembler has no mnemonic for it (0F 0D /1).
TEXT ·PrefetchW(SB),NOSPLIT,$0-8
	MOVQ p+0(FP), AX
	BYTE $0x0F; BYTE $0x0D; BYTE $0x08
	RET
