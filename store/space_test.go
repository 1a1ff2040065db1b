package store

// Space is never lost: free blocks merge, and puts compact when no free
// block holds them, so a store whose live data stays under the guarantee
// (HeapSize - Reserve, for entries up to 5% of the heap) never answers
// ErrFull, whatever the history of sizes that led there.
//
// The randomized tests take their seed from the clock, log it, and take it
// from SHMKV_SEED when set, to replay a failure:
//
//	SHMKV_SEED=1234 go test -run TestRandomPutDelete1to8KiB -v ./store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shmkv/shmkv/layout"
)

// spaceRand returns a generator seeded from SHMKV_SEED, or from the clock.
func spaceRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SHMKV_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SHMKV_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("seed %d (replay with SHMKV_SEED=%d)", seed, seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
}

// spaceVal is what the model knows of a key's value: which write it was
// and how long. The bytes follow from both (spaceFill), so the model holds
// no copies.
type spaceVal struct {
	ver uint32
	n   int
}

// spaceFill returns buf[:n] filled with the value of write ver of key.
// The first bytes name the key and the write, so a value that lands under
// the wrong key, or an old value, does not compare equal.
func spaceFill(buf []byte, key string, ver uint32, n int) []byte {
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	var h [16]byte
	binary.LittleEndian.PutUint32(h[0:], ver)
	binary.LittleEndian.PutUint32(h[4:], uint32(n))
	copy(h[8:], key)
	m := copy(buf, h[:])
	x := byte(ver*131) ^ byte(len(key)*17)
	for i := m; i < n; i++ {
		buf[i] = x + byte(i*7)
	}
	return buf
}

// spaceModel is what the store must hold: every acknowledged write.
type spaceModel struct {
	t      *testing.T
	s      *Store
	vals   map[string]spaceVal
	order  []string // keys in the order they were inserted (live or not)
	blocks int64    // the sum of layout.BlockSize over the live entries
	ver    uint32
	buf    []byte
	got    []byte
}

func newSpaceModel(t *testing.T, s *Store) *spaceModel {
	return &spaceModel{t: t, s: s, vals: map[string]spaceVal{}}
}

func spaceBlock(key string, n int) int64 {
	return int64(layout.BlockSize(uint64(len(key)), uint64(n)))
}

// put writes a value of n bytes to key and records it if the store
// acknowledged it.
func (m *spaceModel) put(key string, n int) error {
	m.ver++
	m.buf = spaceFill(m.buf, key, m.ver, n)
	if err := m.s.Put([]byte(key), m.buf); err != nil {
		return err
	}
	m.record(key, spaceVal{m.ver, n})
	return nil
}

// record notes that key now holds v.
func (m *spaceModel) record(key string, v spaceVal) {
	if old, ok := m.vals[key]; ok {
		m.blocks -= spaceBlock(key, old.n)
	} else {
		m.order = append(m.order, key)
	}
	m.vals[key] = v
	m.blocks += spaceBlock(key, v.n)
}

func (m *spaceModel) del(key string) {
	m.t.Helper()
	if err := m.s.Delete([]byte(key)); err != nil {
		m.t.Fatalf("Delete(%q): %v", key, err)
	}
	m.forget(key)
}

func (m *spaceModel) has(key string) bool {
	_, ok := m.vals[key]
	return ok
}

func (m *spaceModel) forget(key string) {
	m.blocks -= spaceBlock(key, m.vals[key].n)
	delete(m.vals, key)
}

// live returns the live keys in insertion order, and drops dead ones from
// the order.
func (m *spaceModel) live() []string {
	keep := m.order[:0]
	for _, k := range m.order {
		if _, ok := m.vals[k]; ok {
			keep = append(keep, k)
		}
	}
	m.order = keep
	return append([]string(nil), keep...)
}

