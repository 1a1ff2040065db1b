package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/shmkv/shmkv/layout"
)

// writeObject puts raw bytes in /dev/shm under a test name.
func writeObject(t *testing.T, data []byte) string {
	name := testName(t)
	if err := os.WriteFile(ShmDir+"/"+name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestForeignObjects(t *testing.T) {
	short := &Options{InitTimeout: 50 * time.Millisecond}
	junk := bytes.Repeat([]byte("not a store "), 1000)
	cases := []struct {
		what string
		data []byte
		want error
	}{
		{"text", junk, ErrIncompatible},
		{"zeros", make([]byte, 1<<20), ErrIncompatible},
		{"tiny", []byte("SHMKV"), ErrIncompatible},
	}
	for _, c := range cases {
		name := writeObject(t, c.data)
		_, err := Open(name, short)
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Open = %v, want %v", c.what, err, c.want)
		}
		t.Logf("%s: %v", c.what, err)
		got, _ := os.ReadFile(ShmDir + "/" + name)
		if !bytes.Equal(got, c.data) {
			t.Errorf("%s: Open changed the object", c.what)
		}
		if _, err := OpenOrCreate(name, short); !errors.Is(err, c.want) {
			t.Errorf("%s: OpenOrCreate = %v, want %v (and never re-initialise)", c.what, err, c.want)
		}
	}
}

// damageHeader copies a valid store's bytes, lets f damage the copy, and
// returns the copy's name.
func damagedCopy(t *testing.T, f func(h *layout.Header, b []byte)) string {
	s := newStore(t, &Options{Size: 1 << 20})
	s.Put([]byte("k"), []byte("v"))
	b := append([]byte(nil), s.Mapping()...)
	name := writeObject(t, b)
	o, err := Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	f(o.Header(), o.Mapping())
	o.Close()
	return name
}

func TestVersionAndChecksum(t *testing.T) {
	newer := damagedCopy(t, func(h *layout.Header, _ []byte) {
		h.Version++
		h.Checksum = layout.HeaderChecksum(h)
	})
	if _, err := Open(newer, nil); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("newer version: %v", err)
	} else {
		t.Log(err)
	}
	bad := damagedCopy(t, func(h *layout.Header, _ []byte) { h.HeapSize-- })
	if _, err := Open(bad, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("checksum mismatch: %v", err)
	} else {
		t.Log(err)
	}
}

// TestCheckFindsDamage damages one invariant at a time and expects Check to
// name it.
func TestCheckFindsDamage(t *testing.T) {
	cases := []struct {
		what   string
		damage func(s *Store)
		want   string
	}{
		{"count", func(s *Store) { s.hdr.Meta.Count.Add(1) }, "count"},
		{"overflow", func(s *Store) { s.cur().bucket(3).Overflow.Add(1) }, "overflow"},
		{"slot outside heap", func(s *Store) {
			s.cur().bucket(0).Slots[0].Store(layout.SlotWord(1, s.geo.HeapOff-16))
		}, "not a live entry"},
		{"entry seq", func(s *Store) {
			s.Range(func(k, _ []byte) bool {
				p, _ := s.find(k, hashKey(k), nil)
				p.b.e.Seq.Add(1)
				return false
			})
		}, "neither free nor a published entry"},
		{"free list", func(s *Store) { s.hdr.FreeLists[5].Store(s.geo.HeapOff + 8) }, "free list 5"},
		{"lazy stack", func(s *Store) {
			// The stack of the block that "7"'s overwrite left lazy now
			// names a live block.
			c := layout.ClassOf(layout.BlockSize(1, 5))
			s.hdr.LazyHeads[c].Store(s.geo.HeapOff)
		}, fmt.Sprintf("lazy stack %d", layout.ClassOf(layout.BlockSize(1, 5)))},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			s, err := Create(testName(t), &Options{Size: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := range 50 {
				s.Put([]byte(fmt.Sprint(i)), []byte("value"))
			}
			s.Delete([]byte("3"))
			s.Put([]byte("7"), []byte("VALUE")) // the old block is lazy
			if err := s.Check(); err != nil {
				t.Fatalf("before damage: %v", err)
			}
			if s.hdr.Alloc.LazyBytes.Load() == 0 {
				t.Fatal("setup: no lazy block")
			}
			c.damage(s)
			err = s.Check()
			if !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), []byte(c.want)) {
				t.Fatalf("Check = %v, want ErrCorrupt mentioning %q", err, c.want)
			}
		})
	}
}

