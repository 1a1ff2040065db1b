package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shmkv/shmkv/layout"
)

// Check verifies every invariant of the region and reports each violation
// it finds (wrapping ErrCorrupt), or nil. It takes the writer lock, so it
// sees the region between transactions, after repairing any that a dead
// writer left. Readers go on meanwhile; writers wait. It reads the whole
// region: use it in tests, after a crash, or from `shmkv check`, not on a
// hot path.
//
// The invariants: the header is valid; the journal is idle; heap blocks
// tile [HeapOff, Top) with sane sizes; every entry's key and value match
// its checksum (each bad entry is named); each free list holds only free
// blocks of its class, without cycles; every free block is on one list and
// every live block is named by exactly one index slot; each slot's tag and
// place fit its key's hash; every bucket's Overflow equals the number of
// keys that probe past it; the counts in Meta match what is there.
func (s *Store) Check() error { return s.fail("check", s.checkLocked()) }

// checkLocked is Check: it takes the locks and checks.
func (s *Store) checkLocked() (err error) {
	if !s.wmu.TryLock() {
		if err := s.lockSlowly(context.Background()); err != nil {
			return err
		}
	}
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	g := s.guard()
	defer s.unguard(&g, &err)
	if s.readOnly {
		return s.checkUnlocked()
	}
	if err := s.lockWriter(context.Background()); err != nil {
		return err
	}
	defer s.unlockWriter()
	// As withLock does: the size another process grew the store to, before
	// and after the repair.
	if err := s.refreshSize(); err != nil {
		return err
	}
	if err := s.repairIfNeeded(); err != nil {
		return err
	}
	if err := s.refreshSize(); err != nil {
		return err
	}
	return s.check()
}

// checkUnlocked is Check for a read-only Store, which cannot take the
// writer lock: it checks while writers may run, so a violation it finds
// may be a transaction seen half done. It checks again until a pass sees
// no commit start or finish; only violations found by such a pass are
// reported. A store that never stops changing gets an error that says so.
func (s *Store) checkUnlocked() error {
	m, jh := &s.hdr.Meta, s.journal()
	for range 50 {
		before := m.Commits.Load()
		if jh.State.Load() != layout.JournalIdle {
			time.Sleep(time.Millisecond)
			continue
		}
		// The store may have grown since this Store last looked (wmu
		// guards the size; a read-only Store never writes, so only here).
		err := s.refreshSize()
		if err == nil {
			err = s.check()
		}
		loadFence()
		if m.Commits.Load() == before && jh.State.Load() == layout.JournalIdle {
			return err
		}
	}
	return fmt.Errorf("shmkv: the store changed during each of 50 checks; a read-only Store cannot stop writers, so Check is exact only between their transactions: run it from a writable Store (it takes the writer lock)")
}

type violations struct {
	errs []error
	more int
}

func (v *violations) add(format string, args ...any) {
	if len(v.errs) >= 20 {
		v.more++
		return
	}
	v.errs = append(v.errs, fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...))
}

func (v *violations) err() error {
	if v.more > 0 {
		v.errs = append(v.errs, fmt.Errorf("%w: and %d more violations", ErrCorrupt, v.more))
	}
	return errors.Join(v.errs...)
}

// check runs the passes over a region that holds still (see Check), in
// the manner of bbolt's tx_check.go: each pass reports what it finds into
// v and hands on what the next needs in a tally. The header and heap
// passes stop the check early when what comes after could not be read.
func (s *Store) check() error {
	var v violations
	if err := s.checkHeader(&v); err != nil {
		return err
	}
	var t tally
	if err := s.checkHeap(&v, &t); err != nil {
		return err
	}
	s.checkFreeLists(&v, &t)
	s.checkIndex(&v, &t)
	s.checkCounts(&v, &t)
	return v.err()
}

// What the heap pass found at each block offset; the free-list and index
// passes add seen as they reach a block.
const (
	live     = 1
	free     = 2
	seen     = 4
	fragment = 8
)

// tally is what Check's passes hand on: the heap pass's map of blocks and
// the heap top it walked to, and the entries and bytes the passes count,
// which the last pass holds against Meta.
type tally struct {
	blocks                                   map[uint64]uint8
	top                                      uint64
	liveBytes, kvBytes, freeBytes, fragBytes uint64
	count                                    uint64
}

