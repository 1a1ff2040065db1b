package store

// Fuzz targets for damaged regions. `go test` runs their seed corpora;
// to fuzz them for longer (one target per command, any -fuzztime):
//
//	go test -run '^$' -fuzz '^FuzzOpenDamagedImage$' -fuzztime 1h ./store
//	go test -run '^$' -fuzz '^FuzzJournalRecovery$' -fuzztime 1h ./store
//
// Each input is a list of patches applied to a fixed, valid region image
// built once per run (see applyPatches). A failing input is written under
// store/testdata/fuzz/NAME/ and replays with go test -run 'NAME/HASH'.

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"testing"
	"time"
	"unsafe"

	"github.com/shmkv/shmkv/internal/shmtest"
	"github.com/shmkv/shmkv/layout"
)

// fuzzImageSize is the smallest store Create makes.
const fuzzImageSize = 256 << 10

// fuzzTimeBound is how long one input's operations may take before the
// target reports a hang.
const fuzzTimeBound = 5 * time.Second

// patchSize is the length of one patch in a fuzz input: a 4-byte offset, a
// 1-byte op and a 4-byte value, all little-endian.
const patchSize = 9

// maxPatches bounds the patches applied per input.
const maxPatches = 64

// patch builds one patch for a seed input.
func patch(off uint32, op byte, v uint32) []byte {
	b := make([]byte, patchSize)
	binary.LittleEndian.PutUint32(b, off)
	b[4] = op
	binary.LittleEndian.PutUint32(b[5:], v)
	return b
}

// patchOpFixHeader in a patch's op recomputes the header checksum after all
// patches, so header damage gets past the checksum to the checks behind it.
const patchOpFixHeader = 0x80

// applyPatches damages img in place. Each patch's offset is taken modulo
// span (then aligned down to the width it writes) and added to base. Ops
// (op & 7): 0 set a byte, 1 xor a byte, 2 set a uint32, 3 set a uint64 to
// the value, 4 set a uint64 to the value sign-extended (so -1 gives all
// ones), 5 add the signed value to a uint64, 6 copy the uint64 at offset
// value (mod the image) there (a valid-looking offset from elsewhere), 7 xor
// a uint64 with the value in both halves.
func applyPatches(img []byte, base, span uint64, patches []byte) {
	fix := false
	for n := 0; len(patches) >= patchSize && n < maxPatches; n++ {
		p := patches[:patchSize]
		patches = patches[patchSize:]
		off := base + uint64(binary.LittleEndian.Uint32(p))%span
		op := p[4]
		v := binary.LittleEndian.Uint32(p[5:])
		fix = fix || op&patchOpFixHeader != 0
		le := binary.LittleEndian
		w4, w8 := off&^3, off&^7
		if w8+8 > uint64(len(img)) {
			continue
		}
		switch op & 7 {
		case 0:
			img[off] = byte(v)
		case 1:
			img[off] ^= byte(v) | 1
		case 2:
			le.PutUint32(img[w4:], v)
		case 3:
			le.PutUint64(img[w8:], uint64(v))
		case 4:
			le.PutUint64(img[w8:], uint64(int64(int32(v))))
		case 5:
			le.PutUint64(img[w8:], le.Uint64(img[w8:])+uint64(int64(int32(v))))
		case 6:
			src := (uint64(v) % uint64(len(img))) &^ 7
			if src+8 <= uint64(len(img)) {
				copy(img[w8:w8+8], img[src:src+8])
			}
		case 7:
			le.PutUint64(img[w8:], le.Uint64(img[w8:])^(uint64(v)<<32|uint64(v)))
		}
	}
	if fix && len(img) >= layout.HeaderSize {
		h := (*layout.Header)(unsafe.Pointer(&img[0]))
		h.Checksum = layout.HeaderChecksum(h)
	}
}

// regionImage copies a store's region as another process would see it, with
// the writer lock word cleared (the copy has no holder).
func regionImage(s *Store) []byte {
	img := append([]byte(nil), s.m.data...)
	binary.LittleEndian.PutUint32(img[layout.LockOff:], 0)
	return img
}

// fuzzImage is a valid region image and keys that may be in it.
type fuzzImage struct {
	what string
	img  []byte
	keys [][]byte
}

