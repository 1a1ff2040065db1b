package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/layout"
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

// TestCorruptGrowthFields: a published size or an index descriptor that
// cannot be right gives ErrCorrupt to readers, writers, Open and Check of
// a store mid-migration, never a fault or a wild access; a size past the
// object that is still inside the mapping is caught by the fault guard.
func TestCorruptGrowthFields(t *testing.T) {
	cases := []struct {
		what   string
		damage func(s *Store)
	}{
		{"size past MaxSize", func(s *Store) { s.hdr.Grow.Size.Store(s.maxSize + 4096) }},
		{"size below the first", func(s *Store) { s.hdr.Grow.Size.Store(s.hdr.InitSize - 4096) }},
		{"size past the object", func(s *Store) { s.hdr.Grow.Size.Store(s.geo.Size + 8<<20) }},
		{"size past the object, a slot naming past it", func(s *Store) {
			s.hdr.Grow.Size.Store(s.geo.Size + 8<<20)
			p, err := s.find([]byte("k00007"), hashKey([]byte("k00007")), nil)
			if err != nil || !p.found {
				panic(fmt.Sprint("k00007 not found: ", err))
			}
			s.word(p.slot).Store(layout.SlotWord(p.tag, s.geo.Size+4<<20))
		}},
		{"size unaligned", func(s *Store) { s.hdr.Grow.Size.Store(s.geo.Size + 4) }},
		{"size zero", func(s *Store) { s.hdr.Grow.Size.Store(0) }},
		{"table past the size", func(s *Store) {
			d := &s.hdr.Index.Desc[s.hdr.Grow.IndexGen.Load()&1]
			d.Off.Store(s.geo.Size - 64)
		}},
		{"table of no buckets", func(s *Store) {
			s.hdr.Index.Desc[s.hdr.Grow.IndexGen.Load()&1].Buckets.Store(0)
		}},
		{"table of 2^40 buckets", func(s *Store) {
			s.hdr.Index.Desc[s.hdr.Grow.IndexGen.Load()&1].Buckets.Store(1 << 40)
		}},
		{"old table overlapping the current", func(s *Store) {
			d := &s.hdr.Index.Desc[s.hdr.Grow.IndexGen.Load()&1]
			d.OldOff.Store(d.Off.Load())
		}},
		{"the other descriptor (zeros)", func(s *Store) {
			g := s.hdr.Grow.IndexGen.Load()
			s.hdr.Index.Desc[(g+1)&1] = layout.IndexDesc{}
			s.hdr.Grow.IndexGen.Store(g + 1)
		}},
		{"cursor past the old table", func(s *Store) { s.hdr.Alloc.IndexCursor.Store(1 << 50) }},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			name := testName(t)
			s, err := Create(name, &Options{Size: 1 << 20, MaxSize: 64 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			n := 0
			for ; !s.Stats().IndexMigrating || s.Stats().IndexMigrations == 0; n++ {
				if err := s.Put(fmt.Appendf(nil, "k%05d", n), bytes.Repeat([]byte{'v'}, 200)); err != nil {
					t.Fatal(err)
				}
			}
			reader, err := Open(name, &Options{ReadOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			defer reader.Close()
			c.damage(s)
			bad := 0
			for i := range n {
				v, err := reader.Get(fmt.Appendf(nil, "k%05d", i))
				switch {
				case err == nil && len(v) != 200:
					t.Fatalf("k%05d: %d bytes", i, len(v))
				case err != nil && !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNotFound):
					t.Fatalf("k%05d: %v", i, err)
				case err != nil:
					bad++
				}
			}
			werr := s.Put([]byte("new"), []byte("v"))
			_, oerr := Open(name, nil)
			cerr := reader.Check()
			t.Logf("%d of %d gets failed; put: %v; open: %v; check: %v", bad, n, werr, oerr, cerr)
			if strings.Contains(c.what, "a slot naming past it") {
				if _, err := reader.Get([]byte("k00007")); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("get through a slot past the object: %v, want ErrCorrupt", err)
				} else {
					t.Log(err)
				}
			}
			if cerr == nil {
				t.Fatal("Check passed")
			}
			if werr != nil && !errors.Is(werr, ErrCorrupt) {
				t.Fatalf("put: %v, want ErrCorrupt", werr)
			}
			// Let the cleanup's Check see a whole store again.
			s.hdr.Grow.Size.Store(s.geo.Size)
		})
	}
}

// TestGrowReusesLongerObject: an object left longer than the published
// size (a writer died between extending it and publishing) is a valid
// store, and the next growths use those bytes.
func TestGrowReusesLongerObject(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20, MaxSize: 64 << 20})
	if err := os.Truncate(s.Path(), 8<<20); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.ObjectBytes != 8<<20 || st.Size != 1<<20 {
		t.Fatalf("object %d bytes, size %d", st.ObjectBytes, st.Size)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	other, err := Open(s.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := other.Grow(4 << 20); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.ObjectBytes != 8<<20 || st.Size < 4<<20 {
		t.Fatalf("after Grow(4 MiB): object %d bytes, size %d", st.ObjectBytes, st.Size)
	}
	for i := range 4000 {
		if err := s.Put(fmt.Appendf(nil, "k%05d", i), bytes.Repeat([]byte{'v'}, 3000)); err != nil {
			t.Fatal(err)
		}
	}
	if st := s.Stats(); st.Size <= 8<<20 || st.ObjectBytes != st.Size {
		t.Fatalf("after 12 MB of puts: object %d bytes, size %d", st.ObjectBytes, st.Size)
	}
}

// TestExtendWhenShmIsFull: growing into a file system with too little room
// gives ErrFull that says the file system is full, how big it is and how
// to raise it, and leaves the object as long as it was. It mounts a 4 MiB
// tmpfs for the object (root only; skipped otherwise).
func TestExtendWhenShmIsFull(t *testing.T) {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m"); err != nil {
		t.Skipf("cannot mount a small tmpfs to fill (%v): needs root", err)
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	f, err := os.OpenFile(dir+"/obj", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	obj := &object{file: f, path: dir + "/obj"}
	if err := extendObject(obj, 0, 2<<20, false); err != nil {
		t.Fatal(err)
	}
	err = extendObject(obj, 2<<20, 8<<20, false)
	if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "is full") || !strings.Contains(err.Error(), "4.0 MiB") || !strings.Contains(err.Error(), "remount") {
		t.Fatalf("growing past the file system: %v", err)
	}
	t.Log(err)
	if fi, err := f.Stat(); err != nil || fi.Size() != 2<<20 {
		t.Fatalf("after the failed growth the object is %d bytes (%v), want 2 MiB", fi.Size(), err)
	}
}

// TestOpenWhileGrowing: Opens racing a growth never take the store for
// corrupt (a writer extends the object, then publishes the size; an
// opener that looked at the object's length before both must look again).
func TestOpenWhileGrowing(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20, MaxSize: 256 << 20})
	done := make(chan error, 1)
	go func() {
		var err error
		for size := int64(2 << 20); size <= 256<<20 && err == nil; size += 2 << 20 {
			err = s.Grow(size)
		}
		done <- err
	}()
	opens := 0
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d opens during %d growths", opens, s.Stats().Growths)
			return
		default:
		}
		o, err := Open(s.Name(), nil)
		if err != nil {
			t.Fatalf("open %d during growth: %v", opens, err)
		}
		o.Close()
		opens++
	}
}
