//go:build !amd64

package store

import "sync/atomic"

// loadFence orders the loads before it (a reader's copy of an entry) before
// the loads after it (the re-check of the slot and Seq). Weakly ordered
// CPUs (arm64) may satisfy the plain loads of the copy after the acquire
// load of Seq that follows them, which would let a torn copy pass the
// check; an atomic read-modify-write (acquire and release) on a word of our
// own keeps them in order.
func loadFence() {
	var w atomic.Uint32
	w.Add(0)
}
