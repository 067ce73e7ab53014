#include "textflag.h"

// func clwbRange(addr, end uintptr)
TEXT ·clwbRange(SB),NOSPLIT,$0-16
	MOVQ addr+0(FP), AX
	MOVQ end+8(FP), BX
loop:
	CMPQ AX, BX
	JAE done
	CLWB (AX)
	ADDQ $64, AX
	JMP loop
done:
	RET

// func clflushoptRange(addr, end uintptr)
TEXT ·clflushoptRange(SB),NOSPLIT,$0-16
	MOVQ addr+0(FP), AX
	MOVQ end+8(FP), BX
loop:
	CMPQ AX, BX
	JAE done
	CLFLUSHOPT (AX)
	ADDQ $64, AX
	JMP loop
done:
	RET

// func clflushRange(addr, end uintptr)
TEXT ·clflushRange(SB),NOSPLIT,$0-16
	MOVQ addr+0(FP), AX
	MOVQ end+8(FP), BX
loop:
	CMPQ AX, BX
	JAE done
	CLFLUSH (AX)
	ADDQ $64, AX
	JMP loop
done:
	RET

// func sfence()
TEXT ·sfence(SB),NOSPLIT,$0-0
	SFENCE
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB),NOSPLIT,$0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET
