package store

// The heap allocator: segregated free lists by size class, plus a bump
// pointer (Meta.Top) into never-used space. Blocks are multiples of 8
// bytes and tile [HeapOff, Top) with no gaps, so Check can walk them.
//
// Allocation takes the first block of the smallest class whose blocks all
// fit, else bump-allocates, else splits a block of a larger class. Blocks
// are never merged: a block boundary, once made, stays, so a slow reader
// holding an old entry offset always finds a block header there whose Seq
// tells it the entry is gone. Freed space is reused by requests of its
// class or smaller; the cost is fragmentation when sizes shift, which
// Stats reports.
//
// Every change to a word that existed before the transaction is logged
// (see journal.go); a fresh block above Top needs no log, since rolling Top
// back makes it unused again.

import (
	"fmt"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
)

// entryAt returns the block header at off after checking that the whole
// block lies inside the heap. It does not check Seq.
func (s *Store) entryAt(off uint64) (*layout.Entry, error) {
	g := &s.geo
	if off < g.HeapOff || off%layout.EntryAlign != 0 || off > g.Size-layout.EntrySize {
		return nil, fmt.Errorf("%w: entry offset %#x outside the heap [%#x, %#x)", ErrCorrupt, off, g.HeapOff, g.Size)
	}
	e := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(off))
	if sz := uint64(e.Size); sz < layout.EntrySize || sz%layout.EntryAlign != 0 || sz > g.Size-off {
		return nil, fmt.Errorf("%w: block at %#x has size %d", ErrCorrupt, off, sz)
	}
	return e, nil
}

// nextFree reads the link of the free block at off: the 8 bytes at off+8.
func (s *Store) nextFree(off uint64) uint64 { return s.word(off + 8).Load() }

// alloc returns a block of at least size bytes (a multiple of 8), with
// Seq odd and Size set, or ErrFull. Everything it changes is logged.
func (t *txn) alloc(size uint64) (uint64, error) {
	s := t.s
	c := layout.ClassFor(size)
	if c < layout.NumClasses {
		if off, err := t.popFree(c, size); off != 0 || err != nil {
			return off, err
		}
	}
	top := s.hdr.Meta.Top.Load()
	if top < s.geo.HeapOff || top > s.geo.Size || top%layout.EntryAlign != 0 {
		return 0, fmt.Errorf("%w: heap top %#x outside the heap [%#x, %#x]", ErrCorrupt, top, s.geo.HeapOff, s.geo.Size)
	}
	if size <= s.geo.Size-top {
		t.set(layout.TopOff, top+size)
		faultPoint("bump")
		e := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(top))
		// Space above Top was never published (or only by a transaction that
		// was rolled back), so no reader holds its offset: any odd Seq will do.
		e.Seq.Store(1)
		e.Size = uint32(size)
		return top, nil
	}
	for c2 := c + 1; c2 < layout.NumClasses; c2++ {
		if off, err := t.popFree(c2, size); off != 0 || err != nil {
			return off, err
		}
	}
	return 0, ErrFull
}

// popFree takes the first block of class c if it holds size bytes,
// splitting off the rest when that is a block of its own.
func (t *txn) popFree(c int, size uint64) (uint64, error) {
	s := t.s
	head := s.hdr.FreeLists[c].Load()
	if head == 0 {
		return 0, nil
	}
	e, err := s.entryAt(head)
	if err != nil {
		return 0, err
	}
	if e.Seq.Load()&1 == 0 || layout.ClassOf(uint64(e.Size)) != c {
		return 0, fmt.Errorf("%w: free list %d holds block %#x (seq %d, size %d)", ErrCorrupt, c, head, e.Seq.Load(), e.Size)
	}
	bsize := uint64(e.Size)
	if bsize < size {
		return 0, nil // a larger class may still have one
	}
	t.set(layout.FreeListOff(c), s.nextFree(head))
	faultPoint("pop")
	t.freeDelta -= int64(bsize)
	// The block's two header words change below and by the caller; log them
	// so a rollback puts the block back on its list intact.
	t.log(head, layout.UndoSeq)
	t.log(head+8, layout.UndoPlain)
	if rest := bsize - size; rest >= layout.EntrySize {
		e.Size = uint32(size)
		// The remainder's header lies inside the old block's free bytes,
		// which nothing references; only the list head needs a log.
		r := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(head+size))
		r.Seq.Store(1)
		r.Size = uint32(rest)
		t.pushFree(head+size, r)
		faultPoint("split")
	}
	return head, nil
}

// pushFree puts the block at off on its class's list. REQUIRES: e.Seq odd,
// and the block's header words logged if they existed before.
func (t *txn) pushFree(off uint64, e *layout.Entry) {
	c := layout.ClassOf(uint64(e.Size))
	next := t.s.hdr.FreeLists[c].Load()
	storeWord(t.s.word(off+8), next)
	t.set(layout.FreeListOff(c), off)
	t.freeDelta += int64(e.Size)
}

// free returns a published block that the index no longer links. Its Seq
// turns odd first, so a reader still copying it sees the change and retries.
func (t *txn) free(off uint64, e *layout.Entry) {
	t.log(off, layout.UndoSeq)
	t.log(off+8, layout.UndoPlain)
	storeHalf(&e.Seq, e.Seq.Load()+1)
	faultPoint("free-seq")
	t.pushFree(off, e)
	faultPoint("freed")
}
