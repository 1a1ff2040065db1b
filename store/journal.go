package store

// The journal makes each transaction (one mutation, or a batch) all or
// nothing under SIGKILL, and keeps readers from ever seeing a write that is
// later undone.
//
// A transaction runs in two phases around one commit point:
//
//  1. Prepare. Allocate blocks, fill them with the new entries, and bump the
//     Overflow counts of the buckets new keys probe past. Before changing any
//     word that existed before the transaction, append (offset, old value)
//     to the undo log, and only then change it. Readers cannot see any of
//     this: new blocks are not linked from the index yet, and a higher
//     Overflow only makes a lookup look one bucket further.
//  2. Commit: store CommitUndo, then State = Committed. From here on the
//     transaction happens, whatever dies.
//  3. Apply. Publish each intent with one atomic store into its index slot
//     (this is what readers see), then free the blocks the intents replaced,
//     lower Overflow for deleted keys and update the counts, still logging
//     old values, then State = Idle.
//
// Recovery, run by the next writer when it finds State is not Idle:
//   - Prepare: undo the whole log, newest first. The store is as before.
//   - Committed: undo the records after CommitUndo (the partial apply), which
//     brings the region back to the instant of the commit, and run Apply
//     again. Publishing is idempotent and never undone, so a reader that saw
//     the new value never sees the old one again.
//
// Recovery is itself a transaction in the Committed state, so a writer
// killed while recovering leaves a journal the next one recovers the same
// way.
//
// NB: Entry.Seq words are never moved backwards by undo (UndoSeq): a reader
// validates a copy by seeing the same even Seq before and after it, and a
// Seq that went back could make it accept bytes read while the block was
// briefly free.

import (
	"fmt"
	"sync/atomic"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
)

type txn struct {
	s        *Store
	jh       *layout.JournalHeader
	nUndo    uint32
	nIntents uint32
	inserts  int64  // keys planned in, less keys planned out
	post     uint64 // undo records reserved for after the commit
	// mark and markPre are where the mutation being planned started in the
	// log and what it reserved before the commit (budget.go).
	mark    uint32
	markPre uint64
	// replaying is set while makeRoom plans the transaction's mutations
	// again after compacting; poison is an error that makeRoom could not
	// hide from fn, which fails the whole transaction (compact.go).
	replaying bool
	noCompact bool
	poison    error
	// abandoned: makeRoom could not bring the journal back to idle; the
	// transaction must not touch it again (rollback leaves it to the next
	// writer's recovery).
	abandoned bool
	// moved is the bytes of entries a compaction transaction moves.
	moved uint64

	// logged marks the header-page words (Meta, the free-list heads)
	// already logged in this phase of the transaction, by offset/8. Undo
	// only needs a word's oldest value in a phase, and a batch changes the
	// same few counters and list heads in every mutation. It is cleared at
	// the commit: recovery undoes the records after CommitUndo, so each
	// word the apply phase changes needs its own record from then on.
	logged [layout.HeaderSize / 8 / 64]uint64
	// recent holds heap words logged (UndoPlain) in this phase, by
	// offset/8 mod 4: the same rule as logged, for the free-list links a
	// batch changes twice in a row (the prev link of the next block
	// unlink left at the head, which take then logs again; the prev link
	// of the block push put at the head, which the next push sets).
	// Offset 0 is never a heap word. Cleared with logged.
	recent [4]uint64
	// freeDelta is the change to Meta.FreeBytes not yet written: the
	// allocator adds to it, and flushCounts writes it once per phase.
	freeDelta int64
	// lazyDelta is the same for Alloc.LazyBytes.
	lazyDelta int64
	// eager: frees merge, never lazy (compaction's transactions).
	eager bool
	// settled: the transaction merged free blocks (settle), which it
	// commits even without an intent.
	settled bool

	// In a batch (batch != nil), the intents planned so far by key hash,
	// so that a mutation sees the effect of earlier ones, and the slots
	// they took. See txn.find.
	batch *batchIndex
}

