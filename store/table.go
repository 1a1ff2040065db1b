package store

// table maps uint64 keys to nonzero uint32 values: the lookups a batch
// makes for every mutation (which of its intents touched this key hash,
// this slot). It replaces two Go maps that cost a fifth of a batched put:
// open addressing with linear probing, and an O(1) reset by generation,
// so a batch's start costs nothing whatever the last one's size was.
// Writer only; the zero table is empty and ready.
type table struct {
	keys []uint64
	vals []uint32
	gens []uint32 // an element is present iff gens[i] == gen
	gen  uint32
	n    int // elements present
	bits uint8
}

const tableMinBits = 6

func (t *table) index(k uint64) uint64 { return (k * 0x9e3779b97f4a7c15) >> (64 - t.bits) }

// get returns k's value, or 0.
func (t *table) get(k uint64) uint32 {
	if t.n == 0 {
		return 0
	}
	mask := uint64(len(t.keys) - 1)
	for i := t.index(k); ; i = (i + 1) & mask {
		if t.gens[i] != t.gen {
			return 0
		}
		if t.keys[i] == k {
			return t.vals[i]
		}
	}
}

// set sets k's value to v (v != 0).
func (t *table) set(k uint64, v uint32) { t.swap(k, v) }

// swap sets k's value to v (v != 0) and returns the previous one, or 0.
func (t *table) swap(k uint64, v uint32) (old uint32) {
	if 2*(t.n+1) > len(t.keys) {
		t.grow()
	}
	mask := uint64(len(t.keys) - 1)
	for i := t.index(k); ; i = (i + 1) & mask {
		if t.gens[i] != t.gen {
			t.keys[i], t.vals[i], t.gens[i] = k, v, t.gen
			t.n++
			return 0
		}
		if t.keys[i] == k {
			old, t.vals[i] = t.vals[i], v
			return old
		}
	}
}

// reset empties the table in O(1).
func (t *table) reset() {
	t.n = 0
	if t.gen++; t.gen == 0 { // wrapped: old stamps could match again
		clear(t.gens)
		t.gen = 1
	}
}

func (t *table) grow() {
	old := *t
	bits := max(old.bits+1, tableMinBits)
	*t = table{
		keys: make([]uint64, 1<<bits),
		vals: make([]uint32, 1<<bits),
		gens: make([]uint32, 1<<bits),
		gen:  1,
		bits: bits,
	}
	for i, g := range old.gens {
		if g == old.gen && old.n > 0 {
			t.set(old.keys[i], old.vals[i])
		}
	}
}
