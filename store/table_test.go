package store

import (
	"math/rand/v2"
	"testing"
)

// TestTableMatchesMap drives table and a Go map with the same random sets,
// gets and resets, including keys that collide in the low bits, key 0, and
// enough elements to grow it several times.
func TestTableMatchesMap(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var tb table
	want := map[uint64]uint32{}
	key := func() uint64 {
		switch rng.IntN(4) {
		case 0:
			return uint64(rng.IntN(64)) << 40 // same low bits
		case 1:
			return uint64(rng.IntN(3)) // 0, 1, 2
		default:
			return rng.Uint64() % 5000 * 8 // like slot offsets
		}
	}
	for round := range 200 {
		n := rng.IntN(3000)
		for range n {
			k, v := key(), uint32(rng.IntN(1000)+1)
			if rng.IntN(2) == 0 {
				tb.set(k, v)
			} else if old := tb.swap(k, v); old != want[k] {
				t.Fatalf("round %d: swap(%#x) returned %d, want %d", round, k, old, want[k])
			}
			want[k] = v
			if got := tb.get(k); got != v {
				t.Fatalf("round %d: get(%#x) right after set = %d, want %d", round, k, got, v)
			}
		}
		for range 1000 {
			k := key()
			if got := tb.get(k); got != want[k] {
				t.Fatalf("round %d: get(%#x) = %d, want %d", round, k, got, want[k])
			}
		}
		if tb.n != len(want) {
			t.Fatalf("round %d: %d elements, want %d", round, tb.n, len(want))
		}
		tb.reset()
		clear(want)
		for range 100 {
			if k := key(); tb.get(k) != 0 {
				t.Fatalf("round %d: get(%#x) = %d after reset", round, k, tb.get(k))
			}
		}
	}
}

// TestTableGenerationWraps checks that when the generation counter wraps,
// elements stamped with an old generation do not come back.
func TestTableGenerationWraps(t *testing.T) {
	var tb table
	tb.set(8, 1)        // stamped with generation 1
	tb.gen = ^uint32(0) // as if reset 2^32-2 times since, key 8 never touched
	tb.reset()          // wraps to generation 1 again: key 8's stamp must be gone
	tb.set(16, 2)
	if v := tb.get(8); v != 0 {
		t.Fatalf("after the generation wrapped, get(8) = %d, want 0", v)
	}
}
