//go:build !shmkv_faults

package store

import "github.com/shmkv/shmkv/layout"

// faultPoint marks a step of the write path at which the crash tests (built
// with -tags shmkv_faults) can kill the process. In normal builds it is an
// empty function the compiler removes.
func faultPoint(string) {}

// eagerFrees is false: frees are lazy when they may be (alloc.go).
func eagerFrees() bool { return false }

// bigFreeBlock is the size from which a tagged free block is big.
func bigFreeBlock() uint64 { return layout.BigFree }
