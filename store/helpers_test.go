package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync/atomic"
	"testing"
)

var nameSeq atomic.Int64

// testName returns a store name unique to this process and test, and
// removes the store when the test ends, even if it fails.
func testName(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("shmkv-test-%d-%d", os.Getpid(), nameSeq.Add(1))
	t.Cleanup(func() {
		if err := Unlink(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cleanup: %v", err)
		}
	})
	return name
}

// newStore creates a store for one test and checks it when the test ends.
func newStore(t testing.TB, opts *Options) *Store {
	t.Helper()
	s, err := Create(testName(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Check(); err != nil && !errors.Is(err, ErrClosed) {
			t.Errorf("Check after test: %v", err)
		}
		s.Close()
	})
	return s
}
