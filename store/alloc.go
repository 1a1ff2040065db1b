package store

// The heap allocator: segregated free lists by size class, doubly linked,
// plus a bump pointer (Meta.Top) into the never-used space above the last
// block (the wilderness). Blocks are multiples of 8 bytes and tile
// [HeapOff, Top) with no gaps, so Check and compaction can walk them.
//
// Allocation takes, in order: a block of the request's own class that
// holds it (the first few of the list are looked at), the head of the
// first non-empty larger class (found through Alloc.NonEmpty; any block
// there holds the request), or the wilderness as long as Reserve bytes stay
// free above Top. The rest of a larger block is split off as a free block
// of its own. When none of these has room, the caller compacts
// (compact.go) and tries again.
//
// Freeing merges: a freed block absorbs a free neighbour on either side
// (boundary tags: a free block repeats its size in its last 8 bytes, and
// the block after it carries SizePrevFree), and a block that ends at Top
// goes back to the wilderness. INVARIANT: no two free blocks touch, and the
// block just below Top is never free. So any free space that could hold a
// request sits in one block, unless live blocks lie between, which only
// compaction can move.
//
// Merging destroys block headers that a slow reader may still hold the
// offset of. What the reader finds there afterwards is the argument of
// index.go's readEntry; the allocator's part is that every Seq it stores
// is a fresh number from Alloc.SeqNext (nextSeq), so an old offset never
// shows the old Seq again from the allocator's hand.
//
// Every change to a word that existed before the transaction is logged
// (see journal.go), except the words inside a free block that the
// transaction split (the remainder's header and links), which a rollback
// makes interior bytes of the restored block again; a fresh block above
// Top needs no log either, since rolling Top back makes it unused again.

import (
	"fmt"
	"math/bits"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
)

// errNoRoom is alloc's answer when no free block and no room above Top
// holds a request: the caller may compact, or report ErrFull.
var errNoRoom = fmt.Errorf("%w: no room", ErrFull)

// scanLimit is how many blocks of the request's own class alloc looks at
// before it takes a larger class: a class spans sizes, so its head may be
// too small while a later block fits.
const scanLimit = 8

// block is a heap block's header, read once and checked: every length
// the writer uses comes from here, never again from the region, where
// another process may change it between the check and the use.
type block struct {
	off    uint64
	e      *layout.Entry
	size   uint64 // bytes, flags masked off
	flags  uint32 // layout.SizeFree, layout.SizePrevFree
	kl, vl uint64 // key and value lengths, for a live block (liveBlock)
	sum    uint32 // and its Entry.Sum
}

// blockAt reads the header of the block at off, checking that the block
// lies inside [HeapOff, end). Size is read once: the checks hold for the
// value returned.
func (s *Store) blockAt(off, end uint64) (block, error) {
	g := &s.geo
	if off < g.HeapOff || off%layout.EntryAlign != 0 || off > end || end-off < layout.EntryAlign {
		return block{}, fmt.Errorf("%w: block offset %#x outside the heap [%#x, %#x)", ErrCorrupt, off, g.HeapOff, end)
	}
	e := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(off))
	raw := e.Size
	sz := uint64(raw &^ layout.SizeFlags)
	if sz < layout.EntryAlign || sz > end-off || (sz < layout.EntrySize && raw&layout.SizeFree == 0) {
		return block{}, fmt.Errorf("%w: block at %#x has size %d", ErrCorrupt, off, sz)
	}
	return block{off: off, e: e, size: sz, flags: raw & layout.SizeFlags}, nil
}

// freeBlockAt is blockAt for a block that must be free.
func (s *Store) freeBlockAt(off uint64) (block, error) {
	b, err := s.blockAt(off, s.geo.Size)
	if err == nil && b.flags&layout.SizeFree == 0 {
		err = fmt.Errorf("%w: block %#x is linked as free but is not", ErrCorrupt, off)
	}
	return b, err
}

// listedBlockAt is freeBlockAt for a block named by a free list, which is
// never a fragment. Every allocation reads one: its checks are written out,
// with one call on the error path only.
func (s *Store) listedBlockAt(off uint64) (block, error) {
	g := &s.geo
	if off >= g.HeapOff && off%layout.EntryAlign == 0 && off < g.Size && g.Size-off >= layout.EntrySize {
		e := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(off))
		raw := e.Size
		sz := uint64(raw &^ layout.SizeFlags)
		if raw&layout.SizeFree != 0 && sz >= layout.EntrySize && sz <= g.Size-off {
			return block{off: off, e: e, size: sz, flags: raw & layout.SizeFlags}, nil
		}
	}
	return block{}, s.listedBlockError(off)
}

