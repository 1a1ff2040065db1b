#include "textflag.h"

// func getg() uintptr
//
// The running goroutine's g, which the runtime keeps in the thread's TLS
// slot on amd64. It identifies the goroutine for as long as it runs (a g
// is reused only after its goroutine exits), even after its stack grows.
TEXT ·getg(SB),NOSPLIT,$0-8
	MOVQ (TLS), AX
	MOVQ AX, ret+0(FP)
	RET