func (s *Store) journal() *layout.JournalHeader {
	return offsetptr.MustAt[layout.JournalHeader](s.r, offsetptr.Offset(s.geo.JournalOff))
}

// undoRec and intentRec index the journal's records. REQUIRES: i below
// MaxUndo or MaxIntents (counts read from the region are checked first).
func (s *Store) undoRec(i uint32) *layout.Undo { return &s.undos[i] }

func (s *Store) intentRec(i uint32) *layout.Intent { return &s.intents[i] }

// word is the 8-byte word at off, which must be one this process computed
// or validated with mutableWord.
func (s *Store) word(off uint64) *atomic.Uint64 {
	return offsetptr.MustAt[atomic.Uint64](s.r, offsetptr.Offset(off))
}

// mutableWord reports whether off names a word a transaction may change:
// Meta and the free lists, the index, the heap.
func (s *Store) mutableWord(off uint64) bool {
	g := &s.geo
	if off%8 != 0 {
		return false
	}
	return (off >= layout.MetaOff && off < layout.HeaderSize) ||
		(off >= g.IndexOff && off < g.IndexOff+g.NumBuckets*layout.BucketSize) ||
		(off >= g.HeapOff && off+8 <= g.Size)
}

// begin starts a transaction. REQUIRES: the writer lock, journal Idle.
func (s *Store) begin() *txn {
	jh := s.journal()
	storeHalf(&jh.NumUndo, 0)
	storeHalf(&jh.NumIntents, 0)
	storeHalf(&jh.CommitUndo, 0)
	storeHalf(&jh.Owner, s.ident)
	storeHalf(&jh.Flags, 0)
	// INVARIANT: the counts are reset before State leaves Idle, so recovery
	// never reads a previous transaction's records.
	storeHalf(&jh.State, layout.JournalPrepare)
	faultPoint("begin")
	// NB: the txn lives in the Store (guarded by wmu) so a mutation
	// allocates nothing.
	s.tx = txn{s: s, jh: jh}
	s.itBuf, s.itNew = s.itBuf[:0], s.itNew[:0]
	return &s.tx
}

// mergeAll makes every free of the transaction merge, never lazy
// (compaction's), and says so in the journal for a replay.
func (t *txn) mergeAll() {
	t.eager = true
	storeHalf(&t.jh.Flags, layout.JournalEager)
}

// log records the current value of the word at off before it changes.
func (t *txn) log(off uint64, kind uint64) { t.logAt(off, kind, t.s.word(off)) }

// logAt is log for the word w at off, which the caller has at hand.
func (t *txn) logAt(off uint64, kind uint64, w *atomic.Uint64) {
	if off < layout.HeaderSize {
		lw, bit := &t.logged[off/8/64], uint64(1)<<(off/8%64)
		if *lw&bit != 0 {
			return
		}
		*lw |= bit
	} else if kind == layout.UndoPlain {
		if t.loggedLink(off) {
			return
		}
		t.recent[off/8%4] = off
	}
	if kind == layout.UndoSeq {
		t.s.cow(off, 24) // a block header, and the free-list links after it (snapshot.go)
	} else {
		t.s.cow(off, 8)
	}
	n, undos := t.nUndo, t.s.undos
	if int(n) >= len(undos) {
		undoOverflow()
	}
	rec := &undos[n]
	rec.Off = off | kind
	rec.Old = w.Load()
	faultPoint("log-record")
	t.nUndo = n + 1
	// The record is written before the count that makes it visible.
	storeHalf(&t.jh.NumUndo, n+1)
	faultPoint("logged")
}

// loggedLink reports whether the heap word at off is in recent.
func (t *txn) loggedLink(off uint64) bool { return t.recent[off/8%4] == off }