// buildImage creates a minimum-size store, lets fill change it, and
// returns a copy of its region. The store itself is removed at once.
func buildImage(f *testing.F, what string, fill func(s *Store) [][]byte) fuzzImage {
	return buildImageWith(f, what, &Options{Size: fuzzImageSize}, fill)
}

func buildImageWith(f *testing.F, what string, opts *Options, fill func(s *Store) [][]byte) fuzzImage {
	f.Helper()
	name := shmtest.NewName("shmkv-fuzzseed")
	s, err := Create(name, opts)
	if err != nil {
		f.Fatal(err)
	}
	defer Unlink(name)
	defer s.Close()
	keys := fill(s)
	if err := s.Check(); err != nil {
		f.Fatalf("%s: %v", what, err)
	}
	return fuzzImage{what: what, img: regionImage(s), keys: keys}
}

// damagedImages are the stores FuzzOpenDamagedImage damages: a few keys
// with some deleted; a batch's result; a store filled past its fast path,
// with values of several classes, deletes and a compaction.
func damagedImages(f *testing.F) []fuzzImage {
	few := buildImage(f, "few keys, some deleted", func(s *Store) [][]byte {
		var keys [][]byte
		for i := range 8 {
			k := []byte(fmt.Sprintf("key-%d", i))
			keys = append(keys, k)
			if err := s.Put(k, []byte(fmt.Sprintf("value-%d", i*i))); err != nil {
				f.Fatal(err)
			}
		}
		for i := 0; i < 8; i += 3 {
			if err := s.Delete(keys[i]); err != nil {
				f.Fatal(err)
			}
		}
		return keys
	})
	batch := buildImage(f, "a batch", func(s *Store) [][]byte {
		keys := [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("counter")}
		s.Put([]byte("a"), []byte("old"))
		s.Put([]byte("gone"), []byte("soon"))
		err := s.Update(func(b *Batch) error {
			b.Put([]byte("a"), []byte("new a"))
			b.Put([]byte("b"), make([]byte, 300))
			b.Put([]byte("c"), []byte("c"))
			b.Put([]byte("c"), []byte("c again"))
			return b.Delete([]byte("gone"))
		})
		if err != nil {
			f.Fatal(err)
		}
		if _, err := s.Add([]byte("counter"), 41); err != nil {
			f.Fatal(err)
		}
		return append(keys, []byte("gone"))
	})
	mixed := buildImage(f, "mixed sizes, deletes, compacted", func(s *Store) [][]byte {
		var keys [][]byte
		for i := range 60 {
			k := []byte(fmt.Sprintf("k%03d", i))
			keys = append(keys, k)
			if err := s.Put(k, make([]byte, (i*37)%900)); err != nil {
				f.Fatal(err)
			}
		}
		for i := 0; i < 60; i += 2 {
			s.Delete(keys[i])
		}
		for i := 1; i < 60; i += 4 {
			s.Put(keys[i], []byte("short"))
		}
		return keys
	})
	// A store that grew (the object twice its first size) and whose index
	// is migrating from a heap table to another.
	grown := buildImageWith(f, "grown, index migrating", &Options{Size: fuzzImageSize, MaxSize: 4 * fuzzImageSize}, func(s *Store) [][]byte {
		var keys [][]byte
		for i := 0; ; i++ {
			st := s.Stats()
			if st.Growths > 0 && st.IndexMigrating && st.IndexMigrations > 0 {
				return keys
			}
			k := []byte(fmt.Sprintf("g%04d", i))
			keys = append(keys, k)
			if err := s.Put(k, make([]byte, i%300)); err != nil {
				f.Fatal(err)
			}
		}
	})
	return []fuzzImage{few, batch, mixed, grown}
}

// exercise opens the object name read-only and read-write and runs reads,
// a Check, a Put and a Delete on it. Errors are expected; it only has to
// return. It runs under a time bound: a hang fails the test. checkRO runs
// Check on the read-only Store too (which, on a journal that is not idle,
// waits 50ms for a writer that will never come).
func exercise(t *testing.T, name string, keys [][]byte, checkRO bool) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, ro := range []bool{true, false} {
			s, err := Open(name, &Options{
				ReadOnly: ro, InitTimeout: 50 * time.Millisecond,
				LockTimeout: 20 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
			})
			if err != nil {
				continue
			}
			readAll(s, keys)
			if ro && checkRO {
				s.Check()
			}
			if !ro { // the first write repairs a journal left mid-transaction
				s.Put([]byte("fuzz-new"), []byte("a value of some length"))
				if len(keys) > 0 {
					s.Put(keys[0], []byte("overwritten"))
					s.Delete(keys[len(keys)-1])
				}
				s.Delete([]byte("fuzz-new"))
				readAll(s, keys)
				s.Check()
			}
			s.Close()
		}
	}()
	select {
	case <-done:
	case <-time.After(fuzzTimeBound):
		t.Fatalf("operations on the damaged image took over %v (hang)", fuzzTimeBound)
	}
}

