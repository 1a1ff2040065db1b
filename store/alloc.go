package store

// The heap allocator: segregated free lists by size class, doubly linked,
// lazy stacks for the exact classes, singly linked, and a bump pointer
// (Meta.Top) into the never-used space above the last block (the
// wilderness). Blocks are multiples of 8 bytes and tile [HeapOff, Top)
// with no gaps, so Check and compaction can walk them.
//
// Allocation takes, in order: for a request of an exact class (under
// ExactClassLimit), the head of its lazy stack; a block of the request's
// own class that holds it (the first few of the list are looked at); the
// head of the first non-empty larger class (found through Alloc.NonEmpty;
// any block there holds the request); or the wilderness as long as
// Reserve bytes stay free above Top. The rest of a larger block is split
// off as a free block of its own. When none of these has room, the caller
// compacts (compact.go) and tries again.
//
// Freeing merges: a freed block absorbs a tagged free neighbour on either
// side (boundary tags: a tagged free block repeats its size in its last 8
// bytes, and the block after it carries SizePrevFree), and a block that
// ends at Top goes back to the wilderness. INVARIANT: no two tagged free
// blocks touch, and the block just below Top is never tagged free. So any
// free space that could hold a request sits in one block, unless live or
// lazy blocks lie between, which only compaction moves or merges. A free
// block may pass the 4 GiB that Entry.Size holds: it is then big
// (layout.BigFree), its size in the word at 24 and its footer marked.
//
// Lazy blocks are the one exception, and the common case of churn: a
// block freed by an overwrite whose new block has its size (and is of an
// exact class) goes, as it is, on top of its class's lazy stack: no
// footer, no neighbour looked at, one link. The next request of that size
// pops it whole. A lazy block counts as live to its neighbours (it never
// merges, nor sets SizePrevFree), and the lazy bytes stay under
// HeapSize/32; compaction first drains the stacks, merging every lazy
// block (drainLazy). So a same-size overwrite writes four words of the
// allocator's, as the stack allocator of version 4 did, instead of a
// doubly linked list's unlink and push.
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
	if sz == 0 && raw&(layout.SizeFree|layout.SizeLazy) == layout.SizeFree && end-off >= layout.EntrySize {
		// A big free block: its size is at BigSizeOff.
		sz = s.word(off + layout.BigSizeOff).Load()
		if sz < layout.EntrySize || sz%layout.EntryAlign != 0 {
			sz = 0
		}
	}
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
		if raw&(layout.SizeFree|layout.SizeLazy) == layout.SizeFree && sz >= layout.EntrySize && sz <= g.Size-off {
			return block{off: off, e: e, size: sz, flags: raw & layout.SizeFlags}, nil
		}
	}
	return s.listedBlockError(off)
}

// listedBlockError says why listedBlockAt refused the block at off, or
// returns it if it is a big free block, which listedBlockAt leaves to it.
func (s *Store) listedBlockError(off uint64) (block, error) {
	b, err := s.freeBlockAt(off)
	switch {
	case err != nil:
	case b.flags&layout.SizeLazy == 0 && uint64(b.e.Size&^layout.SizeFlags) == 0:
		return b, nil // big
	case b.flags&layout.SizeLazy != 0:
		err = fmt.Errorf("%w: a free list names lazy block %#x", ErrCorrupt, off)
	default:
		err = fmt.Errorf("%w: a free list names fragment %#x of %d bytes", ErrCorrupt, off, b.size)
	}
	return block{}, err
}

// lazyBlockAt reads the header of the block at off, named by the lazy
// stack of class c, whose blocks are of size bytes: it must be a lazy
// block of that size.
func (s *Store) lazyBlockAt(off, size uint64, c int) (block, error) {
	if e, flags, ok := s.lazyHeader(off, size); ok {
		return block{off: off, e: e, size: size, flags: flags}, nil
	}
	return block{}, s.lazyBlockError(off, c)
}