// setHeader is set for a word of the header page (off < HeaderSize),
// which a batch changes in every mutation: the check that it is logged
// already is made before the call to logAt.
// w is the word at off, from Store.hdr.
func (t *txn) setHeader(w *atomic.Uint64, off, v uint64) {
	if t.logged[off/8/64]&(1<<(off/8%64)) == 0 {
		t.logAt(off, layout.UndoPlain, w)
	}
	storeWord(w, v)
}

// set logs the word at off, then stores v there.
func (t *txn) set(off, v uint64) {
	w := t.s.word(off)
	t.logAt(off, layout.UndoPlain, w)
	storeWord(w, v)
}

// add adds d to the word at off, logged.
func (t *txn) add(off uint64, d int64) {
	if d != 0 {
		w := t.s.word(off)
		t.logAt(off, layout.UndoPlain, w)
		storeWord(w, w.Load()+uint64(d))
	}
}

// undoOverflow: each mutation checks its budget, and recovery checks a
// journal's before replaying it, so only a region changed under us gets
// here.
//
//go:noinline
func undoOverflow() {
	panic(corruption{fmt.Errorf("%w: undo log overflow", ErrCorrupt)})
}

// flushCounts writes the counters the transaction has been keeping in
// process memory: at the commit into the journal header (not logged: the
// journal's own words), then in apply into the counters, with what apply
// itself changed (JournalHeader.PreFree).
func (t *txn) flushCounts(committing bool) {
	if committing {
		storeWord(&t.jh.PreFree, uint64(t.freeDelta))
		storeWord(&t.jh.PreLazy, uint64(t.lazyDelta))
	} else {
		t.add(layout.FreeBytesOff, t.freeDelta+int64(t.jh.PreFree.Load()))
		t.add(layout.LazyBytesOff, t.lazyDelta+int64(t.jh.PreLazy.Load()))
	}
	t.freeDelta, t.lazyDelta = 0, 0
}

// newBlock is what the writer knows of an intent's new block, which it
// just filled: its size and its key and value bytes (zero for a delete).
type newBlock struct{ size, kv uint64 }

// addIntent records a publication to perform at commit: new, naming the
// block nb describes.
func (t *txn) addIntent(kind uint32, p *place, new uint64, nb newBlock) {
	t.writeIntent(layout.Intent{Kind: kind, Slot: p.slot, Old: p.word, New: new, Home: p.home}, nb)
	if b := t.batch; b != nil {
		b.chain = append(b.chain, b.byHash.swap(p.h, t.nIntents))
		if prev := b.slots.swap(p.slot, t.nIntents); prev != 0 {
			// Only the last store into a slot is published (see apply).
			t.s.intentRec(prev - 1).Flags |= layout.IntentSuperseded
			t.s.itBuf[prev-1].Flags |= layout.IntentSuperseded
		}
	}
}

// writeIntent appends in to the journal's intents, and to the copy the
// writer applies them from (Store.itBuf, with nb in Store.itNew; recovery,
// which has no copy, loads and checks the journal's instead:
// loadIntents).
func (t *txn) writeIntent(in layout.Intent, nb newBlock) {
	*t.s.intentRec(t.nIntents) = in
	t.s.itBuf = append(t.s.itBuf, in)
	t.s.itNew = append(t.s.itNew, nb)
	t.nIntents++
	storeHalf(&t.jh.NumIntents, t.nIntents)
}

// commit is the commit point, then applies the intents and ends the
// transaction.
func (t *txn) commit() error {
	if t.nIntents == 0 && !t.settled {
		t.rollback()
		return nil
	}
	t.flushCounts(true) // the journal must be whole at the commit instant
	storeHalf(&t.jh.CommitUndo, t.nUndo)
	t.logged, t.recent = [len(t.logged)]uint64{}, [len(t.recent)]uint64{} // see logged
	faultPoint("prepared")
	storeHalf(&t.jh.State, layout.JournalCommitted)
	faultPoint("commit")
	// The intents as this writer planned them (writeIntent): the journal's
	// hold the same, unless someone wrote over them, whom recovery would
	// then find out.
	if err := t.apply(t.s.itBuf[:t.nIntents:t.nIntents], t.s.itNew[:t.nIntents:t.nIntents]); err != nil {
		return err
	}
	storeHalf(&t.jh.State, layout.JournalIdle)
	faultPoint("idle")
	return nil
}

