//go:build shmkv_faults

package store

// With -tags shmkv_faults, SHMKV_FAULT="name:n" makes this process SIGKILL
// itself the n-th time (counting from 1) it reaches fault point name (or,
// with SHMKV_FAULT_ACTION=stop, SIGSTOP itself there, alive but frozen), and
// SHMKV_FAULT_LOG=path appends each point reached to path, so a test can
// enumerate the points of a mutation and then crash at each in turn.

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/shmkv/shmkv/layout"
)

var fault struct {
	once  sync.Once
	mu    sync.Mutex
	name  string
	n     int
	count int
	log   *os.File
}

func faultPoint(name string) {
	fault.once.Do(func() {
		if v, ok := os.LookupEnv("SHMKV_FAULT"); ok {
			n, c, _ := strings.Cut(v, ":")
			fault.name = n
			fault.n, _ = strconv.Atoi(c)
		}
		if p := os.Getenv("SHMKV_FAULT_LOG"); p != "" {
			fault.log, _ = os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		}
	})
	fault.mu.Lock()
	defer fault.mu.Unlock()
	if fault.log != nil {
		fault.log.WriteString(name + "\n")
	}
	if name != fault.name {
		return
	}
	fault.count++
	if fault.count == fault.n {
		if os.Getenv("SHMKV_FAULT_ACTION") == "stop" {
			syscall.Kill(os.Getpid(), syscall.SIGSTOP)
			return
		}
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

// eagerFrees: SHMKV_EAGER_FREE=1 makes every free merge at once, never
// lazy, so the crash tests reach the merge steps with small blocks too.
func eagerFrees() bool { return os.Getenv("SHMKV_EAGER_FREE") == "1" }

// bigFreeBlock: SHMKV_BIG_FREE=n makes tagged free blocks of n bytes and
// more big (layout.BigFree), so the crash tests reach the writes of a big
// block's size with small blocks. Every process sharing the store must
// see the same value: Check holds each free block's form to it.
func bigFreeBlock() uint64 {
	if n, err := strconv.ParseUint(os.Getenv("SHMKV_BIG_FREE"), 10, 64); err == nil && n%layout.EntryAlign == 0 && n >= layout.EntrySize && n <= layout.BigFree {
		return n
	}
	return layout.BigFree
}