// verify reads every key back and checks the store's accounting: the live
// blocks take what the model says, and live, free and never-used bytes add
// up to the heap.
func (m *spaceModel) verify(when string) {
	m.t.Helper()
	for k, v := range m.vals {
		want := spaceFill(m.buf, k, v.ver, v.n)
		got, err := m.s.GetAppend(m.got[:0], []byte(k))
		if err != nil {
			m.t.Fatalf("%s: Get(%q): %v", when, k, err)
		}
		m.got = got
		if string(got) != string(want) {
			m.t.Fatalf("%s: Get(%q) returned %d bytes that are not write %d (%d bytes)", when, k, len(got), v.ver, v.n)
		}
	}
	if n := m.s.Len(); n != len(m.vals) {
		m.t.Fatalf("%s: Len() = %d, the model has %d keys", when, n, len(m.vals))
	}
	st := m.s.Stats()
	// A block may be up to 31 bytes longer than BlockSize: the rest of a
	// free block too small to split off goes with it.
	if st.BlockBytes < m.blocks || st.BlockBytes > m.blocks+31*int64(len(m.vals)) {
		m.t.Fatalf("%s: Stats().BlockBytes = %d; the live entries need %d (+ at most 31 each for %d entries)",
			when, st.BlockBytes, m.blocks, len(m.vals))
	}
	if sum := st.BlockBytes + st.FreeListBytes + st.TailBytes; sum != st.HeapSize {
		m.t.Fatalf("%s: space lost: live %d + free %d + never used %d = %d, heap %d",
			when, st.BlockBytes, st.FreeListBytes, st.TailBytes, sum, st.HeapSize)
	}
}

func spaceCheck(t *testing.T, s *Store) {
	t.Helper()
	if err := s.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
}

// A fixed set of keys whose value sizes drift: each overwrite frees a
// block a little different from the next one needed. Without merging, the
// free lists fill with blocks of the wrong sizes until the store is full
// while almost empty.
func TestSizesDriftOverFixedKeys(t *testing.T) {
	rng := spaceRand(t)
	s := newStore(t, &Options{Size: 4 << 20})
	m := newSpaceModel(t, s)
	const keys, lo, hi = 100, 1000, 1200
	size := make([]int, keys)
	for i := range size {
		size[i] = lo + rng.IntN(hi-lo+1)
	}
	target := 50 * s.Stats().Size
	var written int64
	var ops int
	for ops = 1; written < target; ops++ {
		i := rng.IntN(keys)
		size[i] = min(hi, max(lo, size[i]+rng.IntN(65)-32)) // drift
		key := fmt.Sprintf("k%03d", i)
		if err := m.put(key, size[i]); err != nil {
			st := s.Stats()
			t.Fatalf("put %d (%d bytes written so far, %d live entries taking %d bytes of a %d-byte heap): %v",
				ops, written, st.Entries, st.BlockBytes, st.HeapSize, err)
		}
		written += int64(size[i])
		if ops%1000 == 0 {
			m.verify(fmt.Sprintf("after %d puts", ops))
		}
	}
	m.verify("at the end")
	spaceCheck(t, s)
	t.Logf("%d puts, %d MiB written to a %d MiB store", ops-1, written>>20, s.Stats().Size>>20)
}

// spaceGuard is a conservative figure for what the store promises to hold:
// the reserve is at most a tenth of the heap.
func spaceGuard(s *Store) int64 {
	h := s.Stats().HeapSize
	return h - h/10
}

// spaceFillTo puts values of sizes from size() under fresh keys until the
// live blocks take limit bytes.
func spaceFillTo(t *testing.T, m *spaceModel, prefix string, limit int64, size func() int) int {
	t.Helper()
	n := 0
	for {
		key := fmt.Sprintf("%s%06d", prefix, n)
		v := size()
		if m.blocks+spaceBlock(key, v) > limit {
			return n
		}
		if err := m.put(key, v); err != nil {
			st := m.s.Stats()
			t.Fatalf("put %q of %d bytes with %d live entries taking %d bytes (fill limit %d, heap %d): %v",
				key, v, st.Entries, st.BlockBytes, limit, st.HeapSize, err)
		}
		n++
	}
}