// rollback undoes everything the transaction changed.
func (t *txn) rollback() {
	if t.abandoned {
		return
	}
	if err := t.s.undo(0, t.nUndo); err != nil {
		// Records this process just wrote are valid; failing here is a bug.
		panic(err)
	}
	faultPoint("rolled-back")
	storeHalf(&t.jh.State, layout.JournalIdle)
}

// undo restores records [from, to) newest first.
func (s *Store) undo(from, to uint32) error {
	for i := to; i > from; i-- {
		rec := s.undoRec(i - 1)
		off, kind := rec.Off&^layout.UndoKind, rec.Off&layout.UndoKind
		if !s.mutableWord(off) || kind > layout.UndoGen || (kind == layout.UndoGen) != (off == layout.IndexGenOff) {
			return fmt.Errorf("%w: undo record %d names word %#x (kind %d) outside the mutable region", ErrCorrupt, i-1, off, kind)
		}
		w := s.word(off)
		if kind == layout.UndoPlain {
			w.Store(rec.Old)
			continue
		}
		if kind == layout.UndoGen {
			// IndexGen never goes back (a reader that saw it move must not
			// see it again): forward to the old value's parity, which
			// selects the old descriptor, never written while it was not
			// in force.
			if cur := w.Load(); cur&1 != rec.Old&1 {
				w.Store(cur + 1)
			}
			continue
		}
		// UndoSeq: the block's first word is Seq (low 32 bits) and Size.
		// Restore Size; move Seq forward to the old value's parity, with a
		// fresh number (see nextSeq).
		cur := w.Load()
		seq, old := uint32(cur), uint32(rec.Old)
		if seq&1 != old&1 {
			seq = s.nextSeq(old&1 == 1)
		}
		w.Store(rec.Old&^0xffffffff | uint64(seq))
		faultPoint("undo")
	}
	return nil
}

// apply publishes the intents and finishes the transaction's bookkeeping.
// It runs after the commit point, on the normal path and in recovery, and
// must do the same thing from the same committed state both times. its
// are the transaction's intents, in process memory: the writer's own
// (commit), or the journal's, copied out and checked (recovery,
// loadIntents). NB: every word of an intent used below comes from its, never
// again from the region. news, the writer's, says what each new block
// holds; recovery, without it, reads and checks the blocks (liveBlock).
func (t *txn) apply(its []layout.Intent, news []newBlock) error {
	s := t.s
	from := t.nUndo
	for i := range its {
		it := &its[i]
		if it.Flags&layout.IntentSuperseded != 0 {
			continue
		}
		// The publication: from this store on, readers see the new entry.
		s.cow(it.Slot, 8)
		storeWord(s.word(it.Slot), it.New)
		faultPoint("publish")
		if it.Kind == layout.IntentMove {
			// A migration's move: the key is in the current table now, so
			// clear its old slot. Readers look in the old table first.
			s.cow(it.Old, 8)
			storeWord(s.word(it.Old), 0)
			faultPoint("migrate-move")
		}
	}
	var dCount, dBlock, dKV int64
	for i := range its {
		it := &its[i]
		if it.Kind == layout.IntentMove {
			continue // no block changes
		}
		var nb newBlock
		if it.New != 0 {
			if news != nil {
				nb = news[i]
			} else {
				b, err := s.liveBlock(layout.SlotOffset(it.New))
				if err != nil {
					return err
				}
				nb = newBlock{b.size, b.kl + b.vl}
			}
			dBlock += int64(nb.size)
			dKV += int64(nb.kv)
			if a := &s.hdr.Alloc; nb.size > a.MaxBlock.Load() {
				// A high-water mark of committed entries, never undone.
				storeWord(&a.MaxBlock, nb.size)
			}
		}
		if it.Old != 0 {
			b, err := s.liveBlock(layout.SlotOffset(it.Old))
			if err != nil {
				return err
			}
			dBlock -= int64(b.size)
			dKV -= int64(b.kl + b.vl)
			// The allocator writes into free space unlogged: a snapshot
			// needs the block, the footer before it and the header and
			// links after it, which a merge makes free space (snapshot.go).
			s.cow(b.off-8, b.size+32)
			if err := t.free(b, nb.size == b.size); err != nil {
				return err
			}
		}
		switch it.Kind {
		case layout.IntentInsert:
			dCount++
		case layout.IntentDelete:
			dCount--
			v, err := s.view()
			if err != nil {
				return err
			}
			tb := v.tableOf(it.Slot) // checkIntent found it
			t.unprobe(tb, it.Home, tb.bucketOfSlot(it.Slot))
		}
		faultPoint("apply")
	}
	t.flushCounts(false)
	t.add(layout.CountOff, dCount)
	t.add(layout.BlockUsedOff, dBlock)
	t.add(layout.KVBytesOff, dKV)
	t.add(layout.CommitsOff, 1)
	faultPoint("counts")
	if invariants {
		t.checkApplyBudget(from, s.replayBudget(its))
	}
	return nil
}

