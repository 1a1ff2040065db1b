package store

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/layout"
)

// TestFreeSpacePastFourGiB: a block's size is 32 bits, so free neighbours
// whose merge would pass layout.MaxFreeBlock stay two blocks. Before
// version 8 the merge went ahead and cut the size's top bits off: the
// delete that freed the fifth GiB between two live entries returned nil,
// the heap could no longer be walked, and the next delete failed after
// its commit, leaving every later write failing too.
//
// Five values of 1 GiB lie between two small live entries. Freeing the
// last four, in order, merges them (the one before each time), and the
// last of those merges would reach 4 GiB: it must stop short. Freeing the
// first then meets a free block after it too large to merge with. Every
// key reads back, Check passes throughout, and puts and a compaction work
// on the heap that results; compaction's move of "hi" frees the block
// below Top, which goes back to the never-used space with the free block
// before it, leaving a tagged free block below Top (Alloc.TopTagged).
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
	if lf := s.Stats().LargestFree; lf > layout.MaxFreeBlock || lf < 3<<30 {
		t.Fatalf("largest free block %d bytes, want at most %d and at least 3 GiB", lf, uint64(layout.MaxFreeBlock))
	}
	// The room is still there: a 1 GiB value takes a block of its size,
	// the next splits the 3 GiB one.
	put("y1")
	put("y2")
	check("after refilling", "lo", "y1", "y2", "hi")
	del("y1")
	del("y2")
	if _, err := s.Compact(context.Background()); err != nil {
		t.Fatalf("Compact: %v", err)
	}
	check("after compacting", "lo", "hi")
}

// TestTopTagged plays TestFreeSpacePastFourGiB's merges in small, with
// the largest free block lowered to 256 bytes: two free blocks of 224
// bytes below the block under Top stay apart, and freeing that block gives
// back only the second, leaving the first tagged free below Top. A block
// placed at Top then follows a tagged free block, and freeing it gives
// back both; a block that takes the tagged one whole clears TopTagged too;
// compaction passes over the tagged block. Check holds TopTagged to the
// heap at every step.
func TestTopTagged(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	s.maxFree = 256
	v := func(n int) []byte { return bytes.Repeat([]byte{'v'}, n) }
	step := func(what string, err error, tagged uint64) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := s.Check(); err != nil {
			t.Fatalf("Check after %s: %v", what, err)
		}
		if got := s.hdr.Alloc.TopTagged.Load(); got != tagged {
			t.Fatalf("after %s: TopTagged %d, want %d", what, got, tagged)
		}
	}
	step("put lo", s.Put([]byte("lo"), v(10)), 0)
	step("put a", s.Put([]byte("a"), v(200)), 0) // 16+1+200 rounded: 224
	step("put b", s.Put([]byte("b"), v(200)), 0)
	step("put top", s.Put([]byte("top"), v(10)), 0)
	step("delete a", s.Delete([]byte("a")), 0)
	step("delete b", s.Delete([]byte("b")), 0) // 448 bytes: two blocks
	step("delete top", s.Delete([]byte("top")), 1)
	top := s.hdr.Meta.Top.Load()
	// Larger than either free block: placed at Top.
	step("put big", s.Put([]byte("big"), v(300)), 0)
	if p, _ := s.find([]byte("big"), hashKey([]byte("big")), nil); p.b.off != top || p.b.flags&layout.SizePrevFree == 0 {
		t.Fatalf("big at %#x (flags %#x), want at the old Top %#x with SizePrevFree", p.b.off, p.b.flags, top)
	}
	step("delete big", s.Delete([]byte("big")), 0) // and a with it
	// Again; then a value of a's size takes the block below Top whole.
	step("put a again", s.Put([]byte("a"), v(200)), 0)
	step("put b again", s.Put([]byte("b"), v(200)), 0)
	step("put top again", s.Put([]byte("top"), v(10)), 0)
	step("delete a again", s.Delete([]byte("a")), 0)
	step("delete b again", s.Delete([]byte("b")), 0)
	step("delete top again", s.Delete([]byte("top")), 1)
	step("put c", s.Put([]byte("c"), v(200)), 0)
	step("delete c", s.Delete([]byte("c")), 0)
	step("put d", s.Put([]byte("d"), v(200)), 0)
	step("put e", s.Put([]byte("e"), v(200)), 0)
	step("put top once more", s.Put([]byte("top"), v(10)), 0)
	step("delete d", s.Delete([]byte("d")), 0)
	step("delete e", s.Delete([]byte("e")), 0)
	step("delete top once more", s.Delete([]byte("top")), 1)
	_, err := s.Compact(context.Background())
	step("compact", err, 1)
	if v, err := s.Get([]byte("lo")); err != nil || len(v) != 10 {
		t.Fatalf("lo: %d bytes, %v", len(v), err)
	}
}