// Small values, then large, then small, each phase filling most of what the
// store guarantees: the space the small ones used must serve the large ones
// (merging), and, when only every other key is deleted, the free space left
// scattered between live entries must be gathered (compaction).
func TestSmallThenLargeThenSmall(t *testing.T) {
	rng := spaceRand(t)
	for _, every := range []bool{false, true} {
		name := "DeleteAll"
		if every {
			name = "DeleteEveryOther"
		}
		t.Run(name, func(t *testing.T) {
			s := newStore(t, &Options{Size: 1 << 20, MaxEntries: 12000})
			m := newSpaceModel(t, s)
			limit := spaceGuard(s) * 8 / 10
			small := func() int { return 40 }
			large := func() int { return 3<<10 + rng.IntN(2<<10+1) }
			phase := 0
			for round := range 3 {
				for _, sz := range []struct {
					name string
					size func() int
				}{{"small", small}, {"large", large}} {
					phase++
					prefix := fmt.Sprintf("%s%d-", sz.name[:1], phase)
					n := spaceFillTo(t, m, prefix, limit, sz.size)
					m.verify(fmt.Sprintf("round %d, after %d %s values", round, n, sz.name))
					for i, k := range m.live() {
						if !every || i%2 == 0 {
							m.del(k)
						}
					}
					m.verify(fmt.Sprintf("round %d, after deleting %s values", round, sz.name))
				}
			}
			spaceCheck(t, s)
		})
	}
}

// Random puts and deletes of 1 B to 8 KiB over a few hundred keys, the
// live data kept under 60% of the heap.
func TestRandomPutDelete1to8KiB(t *testing.T) {
	rng := spaceRand(t)
	s := newStore(t, &Options{Size: 4 << 20})
	m := newSpaceModel(t, s)
	const keys, ops = 300, 100000
	limit := s.Stats().HeapSize * 6 / 10
	size := func() int {
		if rng.IntN(2) == 0 {
			return 1 + rng.IntN(8<<10) // uniform
		}
		return 1 << rng.IntN(14) // powers of two, 1 B to 8 KiB
	}
	var written int64
	for op := 1; op <= ops; op++ {
		key := fmt.Sprintf("key%03d", rng.IntN(keys))
		_, present := m.vals[key]
		if present && rng.IntN(3) == 0 {
			m.del(key)
			continue
		}
		n := size()
		if n < 1 || n > 8<<10 {
			t.Fatalf("size %d", n)
		}
		grow := spaceBlock(key, n)
		if present {
			grow -= spaceBlock(key, m.vals[key].n)
		}
		if m.blocks+max(grow, 0) > limit {
			if present {
				m.del(key)
			}
			continue
		}
		if err := m.put(key, n); err != nil {
			st := s.Stats()
			t.Fatalf("op %d: put %q of %d bytes with %d live entries taking %d bytes (limit %d, heap %d): %v",
				op, key, n, st.Entries, st.BlockBytes, limit, st.HeapSize, err)
		}
		written += int64(n)
		if op%5000 == 0 {
			m.verify(fmt.Sprintf("after op %d", op))
		}
	}
	m.verify("at the end")
	spaceCheck(t, s)
	t.Logf("%d ops, %d MiB written, %d keys live taking %d bytes", ops, written>>20, len(m.vals), m.blocks)
}

// spaceReserve is the reserve that applies to a put of a block of n bytes:
// twice the largest block ever allocated, this one included, at most a
// tenth of the heap.
func spaceReserve(s *Store, n int64) int64 {
	st := s.Stats()
	return max(st.Reserve, min(2*n, st.HeapSize/10))
}

