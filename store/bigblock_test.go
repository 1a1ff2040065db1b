package store

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/layout"
)

// TestFreeSpacePastFourGiB: Entry.Size has 32 bits, and merges had no
// limit. Before version 8 the delete that freed the fifth GiB between two
// live entries cut the merged block's size to its low 32 bits and
// returned nil; the heap could no longer be walked, and the next delete
// failed after its commit, leaving every later write failing too. Now a
// free block from 4 GiB on is big: its size is a word of its own
// (layout.BigFree).
//
// Five values of 1 GiB lie between two small live entries. Freeing them
// (the last four in order, each merging with the one before, then the
// first, merging with the 4 GiB after it) makes one free block of 5 GiB.
// Every key reads back, Check passes throughout, values taken from the
// big block split it, and a compaction works on the heap that results.
func TestFreeSpacePastFourGiB(t *testing.T) {
	const val = 1 << 30 // MaxValueSize
	const size = 6<<30 + 64<<20
	var fs unix.Statfs_t
	if err := unix.Statfs(ShmDir, &fs); err != nil || fs.Bavail*uint64(fs.Bsize) < size+1<<30 {
		t.Skipf("%s lacks the %d GiB this test writes (%v)", ShmDir, size>>30+1, err)
	}
	var si unix.Sysinfo_t
	if err := unix.Sysinfo(&si); err != nil || (si.Freeram+si.Bufferram)*uint64(si.Unit) < 2*size {
		t.Skipf("this test wants %d GiB of free memory (%v)", 2*size>>30, err)
	}
	s := newStore(t, &Options{Size: size, MaxEntries: 64, NoReserve: true})
	v := make([]byte, val)
	value := func(k string) []byte {
		for i := 0; i < len(v); i += 4096 {
			v[i] = k[len(k)-1]
		}
		return v
	}
	put := func(k string) {
		t.Helper()
		if err := s.Put([]byte(k), value(k)); err != nil {
			t.Fatalf("Put(%s): %v", k, err)
		}
	}
	check := func(when string, live ...string) {
		t.Helper()
		if err := s.Check(); err != nil {
			t.Fatalf("Check %s: %v", when, err)
		}
		for _, k := range live {
			got, err := s.Get([]byte(k))
			if err != nil {
				t.Fatalf("Get(%s) %s: %v", k, when, err)
			}
			if k == "lo" || k == "hi" {
				if string(got) != k {
					t.Fatalf("Get(%s) %s: %q", k, when, got)
				}
			} else if !bytes.Equal(got, value(k)) {
				t.Fatalf("Get(%s) %s: not the value put", k, when)
			}
		}
	}
	del := func(k string) {
		t.Helper()
		if err := s.Delete([]byte(k)); err != nil {
			t.Fatalf("Delete(%s): %v", k, err)
		}
	}
	if err := s.Put([]byte("lo"), []byte("lo")); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		put(fmt.Sprintf("x%d", i))
	}
	if err := s.Put([]byte("hi"), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	check("after the fill", "lo", "x1", "x2", "x3", "x4", "x5", "hi")
	for i := 2; i <= 5; i++ {
		del(fmt.Sprintf("x%d", i))
		check(fmt.Sprintf("after deleting x%d", i), "lo", "x1", "hi")
	}
	del("x1")
	check("after deleting x1", "lo", "hi")
	st := s.Stats()
	if st.LargestFree < 5<<30 || st.LargestFree > 5<<30+1<<20 {
		t.Fatalf("largest free block %d bytes, want all five values' blocks: just over 5 GiB", st.LargestFree)
	}
	// A 1 GiB value splits the big block, and what is left is still big;
	// its deletion merges back.
	put("y1")
	put("y2")
	check("after refilling", "lo", "y1", "y2", "hi")
	del("y1")
	del("y2")
	check("after deleting y1 and y2", "lo", "hi")
	if _, err := s.Compact(context.Background()); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	check("after compacting", "lo", "hi")
}

// TestBigFreeBlocks runs random puts and deletes of 1 B to 2 KiB values,
// and a dump, a load and a compaction, with free blocks big from 256
// bytes (what TestFreeSpacePastFourGiB reaches at 4 GiB): every merge,
// split and whole take of a big block, and the snapshot's heap walk over
// them, at a scale a test can repeat. Check holds every free block's form
// and footer to the threshold after each step.
func TestBigFreeBlocks(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 8))
	s := newStore(t, &Options{Size: 1 << 20})
	s.bigFree = 256
	model := map[string][]byte{}
	bigSeen := 0
	for i := range 3000 {
		k := fmt.Sprintf("k%d", rng.IntN(200))
		if _, ok := model[k]; ok && rng.IntN(3) == 0 {
			if err := s.Delete([]byte(k)); err != nil {
				t.Fatalf("op %d: Delete(%s): %v", i, k, err)
			}
			delete(model, k)
		} else {
			v := bytes.Repeat([]byte{byte(i)}, 1+rng.IntN(2048))
			if err := s.Put([]byte(k), v); err != nil {
				t.Fatalf("op %d: Put(%s, %d bytes): %v", i, k, len(v), err)
			}
			model[k] = v
		}
		if i%50 == 0 {
			if err := s.Check(); err != nil {
				t.Fatalf("op %d: %v", i, err)
			}
			top := s.hdr.Meta.Top.Load()
			for off := s.geo.HeapOff; off < top; {
				b, err := s.blockAt(off, top)
				if err != nil {
					t.Fatal(err)
				}
				if b.flags&(layout.SizeFree|layout.SizeLazy) == layout.SizeFree && b.e.Size&^layout.SizeFlags == 0 {
					bigSeen++
				}
				off += b.size
			}
		}
	}
	if bigSeen == 0 {
		t.Fatal("no big free block was ever seen: the test tests nothing")
	}
	t.Logf("%d big free blocks seen", bigSeen)
	var dump bytes.Buffer
	if err := s.Dump(&dump); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	if _, err := s.Compact(context.Background()); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	l := newStore(t, &Options{Size: 1 << 20})
	if err := l.Load(&dump); err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, st := range []*Store{s, l} {
		if n := st.Len(); n != len(model) {
			t.Fatalf("%d keys, want %d", n, len(model))
		}
		for k, v := range model {
			if got, err := st.Get([]byte(k)); err != nil || !bytes.Equal(got, v) {
				t.Fatalf("Get(%s): %d bytes, %v; want %d bytes", k, len(got), err, len(v))
			}
		}
	}
}