// lazyHeader is lazyBlockAt's check, without the error or the block, for
// popLazy (every same-size overwrite): the block at off is lazy, of size
// bytes, below Top, with an odd Seq. It returns the block's header and
// flags.
func (s *Store) lazyHeader(off, size uint64) (*layout.Entry, uint32, bool) {
	g := &s.geo
	top := s.hdr.Meta.Top.Load()
	if off < g.HeapOff || off%layout.EntryAlign != 0 || off >= top || top > g.Size || top-off < size {
		return nil, 0, false
	}
	e := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(off))
	raw := e.Size
	if raw&^layout.SizePrevFree != uint32(size)|layout.SizeFree|layout.SizeLazy || e.Seq.Load()&1 == 0 {
		return nil, 0, false
	}
	return e, raw & layout.SizeFlags, true
}

// lazyHead is the head of the lazy stack that serves a request of size
// bytes in class c, or 0: only exact classes have one.
func (s *Store) lazyHead(size uint64, c int) uint64 {
	if size >= layout.ExactClassLimit {
		return 0
	}
	return s.hdr.LazyHeads[c].Load()
}

// lazyBlockError says why lazyBlockAt refused the block at off.
func (s *Store) lazyBlockError(off uint64, c int) error {
	b, err := s.freeBlockAt(off)
	switch {
	case err != nil:
		return fmt.Errorf("lazy stack %d: %w", c, err)
	case off+b.size > s.hdr.Meta.Top.Load():
		return fmt.Errorf("%w: lazy stack %d names block %#x, past the heap top", ErrCorrupt, c, off)
	case b.e.Seq.Load()&1 == 0:
		return fmt.Errorf("%w: lazy stack %d names block %#x, whose Seq is even", ErrCorrupt, c, off)
	}
	return fmt.Errorf("%w: lazy stack %d (blocks of %d bytes) names block %#x of %d bytes, flags %#x", ErrCorrupt, c, layout.ClassMin(c), off, b.size, b.flags)
}

// big reports whether a tagged free block of size bytes is big: its size
// in the word at BigSizeOff, Entry.Size holding its flags only, its footer
// marked FooterBig (layout.BigFree; lower in the crash tests: bigFree).
func (s *Store) big(size uint64) bool { return size >= s.bigFree }

// sizeField is the size bits of Entry.Size for a tagged free block of size
// bytes: 0 for a big one.
func (s *Store) sizeField(size uint64) uint32 {
	if s.big(size) {
		return 0
	}
	return uint32(size)
}

// footerWord is the footer of a tagged free block of size bytes.
func (s *Store) footerWord(size uint64) uint64 {
	if s.big(size) {
		return size | layout.FooterBig
	}
	return size
}

