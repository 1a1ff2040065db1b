package offsetptr

import (
	"errors"
	"math"
	"testing"
)

func TestCheck(t *testing.T) {
	const length = 4096
	cases := []struct {
		o           Offset
		size, align uint64
		want        error
	}{
		{0, 8, 8, ErrNil},
		{8, 8, 8, nil},
		{4088, 8, 8, nil},
		{4096, 0, 1, nil},
		{4089, 8, 1, ErrOutOfBounds},
		{4092, 8, 4, ErrOutOfBounds},
		{12, 8, 8, ErrOutOfBounds}, // misaligned
		{4097, 0, 1, ErrOutOfBounds},
		{Offset(math.MaxUint64 - 3), 8, 1, ErrOutOfBounds}, // o+size overflows
		{8, math.MaxUint64, 1, ErrOutOfBounds},
	}
	for _, c := range cases {
		err := Check(c.o, c.size, c.align, length)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("Check(%#x, %d, %d) = %v, want %v", uint64(c.o), c.size, c.align, err, c.want)
		}
		if InBounds(c.o, c.size, c.align, length) != (c.want == nil) {
			t.Errorf("InBounds(%#x, %d, %d) disagrees with Check", uint64(c.o), c.size, c.align)
		}
	}
}

func TestAtIndependentOfBase(t *testing.T) {
	// Two mappings of the same bytes at different addresses: the same offset
	// names the same logical object in both.
	a := make([]uint64, 64)
	b := make([]uint64, 64)
	ra := NewRegion(bytesOf(a))
	rb := NewRegion(bytesOf(b))
	pa, err := At[uint64](ra, 128)
	if err != nil {
		t.Fatal(err)
	}
	*pa = 42
	copy(b, a)
	pb := MustAt[uint64](rb, 128)
	if *pb != 42 {
		t.Fatalf("offset 128 reads %d in the second region, want 42", *pb)
	}
	if o, ok := OffsetOf(rb, pb); !ok || o != 128 {
		t.Fatalf("OffsetOf = %d, %v; want 128, true", o, ok)
	}
	if _, err := At[uint64](ra, 512); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("At past the end: %v, want ErrOutOfBounds", err)
	}
	if _, err := ra.Bytes(500, 13); !errors.Is(err, ErrOutOfBounds) {
		t.Fatalf("Bytes past the end: %v, want ErrOutOfBounds", err)
	}
}

// TestSliceAt checks that a table view covers exactly the elements asked
// for and that every way of reaching past the region, including an element
// count whose byte size overflows, is refused.
func TestSliceAt(t *testing.T) {
	buf := make([]uint64, 64) // 512 bytes
	for i := range buf {
		buf[i] = uint64(i)
	}
	r := NewRegion(bytesOf(buf))
	s, err := SliceAt[[2]uint64](r, 64, 28)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != 28 || s[0][0] != 8 || s[27][1] != 63 {
		t.Fatalf("SliceAt(64, 28) = len %d, first %v, last %v; want 28, [8 9], [62 63]", len(s), s[0], s[27])
	}
	for _, c := range []struct {
		o Offset
		n uint64
	}{
		{64, 29},                // one element past the end
		{0, 1},                  // nil offset
		{68, 1},                 // misaligned
		{8, math.MaxUint64 / 8}, // byte size overflows
		{520, 0},                // starts past the end
	} {
		if _, err := SliceAt[[2]uint64](r, c.o, c.n); err == nil {
			t.Errorf("SliceAt(%d, %d) succeeded on a 512-byte region", c.o, c.n)
		}
	}
}
