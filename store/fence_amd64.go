package store

// loadFence orders the loads before it (a reader's copy of an entry) before
// the loads after it (the re-check of the slot and Seq). On amd64 loads are
// never reordered with other loads (x86-TSO), so it is empty.
func loadFence() {}
