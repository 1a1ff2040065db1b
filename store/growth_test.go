package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// TestGrowsWhenFilling: a store created at 1 MiB that may grow to 64 MiB
// takes 40 MiB of values, growing by itself, and keeps every one of them;
// another Store of the same store, opened before any growth, reads them
// all without reopening.
func TestGrowsWhenFilling(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20, MaxSize: 64 << 20})
	other, err := Open(s.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	val := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 10000+i%7) }
	const n = 4000
	for i := range n {
		if err := s.Put(fmt.Appendf(nil, "k%05d", i), val(i)); err != nil {
			t.Fatalf("put %d: %v (stats %+v)", i, err, s.Stats())
		}
	}
	st := s.Stats()
	if st.Size < 40<<20 || st.Growths == 0 || st.InitialSize != 1<<20 || st.MaxSize != 64<<20 {
		t.Fatalf("after 40 MiB of values: size %d, %d growths, initial %d, max %d", st.Size, st.Growths, st.InitialSize, st.MaxSize)
	}
	if st.Size > 64<<20 {
		t.Fatalf("grew past MaxSize: %d", st.Size)
	}
	for _, r := range []*Store{s, other} {
		for i := range n {
			v, err := r.Get(fmt.Appendf(nil, "k%05d", i))
			if err != nil || !bytes.Equal(v, val(i)) {
				t.Fatalf("get %d: %d bytes, %v", i, len(v), err)
			}
		}
	}
	// The other Store writes into the grown space too.
	if err := other.Put([]byte("from-other"), bytes.Repeat([]byte("x"), 100000)); err != nil {
		t.Fatal(err)
	}
	if err := other.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestGrowStopsAtMaxSize: past MaxSize a put gets ErrFull that says the
// store is at its maximum, and what was written stays.
func TestGrowStopsAtMaxSize(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20, MaxSize: 4 << 20})
	var err error
	i := 0
	for ; i < 10000; i++ {
		if err = s.Put(fmt.Appendf(nil, "k%05d", i), bytes.Repeat([]byte{1}, 4000)); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "maximum size") {
		t.Fatalf("put %d: %v", i, err)
	}
	st := s.Stats()
	if st.Size != 4<<20 {
		t.Fatalf("size %d at ErrFull, want MaxSize", st.Size)
	}
	if st.BlockBytes < st.HeapSize*8/10 {
		t.Fatalf("ErrFull with %d of %d heap bytes in entries", st.BlockBytes, st.HeapSize)
	}
	for j := range i {
		if _, err := s.Get(fmt.Appendf(nil, "k%05d", j)); err != nil {
			t.Fatalf("get %d: %v", j, err)
		}
	}
}

// TestGrowByHand: Grow enlarges a store ahead of need, to at least the
// size asked; past MaxSize it refuses with ErrFull; a fixed-size
// store (Size alone) cannot grow.
func TestGrowByHand(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20, MaxSize: 256 << 20})
	if err := s.Grow(100 << 20); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Size < 100<<20 || st.Size > 256<<20 || st.Growths < 2 {
		t.Fatalf("after Grow(100 MiB): size %d, %d growths", st.Size, st.Growths)
	}
	if err := s.Grow(1 << 30); !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "maximum size is 256.0 MiB") {
		t.Fatalf("Grow past MaxSize: %v", err)
	}
	before := s.Stats().Size
	if err := s.Grow(2 << 20); err != nil || s.Stats().Size != before {
		t.Fatalf("Grow below the size: %v, size %d -> %d", err, before, s.Stats().Size)
	}
	fixed := newStore(t, &Options{Size: 1 << 20})
	if st := fixed.Stats(); st.MaxSize != 1<<20 {
		t.Fatalf("a store given only Size has MaxSize %d", st.MaxSize)
	}
	if err := fixed.Grow(2 << 20); !errors.Is(err, ErrFull) {
		t.Fatalf("Grow of a fixed store: %v", err)
	}
}