// footerSize decodes the word just before a block whose predecessor is
// free: that predecessor's footer, its size (marked FooterBig for a big
// block); or, for a fragment of 8 bytes, which has no room for a footer,
// its header (Seq, then Size and flags), whose high half is never 0 while
// an unmarked footer's always is, and whose top bit never is set.
func footerSize(w uint64) uint64 {
	if w&layout.FooterBig != 0 {
		return w &^ layout.FooterBig // a big block's
	}
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
	if s.lazyHead(size, c) != 0 {
		return t.popLazy(c, size)
	}
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
	// No flags: the block below Top is never tagged free.
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

// take allocates size bytes at the start of tagged free block b: it
// comes off its list, and the rest, if it can be a block, goes back as a
// free block.
func (t *txn) take(b block, size uint64) (uint64, error) {
	s := t.s
	if err := t.unlink(b); err != nil {
		return 0, err
	}
	// The new block has no flags: SizePrevFree is clear on a tagged free
	// block (no tagged free block touches it, and a lazy one does not set
	// it).
	//
	// The caller overwrites the block's header, links and, unless it
	// splits, its footer: log them so a rollback puts the block back whole;
	// and a big block's size.
	t.log(b.off, layout.UndoSeq)
	t.log(b.off+8, layout.UndoPlain)
	t.log(b.off+16, layout.UndoPlain)
	if s.big(b.size) {
		t.log(b.off+layout.BigSizeOff, layout.UndoPlain)
	}
	if rest := b.size - size; rest >= layout.EntrySize {
		// b's Seq is odd already.
		b.e.Size = uint32(size)
		r := b.off + size
		re := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(r))
		// The remainder's header, links and big size lie inside b: no log
		// (see top).
		storeHalf(&re.Seq, s.nextSeq(true))
		re.Size = s.sizeField(rest) | layout.SizeFree
		if s.big(rest) {
			storeWord(s.word(r+layout.BigSizeOff), rest)
		}
		if err := t.push(r, rest, true); err != nil {
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
		b.e.Size = uint32(size)
		r := b.off + size
		if rest == layout.EntryAlign {
			t.log(r, layout.UndoPlain) // b's footer: now the fragment's header
		}
		re := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(r))
		storeHalf(&re.Seq, s.nextSeq(true))
		re.Size = uint32(rest) | layout.SizeFree
		if rest > layout.EntryAlign {
			t.set(r+rest-8, rest) // b's footer position: logged
		}
		// unlink took all of b off; rest is still free
		t.freeDelta += int64(rest)
		faultPoint("fragment")
		return b.off, nil
	}
	b.e.Size = uint32(b.size)
	t.log(b.off+b.size-8, layout.UndoPlain) // the footer: value bytes from now on
	if err := t.setPrevFree(b.off+b.size, false); err != nil {
		return 0, err
	}
	faultPoint("take")
	return b.off, nil
}

// popLazy allocates the head of the lazy stack of exact class c, whose
// blocks are of size bytes, whole.
func (t *txn) popLazy(c int, size uint64) (uint64, error) {
	s := t.s
	off := s.hdr.LazyHeads[c].Load()
	e, flags, ok := s.lazyHeader(off, size)
	if !ok {
		return 0, s.lazyBlockError(off, c)
	}
	// Its header and link become the entry's: log them, so a rollback
	// puts it back on the stack whole. The link is checked when it is
	// popped in turn.
	t.setHeader(&s.hdr.LazyHeads[c], layout.LazyHeadOff(c), s.word(off+8).Load())
	t.log(off, layout.UndoSeq)
	t.log(off+8, layout.UndoPlain)
	// Its Seq is odd already; it keeps SizePrevFree (it may follow a
	// tagged free block, which stays free).
	e.Size = uint32(size) | flags&layout.SizePrevFree
	t.freeDelta -= int64(size)
	t.lazyDelta -= int64(size)
	faultPoint("take-lazy")
	return off, nil
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
		sz := uint32(n.size)
		if n.flags&(layout.SizeFree|layout.SizeLazy) == layout.SizeFree {
			sz = s.sizeField(n.size)
		}
		n.e.Size = sz | f
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
	faultPoint("unlink")
	return nil
}

