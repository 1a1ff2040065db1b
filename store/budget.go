package store

// The undo budget: how many undo records each step of a transaction may
// write. This file is its one owner. A transaction reserves each
// mutation's records before it plans the mutation (txn.budget), so a batch
// that would outgrow the journal fails with ErrTooLarge before it changes
// anything; recovery checks a committed journal against the same numbers
// before it replays it (replayBudget). With the `invariants` build tag,
// every mutation and every apply checks that it wrote no more than it
// reserved (checkBudget).
//
// The numbers are bounds; a transaction logs each header-page word (Meta,
// the free-list heads, Alloc) once per phase (txn.logged), so it usually
// writes fewer.

import (
	"fmt"

	"github.com/shmkv/shmkv/layout"
)

// Records per step, worst case, counted from alloc.go and journal.go.
const (
	// undoAlloc: take unlinks a block (its list's head or its predecessor's
	// link, the class bit, its successor's link: 3), logs the block's
	// header and links (3) and a big block's size (1), and either pushes
	// the split-off remainder (its footer, the old head's link or the class
	// bit, the head: 3) or logs the footer and clears the next block's
	// SizePrevFree (2). popLazy writes the stack's head and logs the
	// block's header and link (3); bump writes Top alone.
	undoAlloc = 10
	// undoFree: the block's Seq (1), then coalesce: a merge with the block
	// after (unlink 3) or that block's SizePrevFree (1); a merge with the
	// block before (unlink 3, its header 1); a big block's size (1); the
	// push (links 2, footer 1, the old head's link or the class bit 1, the
	// head 1); the cursor (1). A merge into the wilderness writes Top and
	// the cursor instead of the last three. A lazy free writes the Seq, the
	// link and the stack's head.
	undoFree = 1 + 3 + 4 + 1 + 5 + 1
	// undoDrain: compaction's merge of a lazy block (drainLazy): popLazy
	// (3), then coalesce (undoFree less the Seq).
	undoDrain = 3 + undoFree - 1
	// undoMove: compaction's move of one entry allocates its new block and
	// may move the cursor.
	undoMove = undoAlloc + 1
	// undoApply: once per transaction, after the commit: the counters
	// apply writes (FreeBytes, LazyBytes, Count, BlockUsed, KVBytes,
	// Commits).
	undoApply = 6
	// undoTxn: once per transaction in all: undoApply (the commit writes
	// its counters into the journal header, unlogged: flushCounts).
	undoTxn = undoApply
	// undoDesc: publishing an index descriptor (migrate.go): its four
	// words and IndexGen.
	undoDesc = 5
)

// Every mutation of the worst kind must fit an empty journal.
const _ = uint64(layout.UndoWorst) - (undoMove + undoFree + undoTxn + 2*layout.MaxProbe)

// mutation kinds, for undoBudget.
type mutKind uint8

const (
	mutInsert     mutKind = iota // a new key: allocate, raise Overflow on probed buckets
	mutOverwrite                 // a key's new value: allocate; free the old block after the commit
	mutDelete                    // free the block and lower Overflow after the commit
	mutMove                      // compaction: a new block for the same entry; free the old one
	mutDrain                     // compaction: merge a lazy block with its free neighbours
	mutMigrate                   // a migration's move: raise Overflow on probed buckets of the new table
	mutGrow                      // growth: the published size and the growth count
	mutIndexStart                // a migration's start: allocate the table, publish the descriptor, the cursor
	mutIndexStep                 // a migration step's cursor (its moves are mutMigrate each)
	mutIndexEnd                  // a migration's end: publish the descriptor, count it, free the old table
)

// undoBudget is the records one mutation writes before the commit (pre)
// and after it (post). probed is how many buckets the key's probe passes
// between its home bucket and its slot.
func undoBudget(k mutKind, probed uint64) (pre, post uint64) {
	switch k {
	case mutInsert:
		return undoAlloc + probed, 0
	case mutOverwrite:
		return undoAlloc, undoFree
	case mutDelete:
		return 0, undoFree + probed
	case mutDrain:
		return undoDrain, 0
	case mutMigrate:
		return probed, 0
	case mutGrow:
		return 2, 0
	case mutIndexStart:
		return undoAlloc + undoDesc + 1, 0
	case mutIndexStep:
		return 1, 0
	case mutIndexEnd:
		return undoDesc + 1 + undoFree, 0
	default: // mutMove
		return undoMove, undoFree
	}
}

// budget reserves the records of one mutation. It fails with ErrTooLarge,
// changing nothing, when the log cannot hold them with what the
// transaction has written and reserved already.
func (t *txn) budget(k mutKind, probed uint64) error {
	pre, post := undoBudget(k, probed)
	if t.post == 0 {
		t.post = undoTxn
	}
	if uint64(t.nUndo)+pre+t.post+post > uint64(t.s.geo.MaxUndo) || t.nIntents >= t.s.geo.MaxIntents {
		return fmt.Errorf("%w: transaction outgrows the journal (%d intents, %d undo records)", ErrTooLarge, t.s.geo.MaxIntents, t.s.geo.MaxUndo)
	}
	t.post += post
	t.mark, t.markPre = t.nUndo, pre
	return nil
}

// replayBudget is the records that applying a committed journal writes,
// for recovery to check before it replays: the same post-commit numbers
// the writer reserved.
func (s *Store) replayBudget(its []layout.Intent) uint64 {
	need := uint64(undoApply)
	for i := range its {
		it := &its[i]
		switch {
		case it.Kind == layout.IntentMove:
			// publishes and clears slots only, unlogged
		case it.Kind == layout.IntentDelete:
			var d uint64 = layout.MaxProbe
			if v, err := s.view(); err == nil {
				if tb := v.tableOf(it.Slot); tb != nil {
					d = tb.distance(it.Home, tb.bucketOfSlot(it.Slot))
				}
			}
			_, post := undoBudget(mutDelete, d)
			need += post
		case it.Old != 0:
			_, post := undoBudget(mutOverwrite, 0)
			need += post
		}
	}
	return need
}

// checkBudget panics, under the invariants build tag, if the mutation
// planned since the last budget call wrote more records than it reserved.
func (t *txn) checkBudget() {
	if invariants && uint64(t.nUndo-t.mark) > t.markPre {
		panic(fmt.Sprintf("shmkv: invariant: a mutation wrote %d undo records, budgeted %d", t.nUndo-t.mark, t.markPre))
	}
}

// checkApplyBudget is checkBudget for apply: from record from on, at most
// the transaction's post-commit reservation.
func (t *txn) checkApplyBudget(from uint32, reserved uint64) {
	if invariants && uint64(t.nUndo-from) > reserved {
		panic(fmt.Sprintf("shmkv: invariant: apply wrote %d undo records, budgeted %d", t.nUndo-from, reserved))
	}
}