// TestRandomDamageNeverCrashes scribbles over the index, heap and journal
// and runs every operation: each may fail, none may crash or hang.
func TestRandomDamageNeverCrashes(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 2))
	for round := range 40 {
		s, err := Create(testName(t), &Options{Size: 512 << 10, LockTimeout: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 200 {
			s.Put([]byte(fmt.Sprint(i)), bytes.Repeat([]byte{'x'}, rng.IntN(100)))
		}
		for i := range 30 {
			s.Delete([]byte(fmt.Sprint(i * 3)))
		}
		b := s.Mapping()
		g := s.geo
		top := s.hdr.Meta.Top.Load()
		for range 1 + rng.IntN(20) {
			var at uint64
			switch rng.IntN(4) {
			case 0: // index
				at = g.IndexOff + rng.Uint64N(g.NumBuckets*layout.BucketSize)
			case 1, 2: // heap in use
				at = g.HeapOff + rng.Uint64N(top-g.HeapOff)
			case 3: // meta, free lists, journal
				if rng.IntN(2) == 0 {
					at = layout.MetaOff + rng.Uint64N(layout.HeaderSize-layout.MetaOff)
				} else {
					at = g.JournalOff + rng.Uint64N(4096)
				}
			}
			b[at] = byte(rng.Uint32())
		}
		if round%2 == 0 {
			s.journal().State.Store(uint32(rng.IntN(4)))
			s.journal().NumUndo.Store(uint32(rng.IntN(100)))
		}
		for i := range 300 {
			k := []byte(fmt.Sprint(rng.IntN(250)))
			switch i % 5 {
			case 0:
				s.Put(k, []byte("new"))
			case 1:
				s.Delete(k)
			case 2:
				s.CompareAndSwap(k, nil, []byte("c"))
			default:
				s.Get(k)
			}
		}
		s.Range(func(k, v []byte) bool { return true })
		s.Check()
		s.Stats()
		s.Close()
	}
}

// TestDeadHolderTakenOver unmaps and closes a Store while it holds the
// writer lock, which drops its OFD lock as the kernel does when a process
// dies (the mapping holds the open file description too), and checks another Store takes the lock over within LockTimeout
// and repairs the half-done transaction.
func TestDeadHolderTakenOver(t *testing.T) {
	a, err := Create(testName(t), &Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	a.Put([]byte("k"), []byte("before"))
	b, err := Open(a.Name(), &Options{LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	// a starts a put and "dies" in the middle of it.
	if err := a.lockWriter(context.Background()); err != nil {
		t.Fatal(err)
	}
	tx := a.begin()
	if err := tx.put([]byte("k"), []byte("half-done"), condNone, nil); err != nil {
		t.Fatal(err)
	}
	a.m.unmap()
	a.obj.file.Close()
	a.closed.Store(true)
	if h := b.Stats().Writer; !h.Held || h.Alive {
		t.Fatalf("lock holder %+v, want held by a dead Store", h)
	}
	start := time.Now()
	if err := b.Put([]byte("k2"), []byte("after")); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("take-over took %v", d)
	}
	if v, _ := b.Get([]byte("k")); string(v) != "before" {
		t.Fatalf("uncommitted put left %q, want the old value", v)
	}
	if st := b.Stats(); st.TakeOvers != 1 || st.Recoveries != 1 {
		t.Fatalf("take-overs %d, recoveries %d; want 1 and 1", st.TakeOvers, st.Recoveries)
	}
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestTruncatedObject shrinks the object under an open Store, as a hostile
// or careless process could: reads and writes of the lost pages fault, and
// the Store must report that, not die of SIGBUS.
func TestTruncatedObject(t *testing.T) {
	s := newStore(t, &Options{Size: 4 << 20})
	for i := range 1000 {
		s.Put([]byte(fmt.Sprint(i)), bytes.Repeat([]byte("v"), 500))
	}
	if err := os.Truncate(s.Path(), 8192); err != nil {
		t.Fatal(err)
	}
	_, err := s.Get([]byte("999"))
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get from a truncated object: %v, want ErrCorrupt", err)
	}
	t.Log(err)
	if err := s.Put([]byte("new"), []byte("v")); err == nil {
		t.Fatal("Put into a truncated object succeeded")
	} else {
		t.Log(err)
	}
	if w := s.hdr.Lock.Word.Load(); w != 0 {
		t.Fatalf("a failed Put left the writer lock held (%#x)", w)
	}
	if err := s.Range(func(k, v []byte) bool { return true }); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Range over a truncated object: %v", err)
	}
	if err := s.Check(); err == nil {
		t.Fatal("Check of a truncated object passed")
	}
	if err := os.Truncate(s.Path(), 4<<20); err != nil { // let the cleanup Check run on zeros
		t.Fatal(err)
	}
	s.Close()
}

// TestCorruptTopAndJournal: damage that the write path meets deep inside a
// transaction must come back as ErrCorrupt, not a panic, and must not
// spread (a bad heap top must not make a Put write over the header).
func TestCorruptTopAndJournal(t *testing.T) {
	cases := []struct {
		what   string
		damage func(s *Store)
	}{
		{"top in the header", func(s *Store) { s.hdr.Meta.Top.Store(layout.MetaOff + 64) }},
		{"top misaligned", func(s *Store) { s.hdr.Meta.Top.Store(s.geo.HeapOff + 4098) }},
		{"intent far from home", func(s *Store) {
			p, _ := s.find([]byte("7"), hashKey([]byte("7")), nil)
			far := (s.cur().bucketOfSlot(p.slot) + s.cur().n - layout.MaxProbe) % s.cur().n
			*s.intentRec(0) = layout.Intent{Kind: layout.IntentDelete, Slot: p.slot, Old: p.word, Home: far}
			s.journal().NumIntents.Store(1)
			s.journal().State.Store(layout.JournalCommitted)
		}},
		{"replay overflows the log", func(s *Store) {
			p, _ := s.find([]byte("7"), hashKey([]byte("7")), nil)
			*s.intentRec(0) = layout.Intent{Kind: layout.IntentDelete, Slot: p.slot, Old: p.word, Home: p.home}
			jh := s.journal()
			jh.NumIntents.Store(1)
			jh.NumUndo.Store(s.geo.MaxUndo)
			jh.CommitUndo.Store(s.geo.MaxUndo)
			jh.State.Store(layout.JournalCommitted)
		}},
	}
	for _, c := range cases {
		t.Run(c.what, func(t *testing.T) {
			s, err := Create(testName(t), &Options{Size: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := range 20 {
				s.Put([]byte(fmt.Sprint(i)), []byte("v"))
			}
			var heads [layout.NumClasses]uint64
			for i := range heads {
				heads[i] = s.hdr.FreeLists[i].Load()
			}
			c.damage(s)
			err = s.Put([]byte("new"), bytes.Repeat([]byte("x"), 300))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Put: %v, want ErrCorrupt", err)
			}
			t.Log(err)
			for i := range heads {
				if heads[i] != s.hdr.FreeLists[i].Load() {
					t.Fatalf("free list %d head changed: the damage spread", i)
				}
			}
			if err := s.Check(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Check: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestDamagedLazyStack: a lazy stack that names a live block, or a block
// of another size, makes the put that would pop it fail with ErrCorrupt,
// changing nothing: every key still reads back as it was.
func TestDamagedLazyStack(t *testing.T) {
	val := func(b byte) []byte { return bytes.Repeat([]byte{b}, 100) }
	c := layout.ClassOf(layout.BlockSize(2, 100))
	for _, what := range []string{"live", "other size"} {
		t.Run(what, func(t *testing.T) {
			s, err := Create(testName(t), &Options{Size: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for i := range 20 {
				s.Put([]byte(fmt.Sprintf("k%d", i)), val('a'))
			}
			s.Put([]byte("k3"), val('b')) // k3's old block is lazy
			s.Put([]byte("s"), []byte("x"))
			s.Put([]byte("s"), []byte("y")) // and s's, on another stack
			other := layout.ClassOf(layout.BlockSize(1, 1))
			if s.hdr.LazyHeads[c].Load() == 0 || s.hdr.LazyHeads[other].Load() == 0 {
				t.Fatal("setup: no lazy blocks")
			}
			bad := s.geo.HeapOff // k0's block
			if what == "other size" {
				bad = s.hdr.LazyHeads[other].Load()
			}
			s.hdr.LazyHeads[c].Store(bad)
			err = s.Put([]byte("k5"), val('c'))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), fmt.Sprintf("lazy stack %d", c)) {
				t.Fatalf("Put: %v, want ErrCorrupt naming lazy stack %d", err, c)
			}
			if h := s.hdr.LazyHeads[c].Load(); h != bad {
				t.Fatalf("the failed put moved the stack's head to %#x", h)
			}
			for i := range 20 {
				want := val('a')
				if i == 3 {
					want = val('b')
				}
				if v, err := s.Get([]byte(fmt.Sprintf("k%d", i))); err != nil || !bytes.Equal(v, want) {
					t.Fatalf("k%d after the failed put: %q, %v", i, v, err)
				}
			}
			if err := s.Check(); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Check: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestAbandonedCreationIsAdopted: an object whose creator died before
// publishing it (empty, or marked MagicInit with a half-written header) is
// refused by Open with a message saying so, and initialised afresh by
// OpenOrCreate, so a crash during creation never needs a manual clean-up.
func TestAbandonedCreationIsAdopted(t *testing.T) {
	half := make([]byte, 1<<20)
	binary.LittleEndian.PutUint64(half, layout.MagicInit)
	for i := 8; i < 20000; i++ {
		half[i] = byte(i * 7) // whatever the dead creator got to write
	}
	for what, data := range map[string][]byte{"empty": nil, "half-initialised": half} {
		name := writeObject(t, data)
		start := time.Now()
		_, err := Open(name, nil)
		if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "creator died") {
			t.Fatalf("%s: Open = %v, want ErrIncompatible saying the creator died", what, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("%s: Open took %v to give up on an abandoned object", what, d)
		}
		s, err := OpenOrCreate(name, &Options{Size: 1 << 20})
		if err != nil {
			t.Fatalf("%s: OpenOrCreate: %v", what, err)
		}
		if s.Len() != 0 {
			t.Fatalf("%s: adopted store has %d entries", what, s.Len())
		}
		if err := s.Put([]byte("k"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := s.Check(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		s.Close()
	}
}

// TestSlowCreatorDoesNotWipeAdoptedStore: a creator stalls between its
// exclusive open and its init lock; meanwhile OpenOrCreate finds the empty
// object, adopts it and stores data. The creator must then give up with
// fs.ErrExist, not initialise the store again.
func TestSlowCreatorDoesNotWipeAdoptedStore(t *testing.T) {
	name := testName(t)
	o := (&Options{Size: 1 << 20}).withDefaults()
	obj, err := createObject(name, &o) // the creator, stalled right after shm_open
	if err != nil {
		t.Fatal(err)
	}
	a, err := OpenOrCreate(name, &Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if err := a.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := finishCreate(name, obj, &o); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("the stalled creator: %v, want fs.ErrExist", err)
	}
	if v, err := a.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after the stalled creator gave up: %q, %v", v, err)
	}
	if err := a.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAdoptionChecksOptions: OpenOrCreate re-initialising an abandoned
// object checks its options as Create does.
func TestAdoptionChecksOptions(t *testing.T) {
	name := writeObject(t, nil)
	for _, bad := range []*Options{{MaxEntries: -1}, {HugePages: 7}, {Size: 100}} {
		if s, err := OpenOrCreate(name, bad); err == nil {
			s.Close()
			t.Fatalf("OpenOrCreate(%+v) adopted the object", *bad)
		}
	}
	s, err := OpenOrCreate(name, &Options{Size: 1 << 20})
	if err != nil {
		t.Fatalf("a valid OpenOrCreate after the refused ones: %v", err)
	}
	defer s.Close()
	if err := s.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
}

// TestReadGuardRestoresPanicOnFault: the read path turns panic-on-fault on
// for its own duration only. A caller that had it off finds it off again,
// after a normal read and after one that faulted; a caller that had it on
// keeps it on.
func TestReadGuardRestoresPanicOnFault(t *testing.T) {
	s := newStore(t, &Options{Size: 4 << 20})
	for i := range 1000 {
		s.Put([]byte(fmt.Sprint(i)), bytes.Repeat([]byte("v"), 500))
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(false))
	s.Get([]byte("999"))
	if debug.SetPanicOnFault(false) {
		t.Fatal("Get left panic-on-fault on")
	}
	debug.SetPanicOnFault(true)
	s.Has([]byte("999"))
	if !debug.SetPanicOnFault(false) {
		t.Fatal("Has turned off the caller's panic-on-fault")
	}
	if err := os.Truncate(s.Path(), 8192); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get([]byte("999")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get from a truncated object: %v, want ErrCorrupt", err)
	}
	if debug.SetPanicOnFault(false) {
		t.Fatal("a Get that faulted left panic-on-fault on")
	}
	s.Close() // the truncation lost the entries: no cleanup Check
}