// listedBlockError says why listedBlockAt refused the block at off.
func (s *Store) listedBlockError(off uint64) error {
	b, err := s.freeBlockAt(off)
	if err == nil {
		err = fmt.Errorf("%w: a free list names fragment %#x of %d bytes", ErrCorrupt, off, b.size)
	}
	return err
}

// prevSize decodes the word just before a block whose predecessor is
// free: that predecessor's footer, its size; or, for a fragment of 8 bytes,
// which has no room for a footer, its header (Seq, then Size and flags),
// whose high half is never 0 while a footer's always is.
func prevSize(w uint64) uint64 {
	if hi := w >> 32; hi != 0 {
		return hi &^ uint64(layout.SizeFlags)
	}
	return w
}

// top returns Meta.Top after checking it.
func (s *Store) top() (uint64, error) {
	top := s.hdr.Meta.Top.Load()
	if top < s.geo.HeapOff || top > s.geo.Size || top%layout.EntryAlign != 0 {
		return 0, fmt.Errorf("%w: heap top %#x outside the heap [%#x, %#x]", ErrCorrupt, top, s.geo.HeapOff, s.geo.Size)
	}
	return top, nil
}

// nextSeq hands out the next sequence number of the given parity (odd:
// free or being filled; even: published). It stores the counter before
// the caller stores the Seq, so a writer that dies never leaves a Seq
// above the counter. Writer only.
func (s *Store) nextSeq(odd bool) uint32 {
	a := &s.hdr.Alloc
	g := a.SeqNext.Load() + 1
	if (g&1 == 1) != odd {
		g++
	}
	storeWord(&a.SeqNext, g)
	return uint32(g)
}

// Reserve is how much of the wilderness ordinary allocation leaves alone:
// twice the largest entry block committed so far (or the one being
// placed), at most a tenth of the heap. Compaction needs a
// place to move a block that does not fit the gap it is growing, and it
// never needs more than twice the largest block there (compact.go).
func (s *Store) reserve(size uint64) uint64 {
	mb := max(s.hdr.Alloc.MaxBlock.Load(), size)
	return min(2*mb, s.geo.HeapSize/10)
}

// alloc returns a block of at least size bytes (a multiple of 8), with Seq
// odd, Size set and no flags, or errNoRoom. Everything it changes is
// logged.
func (t *txn) alloc(size uint64) (uint64, error) { return t.allocWith(size, t.s.reserve(size)) }

// allocWith is alloc leaving reserve bytes of the wilderness alone.
func (t *txn) allocWith(size, reserve uint64) (uint64, error) {
	s := t.s
	c := layout.ClassOf(size)
	off := s.hdr.FreeLists[c].Load()
	for i := 0; off != 0 && i < scanLimit; i++ {
		b, err := s.listedBlockAt(off)
		if err != nil {
			return 0, err
		}
		if b.size >= size {
			return t.take(b, size)
		}
		off = s.word(off + 8).Load()
	}
	if c2 := s.firstClassAbove(c); c2 >= 0 {
		b, err := s.listedBlockAt(s.hdr.FreeLists[c2].Load())
		if err != nil {
			return 0, err
		}
		if b.size < size || layout.ClassOf(b.size) != c2 {
			return 0, fmt.Errorf("%w: free list %d holds block %#x of %d bytes", ErrCorrupt, c2, b.off, b.size)
		}
		return t.take(b, size)
	}
	return t.bump(size, reserve)
}

// bump allocates size bytes at Top if at least reserve bytes stay above.
func (t *txn) bump(size, reserve uint64) (uint64, error) {
	s := t.s
	top, err := s.top()
	if err != nil {
		return 0, err
	}
	if size > s.geo.Size-top || reserve > s.geo.Size-top-size {
		return 0, errNoRoom
	}
	if c := &s.hdr.Clean; top+size > c.Load() {
		storeWord(c, top+size) // before any byte below it is written
	}
	t.set(layout.TopOff, top+size)
	faultPoint("bump")
	e := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(top))
	// No flags: the block below Top is never free.
	storeHalf(&e.Seq, s.nextSeq(true))
	e.Size = uint32(size)
	return top, nil
}

