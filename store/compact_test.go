package store

import (
	"bytes"
	"context"
	"testing"

	"github.com/shmkv/shmkv/layout"
)

// TestCompactFillsAGapWithSeveralMoves: one compaction transaction moves
// two entries into one gap, the second taking the rest of the gap whole
// (too little is left to split off). The step must see that the gap is
// used up, not take the next block for a free one. (Found by a drifting-
// size benchmark: the step compared with the wrong end and failed with
// ErrCorrupt.)
func TestCompactFillsAGapWithSeveralMoves(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	val := func(n int) []byte { return bytes.Repeat([]byte{'v'}, n) }
	// Blocks: g 424 B, b1 200 B, b2 200 B: the gap holds b1, then b2 with
	// 24 bytes to spare.
	for _, kv := range []struct {
		k string
		n int
	}{{"g", 411}, {"b1", 186}, {"b2", 186}, {"pin", 10}} {
		if got := layout.BlockSize(uint64(len(kv.k)), uint64(kv.n)); kv.k != "pin" && got != map[string]uint64{"g": 424, "b1": 200, "b2": 200}[kv.k] {
			t.Fatalf("setup: block of %s is %d bytes", kv.k, got)
		}
		if err := s.Put([]byte(kv.k), val(kv.n)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete([]byte("g")); err != nil {
		t.Fatal(err)
	}
	p, err := s.Compact(context.Background())
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if p.Entries < 2 {
		t.Fatalf("Compact moved %d entries, want the two after the gap", p.Entries)
	}
	for _, k := range []string{"b1", "b2"} {
		if v, err := s.Get([]byte(k)); err != nil || !bytes.Equal(v, val(186)) {
			t.Fatalf("%s after Compact: %d bytes, %v", k, len(v), err)
		}
	}
	if st := s.Stats(); st.Fragmentation != 0 {
		t.Fatalf("fragmentation %.3f after Compact, want 0", st.Fragmentation)
	}
}
