package store

// The index grows by incremental rehash (GROWTH.md section 3): when the
// keys reach 3/4 of what the current table holds, the writer allocates a
// table twice as big in the heap, makes it the current table and the
// full one the old table, and then, before each later transaction, moves
// the keys of the next 2 old buckets into the current table. Once every
// old bucket is moved, the old table is dropped and its block freed.
//
// Readers look in the old table first, then the current one. A move is an
// IntentMove: apply stores the key's slot word into the current table,
// then 0 into its old slot, so a reader that misses the key in the old
// table finds it in the current one. New keys go into the current table
// only. The old table's Overflow counts are left as they are: keys still
// in old buckets past the cursor may have probed from moved ones, and a
// higher count only makes a lookup look further.
//
// The descriptor of the tables is double-buffered (layout.Grow.IndexGen):
// the writer fills the one not in force, then moves IndexGen to it. A
// reader checks IndexGen after each lookup; if it moved, the old table may
// have been freed and reused while the reader looked, so it looks again.

import (
	"errors"
	"fmt"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
)

// Index sizing: a table holds up to indexLoad keys per bucket (of
// BucketSlots), and a migration starts at 3/4 of that. Each transaction
// moves migrateBuckets old buckets: the new table has twice the buckets,
// so the old one is empty long before inserts could fill the new one.
const (
	indexLoad      = 6
	migrateBuckets = 2
)

// indexCapacity is the most keys the index may hold now: what the current
// table holds at indexLoad (during a migration every key ends up there).
// REQUIRES: the writer lock.
func (s *Store) indexCapacity() uint64 {
	v, err := s.view()
	if err != nil {
		return 0
	}
	return v.cur.n * indexLoad
}

// tendIndex is the index's share of a transaction, run before it: one
// migration step, or the start of a migration when the keys reach 3/4 of
// the current table. Only damage is an error; a table that does not fit
// in the heap now is tried again at the next transaction (and a full index
// makes the mutation grow it, makeRoom). REQUIRES: the writer lock, the
// journal idle.
func (s *Store) tendIndex() error {
	v, err := s.view()
	if err != nil {
		return err
	}
	if v.old.n != 0 {
		return s.migrateStep(v, migrateBuckets)
	}
	count := s.hdr.Meta.Count.Load()
	if count < v.cur.n*indexLoad*3/4 || (s.geo.MaxEntries != 0 && v.cur.n*indexLoad >= s.geo.MaxEntries) {
		return nil
	}
	err = s.startMigration(v, 2*v.cur.n, false)
	if errors.Is(err, errNoRoom) {
		return nil
	}
	return err
}

// growIndex makes the index hold at least entries keys now: it finishes a
// migration in progress, then migrates the whole index into a table big
// enough. It is the slow path of a transaction (a batch, say) that inserts
// more keys than the steps kept up with. REQUIRES: the writer lock, the
// journal idle.
func (s *Store) growIndex(entries uint64) error {
	for range 64 {
		v, err := s.view()
		if err != nil {
			return err
		}
		if v.old.n != 0 {
			if err := s.migrateStep(v, v.old.n); err != nil {
				return err
			}
			continue
		}
		if v.cur.n*indexLoad > entries {
			return nil
		}
		n := max(2*v.cur.n, (entries*4/3+indexLoad)/indexLoad)
		if err := s.startMigration(v, n, true); err != nil {
			if errors.Is(err, errNoRoom) {
				return s.fullError(layout.IndexTableBlock(n))
			}
			return err
		}
	}
	return fmt.Errorf("%w: the index did not grow", ErrCorrupt)
}

// startMigration allocates a table of n buckets and makes it the current
// table, the current one the old one. It returns errNoRoom if the heap
// cannot hold the table, even after growing; without wait, after growing
// one step (so that no one transaction pays for more than one step).
// REQUIRES: the writer lock, the journal idle, no migration running.
func (s *Store) startMigration(v *indexView, n uint64, wait bool) error {
	n = min(n, layout.MaxIndexBuckets)
	if n <= v.cur.n {
		return errNoRoom // the index is as big as a table can be
	}
	size := layout.IndexTableBlock(n)
	for !s.roomFor(size, 0) {
		// Grow the store for it if it may, one step per transaction unless
		// the caller must wait; never compact for it here, as a put would
		// pay for it unasked.
		if !s.canGrow() {
			return errNoRoom
		}
		if err := s.growStep(size, 0); err != nil {
			if errors.Is(err, ErrFull) {
				return errNoRoom
			}
			return err
		}
		if !wait {
			return errNoRoom // the next transaction goes on
		}
	}
	t := s.begin()
	if err := t.budget(mutIndexStart, 0); err != nil {
		t.rollback()
		return err
	}
	clean := s.hdr.Clean.Load()
	off, err := t.allocWith(size, s.reserve(0))
	if err != nil {
		t.rollback()
		return err
	}
	faultPoint("index-alloc")
	e := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(off))
	e.KeyLen, e.Slack, e.Flags, e.Sum = 0, 0, layout.EntryIndex, 0
	if off < clean {
		// Memory used before: clear it. A table from never-written memory
		// (the usual case: bump-allocated, often in space just grown) is
		// zeros already, and a put does not pay for clearing it.
		buckets, _ := s.r.Bytes(offsetptr.Offset(layout.IndexTableBuckets(off)), n*layout.BucketSize)
		clear(buckets)
	}
	storeHalf(&e.Seq, s.nextSeq(false))
	faultPoint("index-filled")
	s.publishIndex(t, off, n, v.cur.descOff(), v.cur.n)
	t.set(layout.IndexCursorOff, 0)
	t.checkBudget()
	t.settled = true // a commit with no intent
	return t.commit()
}