// liveBlock is blockAt for a block that holds an entry (even Seq, not
// free, lengths that fit), with its key and value lengths. It is on every
// write path, three times a put: the checks are written out here, with one
// call on the error path only, so that nothing but the header's two words
// is read and nothing is copied twice.
func (s *Store) liveBlock(off uint64) (block, error) {
	g := &s.geo
	if off >= g.HeapOff && off%layout.EntryAlign == 0 && off < g.Size && g.Size-off >= layout.EntrySize {
		e := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(off))
		seq, raw := e.Seq.Load(), e.Size
		sz := uint64(raw &^ layout.SizeFlags)
		kl, slack := uint64(e.KeyLen), uint64(e.Slack)
		if seq&1 == 0 && raw&layout.SizeFree == 0 && sz >= layout.EntrySize && sz <= g.Size-off && layout.EntryHeader+kl+slack <= sz {
			return block{off: off, e: e, size: sz, flags: raw & layout.SizeFlags, kl: kl, vl: sz - layout.EntryHeader - kl - slack, sum: e.Sum}, nil
		}
	}
	return block{}, s.liveBlockError(off)
}

// liveBlockError says why liveBlock refused the block at off.
func (s *Store) liveBlockError(off uint64) error {
	b, err := s.blockAt(off, s.geo.Size)
	switch {
	case err != nil:
		return err
	case b.e.Seq.Load()&1 != 0 || b.flags&layout.SizeFree != 0:
		return fmt.Errorf("%w: block %#x should hold an entry but is free", ErrCorrupt, off)
	case b.size < layout.EntrySize:
		return fmt.Errorf("%w: entry at %#x in a block of %d bytes", ErrCorrupt, off, b.size)
	}
	return fmt.Errorf("%w: entry at %#x: key of %d bytes and slack of %d in a block of %d", ErrCorrupt, off, b.e.KeyLen, b.e.Slack, b.size)
}

// loadIntents copies the journal's first n intents out of the region and
// checks each copy. The copies live in the Store (guarded by wmu) and are
// valid until the next call.
func (s *Store) loadIntents(n uint32) ([]layout.Intent, error) {
	if n > s.geo.MaxIntents {
		return nil, fmt.Errorf("%w: journal holds %d intents, capacity %d", ErrCorrupt, n, s.geo.MaxIntents)
	}
	s.itBuf = append(s.itBuf[:0], s.intents[:n]...)
	v, err := s.view()
	if err != nil {
		return nil, err
	}
	for i := range s.itBuf {
		if err := s.checkIntent(v, &s.itBuf[i]); err != nil {
			return nil, err
		}
	}
	return s.itBuf, nil
}

