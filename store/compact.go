package store

// Compaction: moving live entries so that free space scattered between
// them becomes one block.
//
// Merging (alloc.go) already makes every run of free space one block; what
// it cannot fix is free space that live blocks keep apart. Compaction
// slides live blocks down over the gaps, from a cursor (Alloc.Cursor) that
// walks the heap bottom to top and then starts again:
//
//   - find the first free block at or after the cursor: the gap;
//   - move the live blocks that follow it, one after another, into the
//     gap's start, as long as each fits what is left of the gap;
//   - commit. Apply publishes each entry at its new place and frees its old
//     block, which merges with what was left of the gap and with the next
//     old block: the gap is now above the moved entries and bigger by
//     every byte of slack they gave up and every free block it reached.
//
// A move never writes a byte of the block it moves: it fills a block that
// was free, publishes it with one store into the key's index slot (an
// IntentOverwrite, the same step as an overwrite with the same value), and
// frees the old block after. So a move is all-or-nothing under SIGKILL like
// any mutation, and a reader that copied the old block either validates
// its copy (the block was still published) or sees the slot or the Seq
// change and reads again. It also means a block can only move into a gap at
// least its own size. When the gap is smaller than the block after it, that
// block moves to any free block elsewhere, or to the wilderness, which
// allocation keeps Reserve bytes free for (alloc.go): the gap then grows by
// the block's size. The gap only grows along a pass, so it needs that only
// while it is smaller than the largest block, and the blocks moved so total
// less than twice the largest block: Reserve. When even that fails (the
// heap is too full), the block stays and the cursor passes it.
//
// A put that finds no room (alloc's errNoRoom) compacts until some block
// holds its entry, then plans itself again (txn.makeRoom). Each compaction
// step is its own transaction, committed under the lock the put holds; the
// put's own transaction, and a batch's mutations planned so far, are rolled
// back first and planned again after: compaction changes no value, and the
// lock is held throughout, so they have the same outcome.

import (
	"context"
	"fmt"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
)

// compactSlice bounds the bytes one compaction transaction moves, and
// walkLimit the blocks it passes looking for a gap, so one step holds the
// lock for a bounded time.
const (
	compactSlice = 1 << 20
	walkLimit    = 1 << 16
)

// stepResult is what one compaction step did.
type stepResult struct {
	moved   uint64 // bytes of the entries moved
	entries int    // entries moved
	cursor  uint64 // where the next step starts
	scan    uint64 // how far up the heap this pass has looked
	wrapped bool   // the step found the cursor at the end of the heap and started over
}

// CompactProgress reports a compaction's progress: how far its pass over
// the heap has come and what it moved.
type CompactProgress struct {
	Done    int64 // heap bytes passed
	Total   int64 // heap bytes in use when the pass started
	Moved   int64 // bytes of entries moved
	Entries int64 // entries moved
}

// Compact makes the store's free space contiguous: it finishes an index
// migration in progress (migrate.go), then makes one pass over the heap
// that slides every entry down over the free blocks below it, as a series
// of transactions of at most 1 MiB of moves each. It holds the writer lock
// for one transaction at a time, so other writers go on between them, and
// readers never wait. It stops early, with ctx's error, when ctx is done;
// what it moved stays moved.
//
// Puts compact by themselves when they find no room, so Compact is only
// needed to do that work ahead of time, when the store is idle.
func (s *Store) Compact(ctx context.Context) (CompactProgress, error) {
	return s.CompactWithProgress(ctx, nil)
}

// CompactWithProgress is Compact, calling fn (if not nil) after each
// transaction.
func (s *Store) CompactWithProgress(ctx context.Context, fn func(CompactProgress)) (CompactProgress, error) {
	p, err := s.compact(ctx, fn)
	return p, s.fail("compact", err)
}

