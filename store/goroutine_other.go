//go:build !amd64

package store

// curG identifies the running goroutine, for ErrInUpdate (batch.go): its
// id, parsed from runtime.Stack's header into a buffer of the Store's.
// REQUIRES: wmu, which guards the buffer, or s nil (a fresh buffer).
func curG(s *Store) uint64 {
	if s == nil {
		return goid(make([]byte, 32))
	}
	return goid(s.goidBuf[:])
}

// prefetch is a no-op where there is no prefetch instruction written for
// the architecture (prefetch_amd64.s).
func prefetch(p uintptr, lines uintptr) {}
