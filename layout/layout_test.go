package layout

import (
	"errors"
	"strings"
	"testing"
	"unsafe"
)

func TestPlanIsValid(t *testing.T) {
	for _, size := range []uint64{MinSize, 1 << 20, 64 << 20, 1 << 30, 3<<30 + 12345} {
		for _, n := range []uint64{0, 16, 100000} {
			g, err := Plan(size, 0, n)
			if err != nil {
				if size <= 1<<20 && n == 100000 && errors.Is(err, ErrGeometry) {
					continue // honestly too small
				}
				t.Fatalf("Plan(%d, %d): %v", size, n, err)
			}
			if err := g.Check(); err != nil {
				t.Fatalf("Plan(%d, %d) fails its own Check: %v", size, n, err)
			}
			if g.MaxEntries > g.NumBuckets*6 {
				t.Fatalf("Plan(%d, %d): %d entries in %d buckets exceeds 6 per bucket", size, n, g.MaxEntries, g.NumBuckets)
			}
		}
	}
	if _, err := Plan(MinSize-1, 0, 0); !errors.Is(err, ErrGeometry) {
		t.Fatalf("Plan below MinSize: %v", err)
	}
}

func TestClasses(t *testing.T) {
	prev := uint64(0)
	for c := 0; c < NumClasses; c++ {
		lo := ClassMin(c)
		if lo <= prev || lo%8 != 0 {
			t.Fatalf("ClassMin(%d) = %d after %d", c, lo, prev)
		}
		if ClassOf(lo) != c {
			t.Fatalf("ClassOf(ClassMin(%d)=%d) = %d", c, lo, ClassOf(lo))
		}
		if c > 0 && ClassOf(lo-8) != c-1 {
			t.Fatalf("ClassOf(%d) = %d, want %d", lo-8, ClassOf(lo-8), c-1)
		}
		prev = lo
	}
	// Big free blocks are in the last class, which begins below them.
	if c := ClassOf(BigFree); c != NumClasses-1 || ClassMin(c) >= BigFree {
		t.Fatalf("ClassOf(BigFree) = %d, want the last class %d", c, NumClasses-1)
	}
	if ClassOf(ExactClassLimit-EntryAlign) != NumExact-1 {
		t.Fatalf("the largest exact size is in class %d, want %d", ClassOf(ExactClassLimit-EntryAlign), NumExact-1)
	}
	for _, s := range []uint64{16, 32, 1024, 1040, 1200, 4096, 5000, 1 << 30} {
		c := ClassFor(s)
		if ClassMin(c) < s || (c > 0 && ClassMin(c-1) >= s) {
			t.Fatalf("ClassFor(%d) = %d (min %d)", s, c, ClassMin(c))
		}
	}
}

func TestSlotWord(t *testing.T) {
	w := SlotWord(0xabcd, 0x1234560)
	if SlotTag(w) != 0xabcd || SlotOffset(w) != 0x1234560 {
		t.Fatalf("round trip: tag %#x off %#x", SlotTag(w), SlotOffset(w))
	}
	if Tag(0) == 0 {
		t.Fatal("Tag may be 0")
	}
}

// TestEntryInHeap pins the bounds of an entry offset: the first heap byte
// on, aligned, and the last EntrySize bytes of the region at most.
func TestEntryInHeap(t *testing.T) {
	g, err := Plan(1<<20, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		off  uint64
		want bool
	}{
		{0, false},
		{g.HeapOff - EntryAlign, false},
		{g.HeapOff, true},
		{g.HeapOff + 4, false},
		{g.Size - EntrySize, true},
		{g.Size - EntrySize + EntryAlign, false},
		{g.Size, false},
		{1 << 62, false},
	} {
		if got := g.EntryInHeap(c.off); got != c.want {
			t.Errorf("EntryInHeap(%#x) = %v in a heap [%#x, %#x)", c.off, got, g.HeapOff, g.Size)
		}
	}
}

func newHeader(t *testing.T) (*Header, []uint64) {
	buf := make([]uint64, HeaderSize/8)
	h := (*Header)(unsafe.Pointer(&buf[0]))
	g, err := Plan(1<<20, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	h.Version, h.HeaderSize, h.NumSlots = Version, HeaderSize, NumSlots
	h.SetGeometry(g)
	h.MaxSize, h.InitSize = g.Size, g.Size
	h.Grow.Size.Store(g.Size)
	h.Checksum = HeaderChecksum(h)
	h.Magic.Store(Magic)
	return h, buf
}

func TestValidateGrow(t *testing.T) {
	h, _ := newHeader(t)
	h.Version--
	if err := Validate(h, 1<<20); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "shmkv dump") {
		t.Fatalf("older version: %v", err)
	}
	h.Version++
	for _, c := range []struct {
		what      string
		max, init uint64
		published uint64
	}{
		{"maximum below the size", 1<<20 - 8, 1 << 20, 1 << 20},
		{"maximum past the format's", MaxSize + 8, 1 << 20, 1 << 20},
		{"initial size not the first size", 1 << 21, 1<<20 + 8, 1 << 20},
		{"published size below the first", 1 << 21, 1 << 20, 1<<20 - 4096},
		{"published size past the maximum", 1 << 21, 1 << 20, 1<<21 + 8},
		{"published size past the object", 1 << 23, 1 << 20, 1<<22 + 8},
		{"published size unaligned", 1 << 21, 1 << 20, 1<<20 + 4},
		{"published size zero", 1 << 21, 1 << 20, 0},
	} {
		h, _ := newHeader(t)
		h.MaxSize, h.InitSize = c.max, c.init
		h.Grow.Size.Store(c.published)
		h.Checksum = HeaderChecksum(h)
		if err := Validate(h, 1<<22); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", c.what, err)
		}
	}
	h, _ = newHeader(t)
	h.MaxSize = 1 << 30
	h.Checksum = HeaderChecksum(h)
	if err := Validate(h, 1<<20); err != nil {
		t.Fatalf("room to grow: %v", err)
	}
}

func TestValidate(t *testing.T) {
	h, _ := newHeader(t)
	if err := Validate(h, 1<<20); err != nil {
		t.Fatalf("valid header: %v", err)
	}
	if err := Validate(h, 1<<19); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("object shorter than header says: %v", err)
	}
	h.Version++
	if err := Validate(h, 1<<20); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("newer version: %v", err)
	}
	h.Version--
	h.HeapSize++
	if err := Validate(h, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("checksum mismatch: %v", err)
	}
	h.Checksum = HeaderChecksum(h)
	if err := Validate(h, 1<<20); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("bad geometry with good checksum: %v", err)
	}
	h.Magic.Store(0x1122334455667788)
	if err := Validate(h, 1<<20); !errors.Is(err, ErrIncompatible) {
		t.Fatalf("foreign magic: %v", err)
	}
	h.Magic.Store(0)
	if err := Validate(h, 1<<20); !errors.Is(err, ErrNotReady) {
		t.Fatalf("zero magic: %v", err)
	}
}
