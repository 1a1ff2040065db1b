package store

// Counters: an int64 kept as the decimal text of its value ("42", "-7"),
// so that `shmkv get` prints it and `shmkv put` sets it, and any program
// reads it without knowing an encoding. Text costs a parse and a format
// per Add (tens of nanoseconds) against a fixed 8-byte encoding, next to
// a put's hundreds: readability wins.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
)

// ErrNotCounter is returned by Add when the key's value is not a counter
// (the decimal text of an int64), or adding would overflow one.
var ErrNotCounter = errors.New("shmkv: not a counter")

// Add adds delta to the counter at key and returns its new value,
// atomically with respect to every other writer in every process. A
// missing key counts as 0. A counter's value is the decimal text of an
// int64, so Put and Get (and `shmkv put`/`get`) set and read it as text.
func (s *Store) Add(key []byte, delta int64) (n int64, err error) {
	err = s.update(func(t *txn) error {
		n, err = t.addCounter(key, delta)
		return err
	})
	return n, s.fail("add", err)
}

func (t *txn) addCounter(key []byte, delta int64) (int64, error) {
	p, err := t.find(key)
	if err != nil {
		return 0, err
	}
	var old int64
	if p.found {
		v := t.s.value(p.b)
		if old, err = strconv.ParseInt(string(v), 10, 64); err != nil {
			return 0, fmt.Errorf("%w: %s holds %s, not the decimal text of an int64", ErrNotCounter, QuoteKey(key), QuoteKey(v))
		}
	}
	if (delta > 0 && old > math.MaxInt64-delta) || (delta < 0 && old < math.MinInt64-delta) {
		return 0, fmt.Errorf("%w: %s: %d + %d overflows an int64", ErrNotCounter, QuoteKey(key), old, delta)
	}
	n := old + delta
	var buf [20]byte
	return n, t.put(key, strconv.AppendInt(buf[:0], n, 10), condNone, nil)
}