// TestDefaultStoreGrows: a store created with no sizes starts small and
// may grow up to /dev/shm's size.
func TestDefaultStoreGrows(t *testing.T) {
	s := newStore(t, nil)
	st := s.Stats()
	if st.Size != DefaultSize || st.MaxSize < st.Size || st.MaxSize != max(shmCapacity(), DefaultSize) {
		t.Fatalf("default store: size %d, max %d (/dev/shm %d)", st.Size, st.MaxSize, shmCapacity())
	}
	if _, err := Create(testName(t), &Options{Size: 4 << 20, MaxSize: 2 << 20}); err == nil || !strings.Contains(err.Error(), "below Size") {
		t.Fatalf("MaxSize below Size: %v", err)
	}
}

// TestRangeWhileIndexGrows: Range runs while its own callback's puts make
// the index start a migration, move buckets, finish it and start the next:
// every key present throughout is seen (at least once), nothing else is,
// and no value is wrong.
func TestRangeWhileIndexGrows(t *testing.T) {
	for _, mode := range []string{"Range", "Keys"} {
		t.Run(mode, func(t *testing.T) {
			s := newStore(t, &Options{Size: 1 << 20, MaxSize: 64 << 20})
			capacity := s.Stats().IndexCapacity
			n := capacity*3/4 - 10 // just short of the first migration
			for i := range n {
				if err := s.Put(fmt.Appendf(nil, "k%05d", i), fmt.Appendf(nil, "v%05d", i)); err != nil {
					t.Fatal(err)
				}
			}
			seen := map[string]int{}
			added := 0
			visit := func(k, v []byte) bool {
				if !bytes.HasPrefix(k, []byte("k")) {
					if !bytes.HasPrefix(k, []byte("x")) {
						t.Fatalf("scan met key %q, never put", k)
					}
					return true
				}
				seen[string(k)]++
				if v != nil && !bytes.Equal(v[1:], k[1:]) {
					t.Fatalf("%s = %q", k, v)
				}
				for range 4 {
					if err := s.Put(fmt.Appendf(nil, "x%05d", added), []byte("x")); err != nil {
						t.Fatal(err)
					}
					added++
				}
				return true
			}
			var err error
			if mode == "Range" {
				err = s.Range(visit)
			} else {
				for k := range s.Keys() {
					visit(k, nil)
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			st := s.Stats()
			if st.IndexMigrations < 1 {
				t.Fatalf("no migration finished while the scan ran (%d keys added)", added)
			}
			dups := 0
			for i := range n {
				switch c := seen[fmt.Sprintf("k%05d", i)]; {
				case c == 0:
					t.Fatalf("k%05d, present throughout, not seen", i)
				case c > 1:
					dups++
				}
			}
			t.Logf("%s: %d keys, %d seen twice, %d added during the scan, %d migrations", mode, n, dups, added, st.IndexMigrations)
		})
	}
}

// TestCompactFinishesMigration: a migration left half done when writes
// stop is finished by Compact, and lookups find every key after.
func TestCompactFinishesMigration(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20, MaxSize: 64 << 20})
	n := 0
	for ; !s.Stats().IndexMigrating; n++ {
		if err := s.Put(fmt.Appendf(nil, "k%05d", n), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.IndexMigrating || st.IndexMigrations != 1 {
		t.Fatalf("after Compact: migrating %v, %d migrations", st.IndexMigrating, st.IndexMigrations)
	}
	for i := range n {
		if _, err := s.Get(fmt.Appendf(nil, "k%05d", i)); err != nil {
			t.Fatalf("k%05d: %v", i, err)
		}
	}
}

// TestCheckAfterAnotherGrew: Stores that did not grow the store themselves,
// one writable and one read-only, check it after another Store grew it.
func TestCheckAfterAnotherGrew(t *testing.T) {
	a := newStore(t, &Options{Size: 1 << 20, MaxSize: 64 << 20})
	b, err := Open(a.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ro, err := Open(a.Name(), &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	for i := 0; b.Stats().Growths == 0; i++ {
		if err := b.Put(fmt.Appendf(nil, "k%05d", i), bytes.Repeat([]byte{1}, 4000)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []*Store{a, ro, b} {
		if err := s.Check(); err != nil {
			t.Fatalf("Check from a Store that did not grow it: %v", err)
		}
	}
}
