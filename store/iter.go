package store

// Iteration in the manner of Go 1.23: range-over-func sequences over the
// store's keys and values, built on the same lock-free scan as Range.
//
// What iteration sees while writers run: each pair was in the store, whole,
// at some instant during the iteration; a key present throughout is seen
// exactly once; a key put or deleted meanwhile may or may not be seen, and
// one deleted and put again may be seen twice. The order is the index's,
// not sorted. Keys and values are fresh copies the caller may keep.

import (
	"bytes"
	"errors"
	"iter"
)

// All yields every key and value (see Range for what it sees while
// writers run). The sequence ends early if the store turns out damaged or
// is closed; use ForEach to learn why.
func (s *Store) All() iter.Seq2[[]byte, []byte] {
	return func(yield func(k, v []byte) bool) {
		s.scan(true, yield)
	}
}

// Prefix is All for the keys that start with p. It still looks at every
// key: the index is a hash, not a sorted tree.
func (s *Store) Prefix(p []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func(k, v []byte) bool) {
		s.scan(true, func(k, v []byte) bool {
			return !bytes.HasPrefix(k, p) || yield(k, v)
		})
	}
}

// Keys yields every key, copying no value.
func (s *Store) Keys() iter.Seq[[]byte] {
	return func(yield func(k []byte) bool) {
		s.scan(false, func(k, _ []byte) bool { return yield(k) })
	}
}

// ForEach calls fn for each key and value, as Range does, until fn returns
// an error, which ForEach returns; or the error that ended the scan.
func (s *Store) ForEach(fn func(key, value []byte) error) error {
	var stop error
	err := s.scan(true, func(k, v []byte) bool {
		stop = fn(k, v)
		return stop == nil
	})
	if stop != nil {
		return stop
	}
	return s.fail("range", err)
}

// DeleteIfExists removes key if it is there, and reports whether it was:
// an absent key is not an error.
func (s *Store) DeleteIfExists(key []byte) (bool, error) {
	err := s.Delete(key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}
