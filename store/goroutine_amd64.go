package store

func getg() uintptr

// curG identifies the running goroutine, for ErrInUpdate (batch.go): the
// address of its runtime g, read from the thread's TLS in three
// instructions. runtime.Stack, the portable way, took about 40,000
// instructions: a tenth of a batched put of 100 mutations.
func curG(*Store) uint64 { return uint64(getg()) }

// prefetch asks for lines cache lines from address p on, without waiting
// for them; an address outside the mapping is harmless (prefetch_amd64.s).
//
//go:noescape
func prefetch(p uintptr, lines uintptr)