func (s *Store) compact(ctx context.Context, fn func(CompactProgress)) (CompactProgress, error) {
	var p CompactProgress
	// An index migration in progress is finished first, 256 buckets per
	// hold of the lock, so that lookups look in one table again.
	for migrating := true; migrating; {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		err := s.withLock(ctx, func(*txn) error {
			v, err := s.view()
			if err != nil || v.old.n == 0 {
				migrating = false
				return err
			}
			return s.migrateStep(v, 256)
		}, false)
		if err != nil {
			return p, err
		}
	}
	err := s.withLock(ctx, func(*txn) error {
		top, err := s.top()
		if err != nil {
			return err
		}
		p.Total = int64(top - s.geo.HeapOff)
		// Start the pass at the bottom; the cursor is hint, never undone.
		storeWord(&s.hdr.Alloc.Cursor, s.geo.HeapOff)
		return nil
	}, false)
	if err != nil {
		return p, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return p, err
		}
		var r stepResult
		err := s.withLock(ctx, func(*txn) (err error) {
			r, err = s.compactStep(compactSlice)
			return err
		}, false)
		if err != nil {
			return p, err
		}
		p.Moved += int64(r.moved)
		p.Entries += int64(r.entries)
		if r.wrapped {
			p.Done = p.Total
			if fn != nil {
				fn(p)
			}
			return p, nil
		}
		p.Done = min(int64(max(r.scan, r.cursor)-s.geo.HeapOff), p.Total)
		if fn != nil {
			fn(p)
		}
	}
}

// makeRoom compacts until an entry of size bytes fits, for a mutation of
// this transaction that found no room. It rolls the transaction back,
// compacts in transactions of its own, and plans the mutations made so far
// again. It returns ErrFull, saying which room is missing, when even a full
// pass cannot make room for them and size. REQUIRES: the writer lock.
func (t *txn) makeRoom(size uint64, index bool) error {
	s := t.s
	ops, total, largest, err := t.snapshot()
	if err != nil {
		return err
	}
	largest = max(largest, size)
	batch, poison := t.batch, t.poison
	t.rollback()
	// Compaction gathers free space; it creates none. When all of it
	// cannot hold the mutations and the reserve, do not move a byte: the
	// mutation is planned again below, and fails.
	//
	// A store that may grow grows instead when it is filling up (live
	// entries and the new ones would take over 3/4 of the heap), or when
	// its free space could not hold them anyway; below that it compacts,
	// so that churn does not make it grow.
	var cerr error
	top, err := s.top()
	switch {
	case err != nil:
		cerr = err
	case index:
		// The index is full: finish any migration, and grow it to hold
		// what the store counts and what this transaction inserts.
		cerr = s.growIndex(s.hdr.Meta.Count.Load() + uint64(max(t.inserts, 0)) + 1 + uint64(len(ops)))
	default:
		need, free := size+total, s.hdr.Meta.FreeBytes.Load()+s.geo.Size-top
		fits := free >= need+s.reserve(largest)
		grew := false
		if s.canGrow() && (!fits || s.hdr.Meta.BlockUsed.Load()+need > s.geo.HeapSize/4*3) {
			grew, cerr = s.growFor(need, largest)
			if cerr != nil && fits {
				cerr = nil // /dev/shm is full, say: compacting may still do
			}
		}
		if !grew && cerr == nil && fits {
			_, cerr = s.compactFor(need, largest)
		}
	}
	if st := s.journal().State.Load(); st != layout.JournalIdle {
		// A compaction transaction failed after its commit (damage): roll
		// it forward now, or leave it for the next writer; never begin
		// over it, which would wipe it.
		if err := s.recoverJournal(); err != nil {
			t.abandoned = true
			return fmt.Errorf("%w; and repairing the compaction: %w", cerr, err)
		}
	}
	s.begin()
	t.batch, t.poison = batch, poison
	if batch != nil {
		batch.reset()
	}
	t.replaying = true
	for _, op := range ops {
		var err error
		if op.del {
			err = t.del(op.key, nil)
		} else {
			err = t.put(op.key, op.value, condNone, nil)
		}
		if err != nil {
			// fn was told these mutations succeeded: the whole transaction
			// must fail, whatever fn does with the error.
			t.poison = fmt.Errorf("planning a batch again after compacting: %w", err)
			break
		}
	}
	t.replaying = false
	switch {
	case t.poison != nil:
		return t.poison
	case cerr != nil:
		return cerr
	}
	t.noCompact = true // the mutation is planned again: alloc decides
	return nil
}