// descOff is what a descriptor records for the table: its block, or the
// first table's first bucket.
func (t *itable) descOff() uint64 {
	if t.blk != 0 {
		return t.blk
	}
	return t.off
}

// publishIndex fills the descriptor not in force with the tables given,
// then makes it the one in force. Part of transaction t.
func (s *Store) publishIndex(t *txn, off, n, oldOff, oldN uint64) {
	g := s.hdr.Grow.IndexGen.Load()
	base := layout.IndexDescAt(g + 1)
	t.set(base, off)
	t.set(base+8, n)
	t.set(base+16, oldOff)
	t.set(base+24, oldN)
	faultPoint("index-desc")
	w := &s.hdr.Grow.IndexGen
	t.logAt(layout.IndexGenOff, layout.UndoGen, w)
	storeWord(w, g+1)
	faultPoint("index-gen")
}

// migrateStep moves the keys of up to limit old buckets into the current
// table, in one transaction, and drops the old table once all are moved.
// REQUIRES: the writer lock, the journal idle, a migration running (v).
func (s *Store) migrateStep(v *indexView, limit uint64) error {
	cursor := s.hdr.Alloc.IndexCursor.Load()
	if cursor > v.old.n {
		return fmt.Errorf("%w: migration cursor %d past the old table's %d buckets", ErrCorrupt, cursor, v.old.n)
	}
	for cursor < v.old.n && limit > 0 {
		t := s.begin()
		s.batch.reset()
		t.batch = &s.batch // the slots this step fills
		end := cursor
		for end < v.old.n && end-cursor < limit {
			if t.nIntents+layout.BucketSlots >= s.geo.MaxIntents { // and room for the cursor's budget
				break
			}
			if err := t.migrateBucket(v, end); err != nil {
				t.rollback()
				return err
			}
			end++
		}
		if end == cursor {
			t.rollback()
			return fmt.Errorf("%w: the journal cannot hold one bucket's moves", ErrCorrupt)
		}
		if err := t.budget(mutIndexStep, 0); err != nil {
			t.rollback()
			return err
		}
		t.set(layout.IndexCursorOff, end)
		faultPoint("migrate-cursor")
		t.checkBudget()
		t.settled = true
		if err := t.commit(); err != nil {
			return err
		}
		limit -= end - cursor
		cursor = end
	}
	if cursor < v.old.n {
		return nil
	}
	return s.finishMigration(v)
}

// migrateBucket plans moving the keys of old bucket bi into the current
// table.
func (t *txn) migrateBucket(v *indexView, bi uint64) error {
	s := t.s
	bk := v.old.bucket(bi)
	for i := range bk.Slots {
		w := bk.Slots[i].Load()
		if w == 0 {
			continue
		}
		at := slotOff(v.old.bucketOff(bi), i)
		e, err := s.liveBlock(layout.SlotOffset(w))
		if err != nil {
			return fmt.Errorf("%w (index slot %#x)", err, at)
		}
		h := hashKey(s.key(e))
		if layout.Tag(h) != layout.SlotTag(w) {
			return fmt.Errorf("%w: index slot %#x: tag %#x, its key hashes to tag %#x", ErrCorrupt, at, layout.SlotTag(w), layout.Tag(h))
		}
		var p place
		if err := s.findIn(&p, &v.cur, s.key(e), h, &s.batch.slots, true); err != nil {
			return err
		}
		if p.found {
			return fmt.Errorf("%w: key %s is in both index tables", ErrCorrupt, QuoteKey(s.key(e)))
		}
		if p.slot == 0 {
			return fmt.Errorf("%w: no free slot in the new index table within %d buckets", ErrFull, layout.MaxProbe)
		}
		if err := t.budget(mutMigrate, p.probed); err != nil {
			return err
		}
		t.probe(p.tbl, p.home, p.probed)
		t.writeIntent(layout.Intent{Kind: layout.IntentMove, Slot: p.slot, Old: at, New: w, Home: p.home}, newBlock{})
		s.batch.slots.swap(p.slot, t.nIntents)
		faultPoint("intent")
		t.checkBudget()
	}
	return nil
}

// finishMigration drops the old table once every key has moved: the
// current table becomes the only one, and the old table's block, if it is
// in the heap, is freed (after IndexGen moves, so that a reader still in
// it looks again). REQUIRES: the writer lock, the journal idle.
func (s *Store) finishMigration(v *indexView) error {
	t := s.begin()
	if err := t.budget(mutIndexEnd, 0); err != nil {
		t.rollback()
		return err
	}
	s.publishIndex(t, v.cur.descOff(), v.cur.n, 0, 0)
	t.add(layout.MigrationsOff, 1)
	if v.old.blk != 0 {
		b, err := s.liveBlock(v.old.blk)
		if err != nil || b.e.Flags&layout.EntryIndex == 0 {
			t.rollback()
			return fmt.Errorf("%w: the old index table's block at %#x: %v", ErrCorrupt, v.old.blk, err)
		}
		s.cow(b.off-8, b.size+32)
		if err := t.free(b, false); err != nil {
			t.rollback()
			return err
		}
		faultPoint("index-free")
	}
	t.checkBudget()
	t.settled = true
	return t.commit()
}