// firstClassAbove is the first class above c whose list is not empty, or
// -1.
func (s *Store) firstClassAbove(c int) int {
	c++
	for w := c / 64; w < layout.ClassWords; w++ {
		bitsw := s.hdr.Alloc.NonEmpty[w].Load()
		if w == c/64 {
			bitsw &^= 1<<(c%64) - 1
		}
		if bitsw != 0 {
			if c2 := w*64 + bits.TrailingZeros64(bitsw); c2 < layout.NumClasses {
				return c2
			}
			return -1
		}
	}
	return -1
}

// take allocates size bytes at the start of free block b: it comes off
// its list, and the rest, if it can be a block, goes back as a free block.
func (t *txn) take(b block, size uint64) (uint64, error) {
	s := t.s
	if err := t.unlink(b); err != nil {
		return 0, err
	}
	// The new block keeps b's SizePrevFree: a lazy b may follow a tagged
	// free block, which stays free. A lazy b has no footer, and the block
	// after it no SizePrevFree: the rest of it stays lazy, and taking all
	// of it touches nothing beyond it.
	lazy := b.flags & layout.SizeLazy
	keep := b.flags & layout.SizePrevFree
	// The caller overwrites the block's header, links and, unless it
	// splits, its footer: log them so a rollback puts the block back whole.
	t.log(b.off, layout.UndoSeq)
	t.log(b.off+8, layout.UndoPlain)
	t.log(b.off+16, layout.UndoPlain)
	if rest := b.size - size; rest >= layout.EntrySize {
		// b's Seq is odd already.
		b.e.Size = uint32(size) | keep
		r := b.off + size
		re := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(r))
		// The remainder's header and links lie inside b: no log (see top).
		storeHalf(&re.Seq, s.nextSeq(true))
		re.Size = uint32(rest) | layout.SizeFree | lazy
		if err := t.push(r, rest, true, lazy != 0); err != nil {
			return 0, err
		}
		faultPoint("split")
		return b.off, nil
	}
	if rest := b.size - size; rest > 0 {
		// Too little is left for a block on a list. Giving it to the entry
		// as slack would lose it for as long as the entry lives; it stays
		// a free fragment instead, on no list, which merges with its
		// neighbours when they are freed, and which compaction absorbs.
		b.e.Size = uint32(size) | keep
		r := b.off + size
		if rest == layout.EntryAlign && lazy == 0 {
			t.log(r, layout.UndoPlain) // b's footer: now the fragment's header
		}
		re := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(r))
		storeHalf(&re.Seq, s.nextSeq(true))
		re.Size = uint32(rest) | layout.SizeFree | lazy
		if rest > layout.EntryAlign && lazy == 0 {
			t.set(r+rest-8, rest) // b's footer position: logged
		}
		// unlink took all of b off; rest is still free
		t.freeDelta += int64(rest)
		if lazy != 0 {
			t.lazyDelta += int64(rest)
		}
		faultPoint("fragment")
		return b.off, nil
	}
	b.e.Size = uint32(b.size) | keep
	if lazy != 0 {
		faultPoint("take-lazy")
		return b.off, nil
	}
	t.log(b.off+b.size-8, layout.UndoPlain) // the footer: value bytes from now on
	if err := t.setPrevFree(b.off+b.size, false); err != nil {
		return 0, err
	}
	faultPoint("take")
	return b.off, nil
}

// setPrevFree sets or clears SizePrevFree on the block at off, unless off
// is Top (the wilderness has no header).
func (t *txn) setPrevFree(off uint64, on bool) error {
	s := t.s
	top, err := s.top()
	if err != nil {
		return err
	}
	if off == top {
		return nil
	}
	n, err := s.blockAt(off, top)
	if err != nil {
		return err
	}
	f := n.flags &^ layout.SizePrevFree
	if on {
		f |= layout.SizePrevFree
	}
	if f != n.flags {
		t.log(off, layout.UndoSeq)
		n.e.Size = uint32(n.size) | f
	}
	return nil
}

// unlink takes free block b off its list. Its neighbours on the list must
// name it back: a link that does not is damage, not something to follow.
func (t *txn) unlink(b block) error {
	s := t.s
	c := layout.ClassOf(b.size)
	next, prev := s.word(b.off+8).Load(), s.word(b.off+16).Load()
	if prev == 0 {
		if s.hdr.FreeLists[c].Load() != b.off {
			return fmt.Errorf("%w: free block %#x has no predecessor but does not head list %d", ErrCorrupt, b.off, c)
		}
	} else if err := s.checkLink(prev, 8, b.off); err != nil {
		return err
	}
	if next != 0 {
		if err := s.checkLink(next, 16, b.off); err != nil {
			return err
		}
	}
	if prev == 0 {
		t.set(layout.FreeListOff(c), next)
		if next == 0 {
			t.setClass(c, false)
		}
	} else {
		t.set(prev+8, next)
	}
	if next != 0 {
		t.set(next+16, prev)
	}
	t.freeDelta -= int64(b.size)
	if b.flags&layout.SizeLazy != 0 {
		t.lazyDelta -= int64(b.size)
	}
	faultPoint("unlink")
	return nil
}