// snapOp is one mutation of a transaction, copied out for makeRoom.
type snapOp struct {
	key, value []byte
	del        bool
}

// snapshot copies the transaction's planned mutations, in order, and
// returns the block bytes they take and the largest block.
func (t *txn) snapshot() (ops []snapOp, total, largest uint64, err error) {
	s := t.s
	for i := range t.nIntents {
		it := s.intentRec(i)
		nw, ow := it.New, it.Old // once each
		w := nw
		if w == 0 {
			w = ow
		}
		b, err := s.liveBlock(layout.SlotOffset(w))
		if err != nil {
			return nil, 0, 0, err
		}
		kv := append([]byte(nil), s.kv(b)...)
		kl := int(b.kl)
		op := snapOp{key: kv[:kl:kl], value: kv[kl:], del: nw == 0}
		if !op.del {
			n := layout.BlockSize(uint64(len(op.key)), uint64(len(op.value)))
			total += n
			largest = max(largest, n)
		}
		ops = append(ops, op)
	}
	return ops, total, largest, nil
}

// fullError is ErrFull for an entry of size bytes that found no room, with
// the figures that say why.
func (s *Store) fullError(size uint64) error {
	m := &s.hdr.Meta
	top, _ := s.top()
	wild := s.geo.Size - max(top, s.geo.HeapOff)
	limit := ""
	if s.geo.Size >= s.maxSize {
		limit = fmt.Sprintf("; the store is at its maximum size, %s", units.FormatBytes(int64(s.maxSize)))
	}
	return fmt.Errorf("%w: no room for an entry of %d bytes: %d bytes in live entries, %d in free blocks (largest %d), %d never used of which %d are kept free for compaction, heap %d%s",
		ErrFull, size, m.BlockUsed.Load(), m.FreeBytes.Load(), s.largestFree(s.geo.Size), wild, min(wild, s.reserve(size)), s.geo.HeapSize, limit)
}

// roomFor reports whether alloc would find size bytes now, keeping the
// reserve for an entry of entry bytes.
func (s *Store) roomFor(size, entry uint64) bool {
	c := layout.ClassOf(size)
	if s.lazyHead(size, c) != 0 {
		return true
	}
	off := s.hdr.FreeLists[c].Load()
	for i := 0; off != 0 && i < scanLimit; i++ {
		b, err := s.listedBlockAt(off)
		if err != nil {
			return false
		}
		if b.size >= size {
			return true
		}
		off = s.word(off + 8).Load()
	}
	if s.firstClassAbove(c) >= 0 {
		return true
	}
	top, err := s.top()
	return err == nil && s.geo.Size-top >= size+s.reserve(entry)
}

// largestFree is the size of the largest free block (looking at up to 64
// blocks of the largest class that has any) in a heap that ends at end.
func (s *Store) largestFree(end uint64) uint64 {
	for w := layout.ClassWords - 1; w >= 0; w-- {
		bitsw := s.hdr.Alloc.NonEmpty[w].Load()
		if bitsw == 0 {
			continue
		}
		c := w*64 + 63
		for bitsw&(1<<(c%64)) == 0 {
			c--
		}
		if c >= layout.NumClasses {
			return 0
		}
		var best uint64
		off := s.hdr.FreeLists[c].Load()
		for i := 0; off != 0 && i < 64; i++ {
			b, err := s.blockAt(off, end)
			if err != nil || b.flags&layout.SizeFree == 0 {
				break
			}
			best = max(best, b.size)
			off = s.word(off + 8).Load()
		}
		return best
	}
	return 0
}

