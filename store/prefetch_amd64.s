#include "textflag.h"

// func prefetch(p uintptr, lines uintptr)
//
// Asks for the cache lines from p on, lines of them, ahead of a write:
// PREFETCHT0 never faults, whatever p is, and never waits.
TEXT ·prefetch(SB),NOSPLIT|NOFRAME,$0-16
	MOVQ p+0(FP), AX
	MOVQ lines+8(FP), CX
	TESTQ CX, CX
	JEQ done
loop:
	PREFETCHT0 (AX)
	ADDQ $64, AX
	DECQ CX
	JNE loop
done:
	RET