// The guarantee, against the pattern that defeats compaction most: every
// free hole is smaller than the entry after it, so no entry can slide into
// the hole below it, and the new entries fit no hole either.
func TestPutGuarantee(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	m := newSpaceModel(t, s)
	heap := s.Stats().HeapSize
	// value length for a block of exactly b bytes under a 6-byte key
	val := func(b int) int { return b - layout.EntryHeader - 6 }
	if spaceBlock("a00000", val(1000)) != 1000 || spaceBlock("b00000", val(992)) != 992 || spaceBlock("c00000", val(2000)) != 2000 {
		t.Fatal("block sizes are not the ones the pattern needs")
	}
	if 2000 > heap/20 {
		t.Fatalf("a heap of %d bytes: 2000-byte entries are over 5%% of it", heap)
	}
	// put puts a block of b bytes under key and holds the store to the
	// guarantee: it must succeed when live + new <= HeapSize - Reserve.
	// It reports whether the store took it.
	put := func(key string, b int) bool {
		t.Helper()
		n := int64(b)
		limit := heap - spaceReserve(s, n)
		before := s.Stats()
		live := before.BlockBytes
		err := m.put(key, val(b))
		if err == nil {
			return true
		}
		if !errors.Is(err, ErrFull) {
			t.Fatalf("put %q: %v", key, err)
		}
		if live+n <= limit {
			t.Fatalf("put %q of a %d-byte block: %v\nlive %d + new %d = %d <= heap %d - reserve %d = %d: the guarantee says it fits",
				key, b, err, live, n, live+n, heap, heap-limit, limit)
		}
		if !strings.Contains(err.Error(), "no room for an entry") {
			t.Fatalf("ErrFull for lack of bytes does not say so: %v", err)
		}
		if after := s.Stats(); after.BlockBytes != before.BlockBytes || after.Entries != before.Entries {
			t.Fatalf("a put that failed changed the store: %d entries taking %d bytes, now %d taking %d",
				before.Entries, before.BlockBytes, after.Entries, after.BlockBytes)
		}
		t.Logf("%v (live %d + new %d = %d > heap %d - reserve %d = %d)", err, live, n, live+n, heap, heap-limit, limit)
		return false
	}
	// A_i of 1000 bytes and B_i of 992 alternately, until the store is full.
	var pairs int
	for pairs = 0; ; pairs++ {
		if !put(fmt.Sprintf("a%05d", pairs), 1000) {
			break
		}
		if !put(fmt.Sprintf("b%05d", pairs), 992) {
			break
		}
	}
	m.verify("after filling with A and B")
	st := s.Stats()
	t.Logf("%d pairs; live %d of heap %d (%.1f%%), reserve %d", pairs, st.BlockBytes, heap, 100*st.Fill, st.Reserve)
	if st.Fill < 0.85 {
		t.Fatalf("filling stopped at %.1f%% of the heap", 100*st.Fill)
	}
	for i := 0; i <= pairs; i++ {
		if k := fmt.Sprintf("b%05d", i); m.has(k) {
			m.del(k)
		}
	}
	m.verify("after deleting every B")
	// No free block holds a C, and the never-used tail holds none with
	// its reserve.
	if st := s.Stats(); st.LargestFree > st.TailBytes && st.LargestFree >= 2000 || st.TailBytes >= 2000+spaceReserve(s, 2000) {
		t.Fatalf("after deleting every B: largest free piece %d bytes, never used %d: the pattern does not scatter free space",
			st.LargestFree, st.TailBytes)
	}
	compactions := s.Stats().Compactions
	// C_i of 2000 bytes: none fits a hole. Each must succeed while the
	// guarantee covers it (put fails the test otherwise); then the first
	// ErrFull must come past it.
	var c int
	for c = 0; c < 10000; c++ {
		if !put(fmt.Sprintf("c%05d", c), 2000) {
			break
		}
	}
	if c == 10000 {
		t.Fatal("the heap never filled")
	}
	st = s.Stats()
	t.Logf("%d entries of 2000 bytes; live %d of heap %d (%.1f%%); compactions %d, %d bytes moved",
		c, st.BlockBytes, heap, 100*st.Fill, st.Compactions-compactions, st.BytesMoved)
	if st.Compactions == compactions {
		t.Fatal("the 2000-byte entries went in without compacting: the pattern left a free piece that holds them")
	}
	m.verify("after ErrFull")
	spaceCheck(t, s)

	t.Run("Entries", func(t *testing.T) {
		s := newStore(t, &Options{Size: 256 << 10, MaxEntries: 16})
		maxN := s.Stats().MaxEntries
		for i := range maxN {
			if err := s.Put([]byte(fmt.Sprint("e", i)), []byte("v")); err != nil {
				t.Fatalf("put %d of %d: %v", i+1, maxN, err)
			}
		}
		err := s.Put([]byte("one more"), []byte("v"))
		if !errors.Is(err, ErrFull) || !strings.Contains(err.Error(), "entries") {
			t.Fatalf("put past MaxEntries=%d: %v, want ErrFull naming entries", maxN, err)
		}
		if err := s.Put([]byte("e0"), []byte("overwrite")); err != nil {
			t.Fatalf("overwrite at MaxEntries: %v", err)
		}
		if err := s.Delete([]byte("e1")); err != nil {
			t.Fatal(err)
		}
		if err := s.Put([]byte("one more"), []byte("v")); err != nil {
			t.Fatalf("put after a delete freed an entry: %v", err)
		}
		if s.Len() != maxN {
			t.Fatalf("Len %d, want %d", s.Len(), maxN)
		}
		spaceCheck(t, s)
	})
}