// checkIntent validates an intent read back from the region, against the
// index v.
func (s *Store) checkIntent(v *indexView, it *layout.Intent) error {
	if s.intentOK(v, it) {
		return nil
	}
	return fmt.Errorf("%w: journal intent (kind %d, flags %#x, slot %#x, old %#x, new %#x, home %d) is malformed",
		ErrCorrupt, it.Kind, it.Flags, it.Slot, it.Old, it.New, it.Home)
}

func (s *Store) intentOK(v *indexView, it *layout.Intent) bool {
	g := &s.geo
	tb := &v.cur
	if !tb.hasSlot(it.Slot) {
		if tb = &v.old; !tb.hasSlot(it.Slot) {
			return false
		}
	}
	if it.Home >= tb.n || tb.distance(it.Home, tb.bucketOfSlot(it.Slot)) >= layout.MaxProbe ||
		(it.New != 0 && !g.EntryInHeap(layout.SlotOffset(it.New))) || it.Flags&^layout.IntentSuperseded != 0 {
		return false
	}
	switch it.Kind {
	case layout.IntentMove:
		// From the old table into the current one; Old is the old slot.
		return tb == &v.cur && v.old.hasSlot(it.Old) && it.New != 0
	case layout.IntentInsert, layout.IntentOverwrite, layout.IntentDelete:
		return (it.Old == 0 || g.EntryInHeap(layout.SlotOffset(it.Old))) && (it.New == 0) == (it.Kind == layout.IntentDelete)
	}
	return false
}

// repairIfNeeded repairs the region if the previous holder of the writer
// lock died mid-transaction (we took the lock over, or our own write path
// faulted): the journal says so. REQUIRES: the writer lock.
func (s *Store) repairIfNeeded() error {
	if s.journal().State.Load() == layout.JournalIdle {
		return nil
	}
	return s.recoverJournal()
}

// recoverJournal repairs the region after a writer died mid-transaction.
// REQUIRES: the writer lock.
func (s *Store) recoverJournal() error {
	jh := s.journal()
	n := jh.NumUndo.Load()
	ni := jh.NumIntents.Load()
	if n > s.geo.MaxUndo || ni > s.geo.MaxIntents {
		return fmt.Errorf("%w: journal holds %d undo records and %d intents, capacity %d and %d",
			ErrCorrupt, n, ni, s.geo.MaxUndo, s.geo.MaxIntents)
	}
	switch st := jh.State.Load(); st {
	case layout.JournalIdle:
		return nil
	case layout.JournalPrepare:
		if err := s.undo(0, n); err != nil {
			return err
		}
	case layout.JournalCommitted:
		c := jh.CommitUndo.Load()
		if c > n {
			return fmt.Errorf("%w: journal commit mark %d past its %d records", ErrCorrupt, c, n)
		}
		// The replay must fit the log, as the writer's budget made sure.
		its, err := s.loadIntents(ni)
		if err != nil {
			return err
		}
		if need := uint64(c) + s.replayBudget(its); need > uint64(s.geo.MaxUndo) {
			return fmt.Errorf("%w: journal of %d intents needs %d undo records to replay, has %d", ErrCorrupt, ni, need-uint64(c), s.geo.MaxUndo-c)
		}
		if err := s.undo(c, n); err != nil {
			return err
		}
		jh.NumUndo.Store(c)
		storeHalf(&jh.Owner, s.ident)
		faultPoint("recover-undone")
		t := &txn{s: s, jh: jh, nUndo: c, nIntents: ni, eager: jh.Flags.Load()&layout.JournalEager != 0}
		if err := t.apply(its, nil); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%w: journal state %d", ErrCorrupt, st)
	}
	jh.State.Store(layout.JournalIdle)
	s.hdr.Meta.Recovered.Add(1)
	return nil
}