// reach marks the block at off as reached, by a free list or an index
// slot: it must be a block of the kind want that the heap pass met, and
// be reached once. It returns ok, or which of the two failed.
func (t *tally) reach(off uint64, want uint8) reachResult {
	st, ok := t.blocks[off]
	switch {
	case !ok || st&want == 0:
		return reachWrongKind
	case st&seen != 0:
		return reachTwice
	}
	t.blocks[off] |= seen
	return reachOK
}

// listed is reach for the n-th block that list c names, which must be a
// free block: it reports whether the list may be followed on from it.
func (t *tally) listed(v *violations, list string, c int, off uint64, n int) bool {
	switch r := t.reach(off, free); {
	case r == reachWrongKind || n > len(t.blocks):
		v.add("%s %d names %#x, which is not a free block", list, c, off)
	case r == reachTwice:
		v.add("%s %d: block %#x listed twice (cycle?)", list, c, off)
	default:
		return true
	}
	return false
}

type reachResult uint8

const (
	reachOK reachResult = iota
	reachWrongKind
	reachTwice
)

// checkHeader is the header pass: a valid header, the geometry this
// process opened, an idle journal. An error means the region cannot be
// read by the passes after it.
func (s *Store) checkHeader(v *violations) error {
	g := &s.geo
	if err := layout.Validate(s.hdr, s.objLen); err != nil {
		v.add("header: %v", err)
		return v.err()
	}
	// The static geometry: Size and HeapSize are the published ones.
	h := s.hdr.Geometry()
	h.Size, h.HeapSize = g.Size, g.HeapSize
	if h != *g {
		v.add("header geometry changed since this process opened the store")
		return v.err()
	}
	if st := s.journal().State.Load(); st != layout.JournalIdle {
		v.add("journal state %d, want idle", st)
	}
	return nil
}

// checkHeap is the heap pass: blocks tile [HeapOff, Top) with sane sizes,
// free blocks are merged, carry their footer and the right flags, live
// ones hold a whole entry. It fills t.blocks, a map of every block it
// met, for the passes after it. An error means the heap cannot be walked.
func (s *Store) checkHeap(v *violations, t *tally) error {
	g := &s.geo
	// Heap: blocks tile [HeapOff, Top).
	blocks := map[uint64]uint8{}
	top := s.hdr.Meta.Top.Load()
	if c := s.hdr.Clean.Load(); c < top {
		v.add("clean mark %#x below the heap top %#x: bytes above it may not be zeros", c, top)
	}
	if top < g.HeapOff || top > g.Size || top%layout.EntryAlign != 0 {
		v.add("heap top %#x outside [%#x, %#x]", top, g.HeapOff, g.Size)
		return v.err()
	}
	var liveBytes, kvBytes, freeBytes, fragBytes, lazyBytes uint64
	// prevTagged: the block before is free and not lazy.
	prevTagged := false
	for off := g.HeapOff; off < top; {
		b, err := s.blockAt(off, top)
		if err != nil {
			v.add("heap walk stops at %#x: %v", off, err)
			break
		}
		isFree := b.flags&layout.SizeFree != 0
		isLazy := b.flags&layout.SizeLazy != 0
		switch {
		case isLazy && !isFree:
			v.add("block %#x is marked lazy but not free", off)
		case isFree && b.e.Seq.Load()&1 == 0:
			v.add("free block %#x has an even Seq", off)
		case isFree:
			blocks[off] = free
			if b.size < layout.EntrySize {
				blocks[off] = fragment // on no list, by design
				fragBytes += b.size
			}
			if isLazy {
				if b.size < layout.EntrySize {
					v.add("lazy block %#x of %d bytes: lazy blocks are whole entry blocks", off, b.size)
				}
				lazyBytes += b.size
				break // no footer; it may touch other free blocks
			}
			if prevTagged {
				v.add("free block %#x follows a tagged free block: they should have merged", off)
			}
			if big := b.e.Size&^layout.SizeFlags == 0; big != s.big(b.size) {
				v.add("free block %#x of %d bytes: big form %v, want %v (from %d bytes)", off, b.size, big, !big, s.bigFree)
			}
			if w := s.word(off + b.size - 8).Load(); b.size >= layout.EntrySize && w != s.footerWord(b.size) {
				v.add("free block %#x of %d bytes has footer %#x", off, b.size, w)
			} else if f := footerSize(w); f != b.size {
				v.add("free block %#x of %d bytes has footer %d", off, b.size, f)
			}
		case b.e.Seq.Load()&1 != 0:
			v.add("block %#x is neither free nor a published entry (odd Seq, leaked)", off)
		default:
			if e, err := s.liveBlock(off); err != nil {
				v.add("%v", err)
			} else if slack := e.size - layout.EntryHeader - e.kl - e.vl; slack > layout.MaxSlack {
				v.add("entry at %#x: slack of %d bytes in a block of %d", off, slack, e.size)
			} else if e.e.Flags&layout.EntryIndex == 0 && layout.EntrySum(hashKey(s.key(e)), s.value(e)) != e.sum {
				v.add("entry at %#x (key %s): its key and value fail its checksum", off, QuoteKey(s.key(e)))
			}
			blocks[off] = live
		}
		if (b.flags&layout.SizePrevFree != 0) != prevTagged {
			v.add("block %#x: SizePrevFree is %v, the block before is tagged free: %v", off, !prevTagged, prevTagged)
		}
		prevTagged = isFree && !isLazy
		off += b.size
	}
	if prevTagged {
		v.add("the block below the heap top is free and tagged: it should have gone back to the never-used space")
	}
	if l := s.hdr.Alloc.LazyBytes.Load(); l != lazyBytes {
		v.add("Alloc.LazyBytes is %d, the heap has %d in lazy free blocks", l, lazyBytes)
	}
	if c := s.hdr.Alloc.Cursor.Load(); c != top {
		if _, ok := blocks[c]; !ok {
			v.add("compaction cursor %#x is not a block boundary", c)
		}
	}
	*t = tally{blocks: blocks, top: top, liveBytes: liveBytes, kvBytes: kvBytes, freeBytes: freeBytes, fragBytes: fragBytes}
	return nil
}