// readAll runs every read on s. Range is cut short after many entries, so
// a damaged index that repeats entries cannot make it long.
func readAll(s *Store, keys [][]byte) {
	for _, k := range keys {
		s.Get(k)
		s.Has(k)
	}
	s.Get([]byte("absent"))
	n := 0
	s.Range(func(k, v []byte) bool { n++; return n < 10000 })
	s.Len()
	s.Stats()
}

func FuzzOpenDamagedImage(f *testing.F) {
	images := damagedImages(f)
	for i := range images {
		f.Add(uint8(i), []byte(nil)) // undamaged
	}
	// Seeds that damage each area: the header (with and without a fixed
	// checksum), the writer lock word, the meta counters and free lists,
	// the journal, the index and the heap.
	g := headerGeometry(images[0].img)
	seeds := [][]byte{
		patch(0, 1, 0xff),                             // magic
		patch(16, 3, 1<<30),                           // size
		patch(16, 3|patchOpFixHeader, 1<<30),          // size, checksum fixed
		patch(64, 5|patchOpFixHeader, 4096),           // IndexOff moved
		patch(88, 5|patchOpFixHeader, 8),              // HeapOff moved
		patch(56, 2|patchOpFixHeader, 0xffffffff),     // MaxIntents
		patch(layout.LockOff, 2, uint32(os.Getpid())), // lock "held" by us
		patch(layout.CountOff, 4, 0xffffffff),
		patch(layout.TopOff, 3, uint32(g.HeapOff+5)),
		patch(layout.TopOff, 3, fuzzImageSize),
		patch(layout.FreeBytesOff, 5, -100&0xffffffff),
		append(patch(uint32(layout.FreeListOff(0)), 6, uint32(g.HeapOff)), patch(uint32(layout.FreeListOff(3)), 3, uint32(g.HeapOff+64))...),
		patch(uint32(g.JournalOff), 3, 2),           // journal state Committed
		patch(uint32(g.IndexOff+8), 7, 0x01010101),  // a bucket's first slot
		patch(uint32(g.IndexOff+16), 4, 0xffffffff), // a slot of all ones
		patch(uint32(g.HeapOff), 4, 0xffffffff),     // first entry's header
		patch(uint32(g.HeapOff+8), 2, 0xffff),       // first entry's key length
		patch(uint32(g.HeapOff+4), 1, 1),            // first entry's seq made odd
		patch(uint32(g.HeapOff+64), 0, 0x41),        // inside a value
		// Growth's words: the published size, IndexGen, a descriptor, the
		// migration's cursor.
		patch(layout.GrowSizeOff, 3, 1<<20),
		patch(layout.GrowSizeOff, 2, 0xffffffff),
		patch(layout.IndexGenOff, 0, 1),
		patch(layout.IndexDescOff, 3, 0xfff0),
		patch(layout.IndexDescOff+8, 4, 0xffffffff),
		patch(layout.IndexDescOff+16, 2, 0x40),
		patch(layout.IndexCursorOff, 1, 0x7f),
	}
	for i, p := range seeds {
		f.Add(uint8(i%len(images)), p)
	}
	f.Fuzz(func(t *testing.T, which uint8, patches []byte) {
		im := images[int(which)%len(images)]
		img := append([]byte(nil), im.img...)
		applyPatches(img, 0, uint64(len(img)), patches)
		exercise(t, writeObject(t, img), im.keys, true)
	})
}

// headerGeometry reads the geometry out of a valid image.
func headerGeometry(img []byte) layout.Geometry {
	return (*layout.Header)(unsafe.Pointer(&img[0])).Geometry()
}