// unlinkAny is unlink for a free block that may be a fragment, which is on
// no list: it only stops counting as free.
func (t *txn) unlinkAny(b block) error {
	if b.size < layout.EntrySize {
		t.freeDelta -= int64(b.size)
		if b.flags&layout.SizeLazy != 0 {
			t.lazyDelta -= int64(b.size)
		}
		return nil
	}
	return t.unlink(b)
}

// checkLink verifies that off is a free block whose link at off+at is
// want.
func (s *Store) checkLink(off, at, want uint64) error {
	if _, err := s.listedBlockAt(off); err != nil {
		return err
	}
	if got := s.word(off + at).Load(); got != want {
		return fmt.Errorf("%w: free block %#x links to %#x, want %#x", ErrCorrupt, off, got, want)
	}
	return nil
}

// push puts the free block at off (header already written, SizeFree set)
// at the head of its class's list and writes its footer unless it is lazy.
// inside says the block's link words lie inside a block this transaction
// split, which need no log.
func (t *txn) push(off, size uint64, inside, lazy bool) error {
	s := t.s

	c := layout.ClassOf(size)
	head := s.hdr.FreeLists[c].Load()
	if head != 0 && !t.loggedLink(head+16) {
		// (A head whose prev link this phase logged is one this phase
		// pushed or checked already.)
		if err := s.checkLink(head, 16, 0); err != nil {
			return err
		}
	}
	if inside {
		storeWord(s.word(off+8), head)
		storeWord(s.word(off+16), 0)
	} else {
		t.set(off+8, head)
		t.set(off+16, 0)
	}
	if lazy {
		t.lazyDelta += int64(size)
	} else {
		t.set(off+size-8, size)
	}
	if head != 0 {
		t.set(head+16, off)
	} else {
		t.setClass(c, true)
	}
	t.set(layout.FreeListOff(c), off)
	t.freeDelta += int64(size)
	return nil
}

// setClass records whether class c's list is empty.
func (t *txn) setClass(c int, nonEmpty bool) {
	off := layout.NonEmptyOff + 8*uint64(c/64)
	w := t.s.word(off).Load()
	if nonEmpty {
		w |= 1 << (c % 64)
	} else {
		w &^= 1 << (c % 64)
	}
	t.set(off, w)
}

// free returns a block that the index no longer links (published, or
// filled by this transaction and superseded). Its Seq turns odd first, so
// a reader still copying it sees the change and retries. Then a block that
// ends at Top goes back to the wilderness; one that an overwrite replaced
// with a block of its own size (same, true) becomes lazy if lazyOK; any
// other merges with its free neighbours (coalesce).
func (t *txn) free(b block, same bool) error {
	s := t.s
	t.log(b.off, layout.UndoSeq)
	storeHalf(&b.e.Seq, s.nextSeq(true))
	faultPoint("free-seq")
	top, err := s.top()
	if err != nil {
		return err
	}
	if end := b.off + b.size; same && end != top && t.lazyOK(b.size) {
		// Lazy: the block goes on its list as it is. Nothing beyond its
		// header and links is read or written: an overwrite of a value of
		// the same size takes it back without touching its neighbours.
		b.e.Size = uint32(b.size) | b.flags&layout.SizePrevFree | layout.SizeFree | layout.SizeLazy
		if err := t.push(b.off, b.size, false, true); err != nil {
			return err
		}
		faultPoint("free-lazy")
		return nil
	}
	_, err = t.coalesce(b.off, b.size, b.flags, top)
	return err
}

// lazyOK reports whether a freed block of size bytes may stay lazy. Only a
// block that an overwrite replaced by one of the same size is offered: the
// next overwrite of that size is likely to take it back whole, which is
// the churn laziness is for; space freed by deletes and by values that
// change size merges at once. It must also be of an exact class (a
// request of its size takes it whole), and the lazy bytes stay under
// HeapSize/32, so the space kept apart from its neighbours is bounded;
// compaction merges all of it.
func (t *txn) lazyOK(size uint64) bool {
	if t.eager || size >= layout.ExactClassLimit {
		return false
	}
	lazy := int64(t.s.hdr.Alloc.LazyBytes.Load()) + t.lazyDelta
	return lazy+int64(size) <= int64(t.s.lazyLimit)
}