// compactFor compacts until alloc would find need bytes (keeping the
// reserve for an entry of entry bytes) and the wilderness holds its reserve
// again, or until there is nothing more to gain. It reports whether need
// bytes fit. REQUIRES: the writer lock, the journal idle.
//
// It starts at the cursor, where the last compaction stopped, runs to the
// heap top, then passes over the whole heap from the bottom: free space
// gathers into one gap that reaches the never-used space only at the top.
// A pass that had to leave a block in place (no room to move it) may have
// split the free space in two; the next pass moves that block into what
// the first gathered. So it stops after a whole pass that moved nothing,
// or after two whole passes. A put thus moves at most every live byte
// twice, plus twice the largest entry per pass.
func (s *Store) compactFor(need, entry uint64) (bool, error) {
	wraps := 0
	var passMoved uint64
	// Each step moves or passes at least one block, or wraps.
	limit := 8*(s.geo.HeapSize/layout.EntrySize) + 16
	for range limit {
		if s.roomFor(need, entry) {
			top, err := s.top()
			if err != nil {
				return false, err
			}
			if s.geo.Size-top >= s.reserve(0) || wraps > 0 {
				return true, nil
			}
		}
		r, err := s.compactStep(compactSlice)
		if err != nil {
			return false, err
		}
		if r.wrapped {
			wraps++
			if wraps >= 3 || (wraps >= 2 && passMoved == 0) {
				return s.roomFor(need, entry), nil
			}
			passMoved = 0
		}
		passMoved += r.moved
	}
	return false, fmt.Errorf("%w: compaction made no progress in %d steps", ErrCorrupt, limit)
}

