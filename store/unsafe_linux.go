package store

// All of package store's direct use of unsafe is here: the futex system
// call, which takes the address of the lock word, and the mapping's address
// for /proc/self/smaps. Links inside the region go through offsetptr.

import (
	"os"
	"runtime"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// futex calls futex(2) on a word of the shared mapping. The operation is
// never FUTEX_PRIVATE_FLAG: the kernel keys a shared mapping's futex on the
// object and offset, so processes that map the store at different addresses
// wait and wake on the same word.
func futex(w *atomic.Uint32, op int, val uint32, timeout *unix.Timespec) {
	unix.Syscall6(unix.SYS_FUTEX, uintptr(unsafe.Pointer(w)), uintptr(op), uintptr(val),
		uintptr(unsafe.Pointer(timeout)), 0, 0)
}

// retire replaces the mapping with an inaccessible, memory-less reservation
// of the same addresses (MAP_FIXED over it), so a read that races Close
// faults rather than reading another mapping that might reuse the range.
func (m *mapping) retire() error {
	_, err := unix.MmapPtr(-1, 0, unsafe.Pointer(unsafe.SliceData(m.data)), uintptr(len(m.data)),
		unix.PROT_NONE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_FIXED|unix.MAP_NORESERVE)
	if err != nil {
		return os.NewSyscallError("mmap(MAP_FIXED, PROT_NONE)", err)
	}
	return nil
}

// mlockOnFault is mlock2(MLOCK_ONFAULT): lock each page of b when it is
// first faulted in.
func mlockOnFault(b []byte) error {
	_, _, errno := unix.Syscall(unix.SYS_MLOCK2, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)), unix.MLOCK_ONFAULT)
	if errno != 0 {
		return errno
	}
	return nil
}

// The writer's stores into the region. Readers and recovery need them to
// become visible in program order (an entry's bytes before the slot that
// publishes it; an odd Seq before the bytes of a freed block change; an
// undo record before the count that covers it), and each aligned word
// whole. On amd64 a plain store does exactly that (x86-TSO keeps stores in
// order, and Go's compiler keeps stores in program order), while
// sync/atomic's Store is an XCHG: a full barrier that waits for every
// earlier store to reach the cache, cache misses included, which cost a
// third of a Put. Elsewhere these are atomic stores.

func storeWord(w *atomic.Uint64, v uint64) {
	if runtime.GOARCH == "amd64" {
		*(*uint64)(unsafe.Pointer(w)) = v
		return
	}
	w.Store(v)
}

func storeHalf(w *atomic.Uint32, v uint32) {
	if runtime.GOARCH == "amd64" {
		*(*uint32)(unsafe.Pointer(w)) = v
		return
	}
	w.Store(v)
}

// addr is where the mapping starts in this process.
func (m *mapping) addr() uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(m.data))) }