// coalesce makes the free block [off, off+size), with flags as its header
// has them (its Seq odd, already off any list), one tagged free block with
// its free neighbours: the tagged one before it, if SizePrevFree says so,
// and the one after it, tagged or lazy; or gives it back to the wilderness
// when it reaches Top. It returns where the merged block starts (the new
// Top, in the second case).
func (t *txn) coalesce(off, size uint64, flags uint32, top uint64) (uint64, error) {
	s := t.s
	start, end := off, off+size
	if flags&layout.SizePrevFree != 0 {
		fs := prevSize(s.word(off - 8).Load()) // the block before: its size
		if fs < layout.EntryAlign || fs%layout.EntryAlign != 0 || fs > off-s.geo.HeapOff {
			return 0, fmt.Errorf("%w: block %#x follows a free block whose footer says %d bytes", ErrCorrupt, off, fs)
		}
		p, err := s.freeBlockAt(off - fs)
		if err != nil {
			return 0, err
		}
		if p.size != fs || p.flags&layout.SizeLazy != 0 {
			return 0, fmt.Errorf("%w: free block %#x (size %d, flags %#x) is not the tagged block of %d bytes its footer says", ErrCorrupt, p.off, p.size, p.flags, fs)
		}
		if err := t.unlinkAny(p); err != nil {
			return 0, err
		}
		t.log(p.off, layout.UndoSeq)
		start = p.off
		faultPoint("merge-prev")
	}
	if end != top {
		n, err := s.blockAt(end, top)
		if err != nil {
			return 0, err
		}
		if n.flags&layout.SizeFree == 0 {
			if err := t.setPrevFree(end, true); err != nil {
				return 0, err
			}
		} else {
			// n's header and links become bytes inside the merged block,
			// which later allocations write unlogged: a snapshot in
			// progress needs them as they were (snapshot.go).
			s.cow(n.off, 24)
			if err := t.unlinkAny(n); err != nil {
				return 0, err
			}
			end += n.size
			faultPoint("merge-next")
			// After a tagged block, the next one has SizePrevFree already.
			// After a lazy one it has not, and it may be tagged free
			// itself: it merges too, or no tagged block could follow.
			if n.flags&layout.SizeLazy != 0 && end != top {
				m, err := s.blockAt(end, top)
				if err != nil {
					return 0, err
				}
				if m.flags&(layout.SizeFree|layout.SizeLazy) == layout.SizeFree {
					s.cow(m.off, 24) // as n's
					if err := t.unlinkAny(m); err != nil {
						return 0, err
					}
					end += m.size
					faultPoint("merge-after-lazy")
				} else if err := t.setPrevFree(end, true); err != nil {
					return 0, err
				}
			}
		}
	}
	if end == top {
		t.set(layout.TopOff, start)
		t.fixCursor(start, s.geo.Size)
		faultPoint("merge-top")
		return start, nil
	}
	// start's predecessor is not tagged free: it would have merged.
	offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(start)).Size = uint32(end-start) | layout.SizeFree
	if n := end - start; n < layout.EntrySize {
		// A lazy fragment that compaction settles with no free neighbour:
		// a tagged fragment now, on no list.
		if n > layout.EntryAlign {
			t.set(end-8, n)
		}
		t.freeDelta += int64(n)
	} else if err := t.push(start, n, false, false); err != nil {
		return 0, err
	}
	t.fixCursor(start, end)
	faultPoint("freed")
	return start, nil
}

// settle makes free block b, lazy or tagged, tagged and merged with the
// free blocks around it, for compaction, whose gaps must be whole. It
// returns where the merged block starts, or Top if it went back to the
// wilderness. Its budget is a free's.
func (t *txn) settle(b block) (uint64, error) {
	s := t.s
	top, err := s.top()
	if err != nil {
		return 0, err
	}
	if err := t.unlinkAny(b); err != nil {
		return 0, err
	}
	t.log(b.off, layout.UndoSeq)
	start, err := t.coalesce(b.off, b.size, b.flags, top)
	if err != nil {
		return 0, err
	}
	t.settled = true
	faultPoint("settle")
	return start, nil
}

// fixCursor moves compaction's cursor to start if it lies inside
// (start, end), a block boundary that a merge just removed.
func (t *txn) fixCursor(start, end uint64) {
	if c := t.s.hdr.Alloc.Cursor.Load(); c > start && c < end {
		t.set(layout.CursorOff, start)
	}
}