// checkFreeLists is the free-list pass: each list holds tagged free
// blocks of its class that the heap pass met, each once, linked both ways,
// and its NonEmpty bit says whether it is empty; each lazy stack holds
// lazy blocks of its size. It marks each listed block seen.
func (s *Store) checkFreeLists(v *violations, t *tally) {
	top := t.top
	// Free lists: doubly linked, each block of its class, each class's bit
	// in NonEmpty set exactly when its list is not empty.
	for c := range layout.NumClasses {
		n := 0
		prev := uint64(0)
		head := s.hdr.FreeLists[c].Load()
		if bit := s.hdr.Alloc.NonEmpty[c/64].Load()&(1<<(c%64)) != 0; bit != (head != 0) {
			v.add("free list %d: NonEmpty bit %v, head %#x", c, bit, head)
		}
		for off := head; off != 0; n++ {
			if !t.listed(v, "free list", c, off, n) {
				break
			}
			b, err := s.blockAt(off, top)
			if err != nil { // it changed since the heap walk: never follow it
				v.add("free list %d: %v", c, err)
				break
			}
			if layout.ClassOf(b.size) != c {
				v.add("free list %d holds block %#x of size %d (class %d)", c, off, b.size, layout.ClassOf(b.size))
			}
			if p := s.word(off + 16).Load(); p != prev {
				v.add("free list %d: block %#x links back to %#x, want %#x", c, off, p, prev)
			}
			if b.flags&layout.SizeLazy != 0 {
				v.add("free list %d holds lazy block %#x", c, off)
			}
			t.freeBytes += b.size
			prev, off = off, s.word(off+8).Load()
		}
	}
	// Lazy stacks: singly linked, each block lazy and of its class's size.
	for c := range layout.NumExact {
		for off, n := s.hdr.LazyHeads[c].Load(), 0; off != 0; n++ {
			if !t.listed(v, "lazy stack", c, off, n) {
				break
			}
			b, err := s.lazyBlockAt(off, layout.ClassMin(c), c)
			if err != nil {
				v.add("%v", err)
				break
			}
			t.freeBytes += b.size
			off = s.word(off + 8).Load()
		}
	}
}

// checkIndex is the index pass: each slot names a live entry the heap
// pass met, no entry is named twice, each slot's tag and distance from
// home fit its key's hash, and each bucket's Overflow counts the keys
// that probe past it. It marks each named entry seen and counts them.
// While a migration runs it checks both tables; the old one's buckets
// below the cursor are empty, and its Overflow counts may be higher than
// needed (moves leave them, which only lengthens lookups).
func (s *Store) checkIndex(v *violations, t *tally) {
	// The descriptor as the region holds it now, not this process's view
	// of it: a scribble that left IndexGen alone is found too.
	iv, err := s.loadView(s.hdr.Grow.IndexGen.Load())
	if err != nil {
		v.add("index: %v", err)
		return
	}
	for _, tb := range []*itable{&iv.cur, &iv.old} {
		if tb.n == 0 {
			continue
		}
		if tb.blk != 0 {
			// A table in the heap: its block is reached from here.
			if r := t.reach(tb.blk, live); r != reachOK {
				v.add("index table %#x is not a block of its own", tb.blk)
			}
		}
		old := tb == &iv.old
		cursor := uint64(0)
		if old {
			cursor = s.hdr.Alloc.IndexCursor.Load()
		}
		s.checkTable(v, t, tb, old, cursor)
	}
}