// spaceScatter fills s with values of 200 to 600 bytes until it is full,
// then deletes every other one: about half the heap is free, in holes no
// bigger than 600 bytes between live entries.
func spaceScatter(t *testing.T, m *spaceModel, rng *rand.Rand, prefix string) {
	t.Helper()
	for i := 0; ; i++ {
		err := m.put(fmt.Sprintf("%s%05d", prefix, i), 200+rng.IntN(401))
		if errors.Is(err, ErrFull) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i, k := range m.live() {
		if i%2 == 1 {
			m.del(k)
		}
	}
	m.verify("after scattering free space")
	if st := m.s.Stats(); st.Fragmentation < 0.5 || st.LargestFree >= 8<<10 {
		t.Fatalf("scattering left fragmentation %.2f, largest free piece %d", st.Fragmentation, st.LargestFree)
	}
}

// A batch whose later puts fit no free block: it compacts in the middle,
// plans its earlier mutations again (an overwrite, a delete, and puts that
// went into the one hole big enough for them), and calls fn once.
func TestBatchCompacts(t *testing.T) {
	rng := spaceRand(t)
	s := newStore(t, &Options{Size: 2 << 20})
	m := newSpaceModel(t, s)
	spaceScatter(t, m, rng, "s")
	const big, bigSize = 8, 8 << 10
	bigBlock := spaceBlock("big0", bigSize)
	// One hole that holds about two of the batch's big entries: the
	// entries from the 100th live one on, and the holes between them.
	live := m.live()
	var hole int64
	for _, k := range live[100:] {
		if hole >= bigBlock {
			break
		}
		hole += spaceBlock(k, m.vals[k].n)
		m.del(k)
	}
	over, gone := live[0], live[1]
	before := s.Stats()
	if before.LargestFree < bigBlock || before.LargestFree >= big*bigBlock/2 {
		t.Fatalf("largest free piece %d bytes: want one that holds a %d-byte block but not the whole batch", before.LargestFree, bigBlock)
	}
	calls := 0
	type write struct {
		key string
		v   spaceVal
	}
	var planned []write
	compactedAt := -1 // the first big put that compacted
	err := s.Update(func(b *Batch) error {
		calls++
		planned = planned[:0]
		m.ver++
		v := spaceVal{m.ver, 300}
		if err := b.Put([]byte(over), spaceFill(nil, over, v.ver, v.n)); err != nil {
			return fmt.Errorf("overwrite %q: %w", over, err)
		}
		planned = append(planned, write{over, v})
		if err := b.Delete([]byte(gone)); err != nil {
			return fmt.Errorf("delete %q: %w", gone, err)
		}
		var first spaceVal
		for i := range big {
			key := fmt.Sprintf("big%d", i)
			m.ver++
			v := spaceVal{m.ver, bigSize}
			if err := b.Put([]byte(key), spaceFill(nil, key, v.ver, v.n)); err != nil {
				return fmt.Errorf("put %q: %w", key, err)
			}
			planned = append(planned, write{key, v})
			if i == 0 {
				first = v
			}
			// Stats takes no lock: it can look while the batch holds it.
			if compactedAt < 0 && s.Stats().Compactions != before.Compactions {
				compactedAt = i
			}
			// The batch reads its own earlier writes, also after compacting.
			got, err := b.Get([]byte("big0"))
			if err != nil || string(got) != string(spaceFill(nil, "big0", first.ver, first.n)) {
				return fmt.Errorf("after putting %q, b.Get(big0) = %d bytes, %v; want write %d", key, len(got), err, first.ver)
			}
			if got, err := b.Get([]byte(over)); err != nil || string(got) != string(spaceFill(nil, over, planned[0].v.ver, planned[0].v.n)) {
				return fmt.Errorf("after putting %q, b.Get(%q) = %d bytes, %v; want the batch's overwrite", key, over, len(got), err)
			}
			if _, err := b.Get([]byte(gone)); !errors.Is(err, ErrNotFound) {
				return fmt.Errorf("after putting %q, b.Get(%q) of a key the batch deleted: %v", key, gone, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if calls != 1 {
		t.Fatalf("fn called %d times, want 1", calls)
	}
	if compactedAt < 1 {
		t.Fatalf("the batch compacted at big put %d: want it to compact after planning some big puts", compactedAt)
	}
	for _, w := range planned {
		m.record(w.key, w.v)
	}
	m.forget(gone)
	after := s.Stats()
	if after.Compactions <= before.Compactions {
		t.Fatalf("Compactions %d before, %d after: the batch did not compact", before.Compactions, after.Compactions)
	}
	t.Logf("compacted at big put %d: %d compactions, %d bytes moved; largest free piece %d before (fragmentation %.2f), %d after (%.2f)",
		compactedAt, after.Compactions-before.Compactions, after.BytesMoved-before.BytesMoved,
		before.LargestFree, before.Fragmentation, after.LargestFree, after.Fragmentation)
	m.verify("after the batch")
	spaceCheck(t, s)
}

// Compact gathers scattered free space into one piece, and reports its
// progress in order.
func TestCompactMakesFreeSpaceOnePiece(t *testing.T) {
	rng := spaceRand(t)
	s := newStore(t, &Options{Size: 2 << 20})
	m := newSpaceModel(t, s)
	compacted := func(before Stats, p CompactProgress) {
		t.Helper()
		st := s.Stats()
		free := st.FreeListBytes + st.TailBytes
		if st.Fragmentation != 0 && st.LargestFree != free {
			t.Fatalf("after Compact: fragmentation %.3f, largest free piece %d of %d free bytes (%d in free blocks)",
				st.Fragmentation, st.LargestFree, free, st.FreeListBytes)
		}
		// All the free bytes, less what moved entries took as slack: a
		// move that leaves 8 to 24 bytes of a gap (too few for a free
		// block) gives them to the entry it moved, which keeps them until
		// it is freed or moved again. That happens about once in ten
		// passes here; more than a few such remainders would be a loss.
		was := before.FreeListBytes + before.TailBytes
		if st.LargestFree < was-3*24 {
			t.Fatalf("after Compact the largest free piece is %d bytes; %d were free before", st.LargestFree, was)
		}
		if st.LargestFree < was {
			t.Logf("after Compact the largest free piece is %d bytes, %d less than were free before: moved entries took them as slack",
				st.LargestFree, was-st.LargestFree)
		}
		if p.Moved == 0 || p.Entries == 0 || st.BytesMoved-before.BytesMoved != p.Moved {
			t.Fatalf("Compact reported %+v; Stats().BytesMoved went from %d to %d", p, before.BytesMoved, st.BytesMoved)
		}
		t.Logf("compacted: %+v; largest free piece %d bytes, was %d (fragmentation %.2f)",
			p, st.LargestFree, before.LargestFree, before.Fragmentation)
		m.verify("after Compact")
		spaceCheck(t, s)
	}

	spaceScatter(t, m, rng, "x")
	before := s.Stats()
	p, err := s.Compact(context.Background())
	if err != nil {
		t.Fatalf("Compact: %v", err)
	}
	if p.Done != p.Total {
		t.Fatalf("Compact returned %+v: Done != Total", p)
	}
	compacted(before, p)

	// Again, watching the progress.
	spaceScatter(t, m, rng, "y")
	before = s.Stats()
	var seen []CompactProgress
	p, err = s.CompactWithProgress(context.Background(), func(p CompactProgress) { seen = append(seen, p) })
	if err != nil {
		t.Fatalf("CompactWithProgress: %v", err)
	}
	if len(seen) == 0 {
		t.Fatal("CompactWithProgress never called its callback")
	}
	for i, q := range seen {
		if q.Total != seen[0].Total || q.Total <= 0 || q.Done < 0 || q.Done > q.Total {
			t.Fatalf("progress %d of %d: %+v (first %+v)", i, len(seen), q, seen[0])
		}
		if i > 0 {
			if r := seen[i-1]; q.Done < r.Done || q.Moved < r.Moved || q.Entries < r.Entries {
				t.Fatalf("progress went back: %+v then %+v", r, q)
			}
		}
	}
	if last := seen[len(seen)-1]; last.Done != last.Total || last != p {
		t.Fatalf("last progress %+v, returned %+v: want Done == Total and the same", last, p)
	}
	t.Logf("%d progress reports", len(seen))
	compacted(before, p)
}

// Overwrites by values of the same block size free their old blocks
// lazily: the next such overwrite takes one back, so churn never eats the
// never-used space; lazy bytes stay under a 32nd of the heap; and when
// room runs short they merge like any free block, so the guarantee holds.
func TestLazyFrees(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	val := func(i, round int) []byte { return bytes.Repeat([]byte{byte('a' + (i+round)%26)}, 200) }
	const keys = 1000
	for i := range keys {
		if err := s.Put([]byte(fmt.Sprintf("k%04d", i)), val(i, 0)); err != nil {
			t.Fatal(err)
		}
	}
	st := s.Stats()
	tail := st.TailBytes
	rng := rand.New(rand.NewPCG(7, 8))
	for round := 1; round <= 20_000; round++ {
		i := rng.IntN(keys)
		if err := s.Put([]byte(fmt.Sprintf("k%04d", i)), val(i, round)); err != nil {
			t.Fatal(err)
		}
	}
	st = s.Stats()
	if st.LazyFreeBytes == 0 || st.LazyFreeBytes > st.HeapSize/32 {
		t.Fatalf("after same-size churn: %d lazy bytes; want some, at most %d", st.LazyFreeBytes, st.HeapSize/32)
	}
	if st.TailBytes < tail-st.HeapSize/32 {
		t.Fatalf("same-size churn took %d bytes of the never-used space: lazy blocks are not reused", tail-st.TailBytes)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	// Keep every tenth key; fill with 8 KiB values up to the guarantee.
	var live int64
	for i := range keys {
		k := []byte(fmt.Sprintf("k%04d", i))
		if i%10 != 0 {
			if err := s.Delete(k); err != nil {
				t.Fatal(err)
			}
			continue
		}
		live += int64(layout.BlockSize(uint64(len(k)), 200))
	}
	big := bytes.Repeat([]byte("B"), 8<<10)
	for i := 0; ; i++ {
		k := []byte(fmt.Sprintf("big%04d", i))
		need := int64(layout.BlockSize(uint64(len(k)), uint64(len(big))))
		err := s.Put(k, big)
		if err == nil {
			live += need
			continue
		}
		st := s.Stats()
		if !errors.Is(err, ErrFull) || live+need <= st.HeapSize-st.Reserve {
			t.Fatalf("put %d with %d live + %d new <= %d (heap %d - reserve %d): %v", i, live, need, st.HeapSize-st.Reserve, st.HeapSize, st.Reserve, err)
		}
		break
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.LazyFreeBytes != 0 {
		t.Fatalf("after Compact: %d lazy bytes, want 0", st.LazyFreeBytes)
	}
}