// midTransaction returns images of a store whose writer stopped after
// planning a batch: one before the commit point (state Prepare), one just
// after it (Committed, intents not yet applied).
func midTransaction(f *testing.F) (prepare, committed fuzzImage) {
	var p, c []byte
	keys := [][]byte{[]byte("k0"), []byte("k1"), []byte("k2"), []byte("k3"), []byte("new"), []byte("big")}
	im := buildImage(f, "mid-transaction", func(s *Store) [][]byte {
		for _, k := range keys[:4] {
			if err := s.Put(k, []byte("before "+string(k))); err != nil {
				f.Fatal(err)
			}
		}
		if err := s.lockWriter(context.Background()); err != nil {
			f.Fatal(err)
		}
		t := s.begin()
		s.batch.reset()
		t.batch = &s.batch
		steps := []error{
			t.put(keys[0], []byte("after"), condNone, nil),
			t.put(keys[4], []byte("a new key"), condNone, nil),
			t.put(keys[5], make([]byte, 2000), condNone, nil),
			t.del(keys[1], nil),
			t.put(keys[2], []byte("twice, first"), condNone, nil),
			t.put(keys[2], []byte("twice, second"), condNone, nil),
		}
		for _, err := range steps {
			if err != nil {
				f.Fatal(err)
			}
		}
		p = regionImage(s)
		t.flushCounts(true)
		t.jh.CommitUndo.Store(t.nUndo)
		t.logged, t.recent = [len(t.logged)]uint64{}, [len(t.recent)]uint64{}
		t.jh.State.Store(layout.JournalCommitted)
		c = regionImage(s)
		if err := t.apply(s.itBuf, s.itNew); err != nil {
			f.Fatal(err)
		}
		t.jh.State.Store(layout.JournalIdle)
		t.batch = nil
		s.unlockWriter()
		return keys
	})
	return fuzzImage{"prepare", p, im.keys}, fuzzImage{"committed", c, im.keys}
}

func FuzzJournalRecovery(f *testing.F) {
	prep, comm := midTransaction(f)
	images := []fuzzImage{prep, comm}
	g := headerGeometry(prep.img)
	// Offsets are relative to the journal: its header, then MaxIntents
	// intents, then MaxUndo undo records.
	span := g.IndexOff - g.JournalOff
	jh := uint32(0)
	intents := uint32(g.IntentsOff() - g.JournalOff)
	undos := uint32(g.UndoOff() - g.JournalOff)
	nUndo := uint32(unsafe.Offsetof(layout.JournalHeader{}.NumUndo))
	nIntents := uint32(unsafe.Offsetof(layout.JournalHeader{}.NumIntents))
	commitUndo := uint32(unsafe.Offsetof(layout.JournalHeader{}.CommitUndo))
	state := uint32(unsafe.Offsetof(layout.JournalHeader{}.State))
	seeds := [][]byte{
		nil,
		patch(jh+state, 2, 7), // unknown state
		patch(jh+state, 2, 1), // Prepare,
		patch(jh+nUndo, 2, 0xffffffff),
		patch(jh+nUndo, 5, 0xffffffff),
		patch(jh+nIntents, 5, 1),
		patch(jh+nIntents, 5, 0xffffffff),
		patch(jh+commitUndo, 5, 0xffffffff),
		patch(jh+commitUndo, 2, 0),
		patch(intents, 7, 1),            // first intent's kind
		patch(intents+8, 4, 0xffffffff), // first intent's slot
		patch(intents+16, 6, uint32(g.HeapOff)),
		patch(intents+24, 3, uint32(g.HeapOff+8)), // New
		patch(intents+32, 5, 1),                   // Home
		patch(undos, 3, layout.HeaderSize-8),      // first record's word
		patch(undos, 3, uint32(g.IndexOff+1)),     // misaligned with a kind
		patch(undos+8, 4, 0xffffffff),             // first record's old value
		patch(undos+16, 3, uint32(layout.LockOff)),
		patch(undos+32, 6, uint32(g.JournalOff)),
	}
	for i, p := range seeds {
		f.Add(uint8(i%2), p)
	}
	f.Fuzz(func(t *testing.T, which uint8, patches []byte) {
		im := images[int(which)%len(images)]
		img := append([]byte(nil), im.img...)
		applyPatches(img, g.JournalOff, span, patches)
		exercise(t, writeObject(t, img), im.keys, false)
	})
}