// compactStep runs one compaction transaction from the cursor: it finds a
// gap and moves the live blocks after it into it (or, when the first does
// not fit, elsewhere). REQUIRES: the writer lock, the journal idle.
func (s *Store) compactStep(maxBytes uint64) (r stepResult, err error) {
	a := &s.hdr.Alloc
	if a.LazyBytes.Load() != 0 {
		// Lazy blocks first: merged, they stop keeping free space apart,
		// and what compaction walks is tagged free space only.
		more, err := s.drainLazy()
		if err != nil || more {
			r.cursor = max(a.Cursor.Load(), s.geo.HeapOff)
			r.scan = r.cursor
			return r, err
		}
	}
	top, err := s.top()
	if err != nil {
		return r, err
	}
	pos := a.Cursor.Load()
	if pos >= top {
		pos, r.wrapped = s.geo.HeapOff, true
		storeWord(&a.Passes, a.Passes.Load()+1)
	} else if pos < s.geo.HeapOff || pos%layout.EntryAlign != 0 {
		pos = s.geo.HeapOff // not a cursor this build wrote; start over
	}
	// The gap: the first free block from the cursor on.
	var gap block
	for walked := 0; ; walked++ {
		if pos >= top || walked == walkLimit {
			r.cursor, r.scan = pos, pos
			storeWord(&a.Cursor, pos)
			return r, nil
		}
		b, err := s.blockAt(pos, top)
		if err != nil {
			return r, err
		}
		if b.flags&layout.SizeFree != 0 {
			gap = b
			break
		}
		pos += b.size
	}
	t := s.begin()
	t.mergeAll() // what the moves free merges at once
	// Any error before the commit undoes what the step planned.
	committing := false
	defer func() {
		if err != nil && !committing {
			t.rollback()
		}
	}()
	if gap.flags&layout.SizeLazy != 0 {
		// drainLazy, above, emptied every lazy stack.
		return r, fmt.Errorf("%w: lazy block %#x is on no lazy stack", ErrCorrupt, gap.off)
	}
	next := gap.off         // the cursor after this step
	cur := gap              // what is left of the gap
	q := gap.off + gap.size // the next old block
	for q < top && t.moved < maxBytes {
		b, err := s.blockAt(q, top)
		if err == nil && b.flags&layout.SizeFree != 0 {
			// The old blocks moved so far reach a free block: apply will
			// merge it with them. Pass it; what is left of the gap may still
			// hold the blocks after it.
			q += b.size
			continue
		}
		if err == nil {
			b, err = s.liveBlock(q)
		}
		if err != nil {
			return r, err
		}
		if b.e.Flags&layout.EntryIndex != 0 {
			// An index table never moves (readers hold its offset): the
			// gap ends here. Once nothing is planned, pass it.
			if t.nIntents == 0 {
				next = q + b.size
			}
			break
		}
		need := layout.BlockSize(b.kl, b.vl)
		if need > cur.size {
			if t.nIntents > 0 {
				break
			}
			// The gap cannot hold the block after it: move that block
			// anywhere else, and the gap grows by its size.
			if err := t.budget(mutMove, 0); err != nil {
				return r, err
			}
			off, err := t.allocWith(need, 0)
			if err == errNoRoom {
				next = q + b.size // it stays; pass it
				break
			}
			if err != nil {
				return r, err
			}
			if err := t.move(b, off); err != nil {
				return r, err
			}
			break
		}
		if err := t.budget(mutMove, 0); err != nil {
			break // the journal is full: commit what is planned
		}
		gapEnd := cur.off + cur.size
		off, err := t.take(cur, need)
		if err != nil {
			return r, err
		}
		if err := t.move(b, off); err != nil {
			return r, err
		}
		q += b.size
		next = off + offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(off)).Bytes()
		if next == gapEnd {
			break // the gap is used up
		}
		if cur, err = s.freeBlockAt(next); err != nil {
			return r, err
		}
	}
	r.moved, r.entries, r.scan = t.moved, int(t.nIntents), q
	if r.entries == 0 {
		r.scan = next
	}
	committing = true
	if err := t.commit(); err != nil {
		return r, err
	}
	if r.entries > 0 {
		storeWord(&a.Moved, a.Moved.Load()+r.moved)
		storeWord(&a.Compactions, a.Compactions.Load()+1)
	}
	// The cursor is a hint, not undone by recovery: a boundary that a
	// later merge removes is moved by fixCursor.
	r.cursor = next
	storeWord(&a.Cursor, next)
	faultPoint("compacted")
	return r, nil
}

// move plans moving the live block b to the block at dst, which this
// transaction allocated: the same key and value, published in the key's
// slot in place of b, which apply then frees.
func (t *txn) move(b block, dst uint64) error {
	s := t.s
	kv := s.kv(b)
	kl := b.kl
	p, err := t.find(kv[:kl])
	if err != nil {
		return err
	}
	if !p.found || layout.SlotOffset(p.word) != b.off {
		return fmt.Errorf("%w: block %#x holds an entry that no index slot names", ErrCorrupt, b.off)
	}
	d := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(dst))
	d.KeyLen = uint16(kl)
	d.Slack = uint8(d.Bytes() - layout.EntryHeader - uint64(len(kv)))
	d.Flags = 0
	to, _ := s.r.Bytes(offsetptr.Offset(dst+layout.EntryHeader), uint64(len(kv)))
	copy(to, kv)
	// The sum moves as it was, not computed again: damage to the old
	// copy must not become a valid entry by moving.
	d.Sum = b.sum
	storeHalf(&d.Seq, s.nextSeq(false))
	faultPoint("move")
	t.addIntent(layout.IntentOverwrite, &p, layout.SlotWord(p.tag, dst), newBlock{d.Bytes(), uint64(len(kv))})
	t.moved += b.size
	t.checkBudget()
	return nil
}