// unlinkAny is unlink for a tagged free block that may be a fragment,
// which is on no list: it only stops counting as free.
func (t *txn) unlinkAny(b block) error {
	if b.size < layout.EntrySize {
		t.freeDelta -= int64(b.size)
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

// push puts the tagged free block at off (header already written,
// SizeFree set) at the head of its class's list and writes its footer.
// inside says the block's link words lie inside a block this transaction
// split, which need no log.
func (t *txn) push(off, size uint64, inside bool) error {
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
	t.set(off+size-8, s.footerWord(size))
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
// with a block of its own size (same, true) goes on its lazy stack if
// lazyOK; any other merges with its tagged free neighbours (coalesce).
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
		// Lazy: nothing beyond its header and link is read or written.
		c := layout.ClassOf(b.size)
		b.e.Size = uint32(b.size) | b.flags&layout.SizePrevFree | layout.SizeFree | layout.SizeLazy
		t.set(b.off+8, s.hdr.LazyHeads[c].Load())
		t.setHeader(&s.hdr.LazyHeads[c], layout.LazyHeadOff(c), b.off)
		t.freeDelta += int64(b.size)
		t.lazyDelta += int64(b.size)
		faultPoint("free-lazy")
		return nil
	}
	_, err = t.coalesce(b.off, b.size, b.flags, top)
	return err
}

// lazyOK reports whether a freed block of size bytes may be lazy. Only a
// block that an overwrite replaced by one of the same size is offered: the
// next overwrite of that size is likely to take it back whole, which is
// the churn laziness is for; space freed by deletes and by values that
// change size merges at once. It must also be of an exact class (a
// request of its size pops it whole), and the lazy bytes stay under
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
// has them (its Seq odd, on no list or stack), one tagged free block with
// its tagged free neighbours: the one before it, if SizePrevFree says so,
// and the one after it; or gives it back to the wilderness when it reaches
// Top. It returns where the merged block starts (the new Top, in the
// second case).
func (t *txn) coalesce(off, size uint64, flags uint32, top uint64) (uint64, error) {
	s := t.s
	start, end := off, off+size
	if flags&layout.SizePrevFree != 0 {
		fs := footerSize(s.word(off - 8).Load()) // the block before: its size
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
		if n.flags&(layout.SizeFree|layout.SizeLazy) == layout.SizeFree {
			// n's header, links and big size become bytes inside the
			// merged block, which later allocations write unlogged: a
			// snapshot in progress needs them as they were (snapshot.go).
			s.cow(n.off, layout.BigSizeOff+8)
			if err := t.unlinkAny(n); err != nil {
				return 0, err
			}
			end += n.size
			faultPoint("merge-next")
		} else if err := t.setPrevFree(end, true); err != nil {
			// (a live block, or a lazy one, which merges only when
			// compaction drains it)
			return 0, err
		}
	}
	if end == top {
		t.set(layout.TopOff, start)
		t.fixCursor(start, s.geo.Size)
		faultPoint("merge-top")
		return start, nil
	}
	// start's predecessor is not tagged free: it would have merged.
	n := end - start
	offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(start)).Size = s.sizeField(n) | layout.SizeFree
	if s.big(n) {
		t.set(start+layout.BigSizeOff, n)
	}
	if n < layout.EntrySize {
		// A fragment with no tagged free neighbour: on no list.
		if n > layout.EntryAlign {
			t.set(end-8, n)
		}
		t.freeDelta += int64(n)
	} else if err := t.push(start, n, false); err != nil {
		return 0, err
	}
	t.fixCursor(start, end)
	faultPoint("freed")
	return start, nil
}

// drainLazy merges lazy blocks with their tagged free neighbours, popping
// each off its stack, as one transaction of at most walkLimit blocks
// (fewer if the journal fills). Compaction runs it first: what it walks
// and moves must be tagged free space. It reports whether lazy blocks
// remain. REQUIRES: the writer lock, the journal idle.
func (s *Store) drainLazy() (more bool, err error) {
	t := s.begin()
	t.mergeAll()
	n := 0
	for c := 0; c < layout.NumExact; c++ {
		for s.hdr.LazyHeads[c].Load() != 0 {
			if n == walkLimit || t.budget(mutDrain, 0) != nil {
				return true, t.commit()
			}
			off, err := t.popLazy(c, layout.ClassMin(c))
			if err != nil {
				t.rollback()
				return false, err
			}
			top, err := s.top()
			if err == nil {
				// (popLazy took it off the free bytes, as a free does
				// for a live block: coalesce counts what stays free.)
				e := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(off))
				_, err = t.coalesce(off, layout.ClassMin(c), e.Size&layout.SizeFlags, top)
			}
			if err != nil {
				t.rollback()
				return false, err
			}
			t.settled = true
			t.checkBudget()
			n++
			faultPoint("drain")
		}
	}
	return false, t.commit()
}

// fixCursor moves compaction's cursor to start if it lies inside
// (start, end), a block boundary that a merge just removed.
func (t *txn) fixCursor(start, end uint64) {
	if c := t.s.hdr.Alloc.Cursor.Load(); c > start && c < end {
		t.set(layout.CursorOff, start)
	}
}