func (s *Store) checkTable(v *violations, t *tally, tb *itable, old bool, cursor uint64) {
	overflow := make([]uint32, tb.n)
	for bi := uint64(0); bi < tb.n; bi++ {
		if next := s.skipHole(tb, bi); next != bi {
			bi = next - 1
			continue
		}
		b := tb.bucket(bi)
		for i := range b.Slots {
			w := b.Slots[i].Load()
			if w == 0 {
				continue
			}
			off := layout.SlotOffset(w)
			at := slotOff(tb.bucketOff(bi), i)
			if old && bi < cursor {
				v.add("index slot %#x of the old table, below the migration's cursor %d, is not empty", at, cursor)
			}
			switch t.reach(off, live) {
			case reachWrongKind:
				v.add("index slot %#x names %#x, which is not a live entry", at, off)
				continue
			case reachTwice:
				v.add("entry %#x is named by two index slots (second: %#x)", off, at)
				continue
			}
			t.count++
			e, err := s.liveBlock(off)
			if err != nil { // it changed since the heap walk: never follow it
				v.add("index slot %#x: %v", at, err)
				continue
			}
			if e.e.Flags&layout.EntryIndex != 0 {
				v.add("index slot %#x names an index table's block %#x", at, off)
				continue
			}
			t.liveBytes += e.size
			t.kvBytes += e.kl + e.vl
			h := hashKey(s.key(e))
			if layout.Tag(h) != layout.SlotTag(w) {
				v.add("index slot %#x: tag %#x, key hashes to tag %#x", at, layout.SlotTag(w), layout.Tag(h))
			}
			home := tb.home(h)
			d := tb.distance(home, bi)
			if d >= layout.MaxProbe {
				v.add("index slot %#x: key is %d buckets from home, at most %d allowed", at, d, layout.MaxProbe-1)
				continue
			}
			for j := range d {
				overflow[tb.wrap(home+j)]++
			}
		}
	}
	for bi := uint64(0); bi < tb.n; bi++ {
		if next := s.skipHole(tb, bi); next != bi {
			bi = next - 1 // a hole: zero Overflow throughout
			for j := bi + 1; j < next; j++ {
				if overflow[j] != 0 {
					v.add("bucket %d: overflow 0 (never written), %d keys probe past it", j, overflow[j])
				}
			}
			continue
		}
		if got := tb.bucket(bi).Overflow.Load(); got != overflow[bi] && (!old || got < overflow[bi]) {
			v.add("bucket %d of the table at %#x: overflow %d, %d keys probe past it", bi, tb.off, got, overflow[bi])
		}
	}
}

// checkCounts is the last pass: every block the heap pass met was reached
// once, a free one from a list and a live one from a slot (else it leaked),
// and the counts in Meta match what the passes found.
func (s *Store) checkCounts(v *violations, t *tally) {
	g := &s.geo
	for off, st := range t.blocks {
		switch {
		case st == live:
			v.add("live entry %#x is named by no index slot (leaked)", off)
		case st == free:
			v.add("free block %#x is on no free list (leaked)", off)
		}
	}
	m := &s.hdr.Meta
	if c := m.Count.Load(); c != t.count {
		v.add("count %d, index holds %d", c, t.count)
	}
	if g.MaxEntries != 0 && t.count > g.MaxEntries {
		v.add("%d entries, more than the %d allowed", t.count, g.MaxEntries)
	}
	if b := m.BlockUsed.Load(); b != t.liveBytes {
		v.add("live block bytes %d, entries hold %d", b, t.liveBytes)
	}
	if b := m.KVBytes.Load(); b != t.kvBytes {
		v.add("key and value bytes %d, entries hold %d", b, t.kvBytes)
	}
	if b := m.FreeBytes.Load(); b != t.freeBytes+t.fragBytes {
		v.add("free bytes %d, free lists hold %d and fragments %d", b, t.freeBytes, t.fragBytes)
	}
}
