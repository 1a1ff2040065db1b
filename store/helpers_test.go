package store

import (
	"errors"
	"testing"

	"github.com/shmkv/shmkv/internal/shmtest"
)

// testName returns a store name unique to this process and test, and
// removes the store when the test ends, even if it fails.
func testName(t testing.TB) string {
	t.Helper()
	return shmtest.Name(t, "shmkv-test", Unlink)
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

// cur is the store's current index table.
func (s *Store) cur() *itable {
	v, err := s.view()
	if err != nil {
		panic(err)
	}
	return &v.cur
}
