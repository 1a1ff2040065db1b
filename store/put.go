package store

// The write path: every mutation is a transaction (journal.go) run while
// holding the writer lock (lock_linux.go). Prepare allocates and fills the
// new entry where no reader can see it; the commit publishes it with one
// atomic store into its index slot; the block it replaced is freed after.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"time"
	"unsafe"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
)

// errMismatch ends a conditional mutation whose condition does not hold.
var errMismatch = errors.New("shmkv: condition not met")

// Put sets key to value.
func (s *Store) Put(key, value []byte) error {
	h := s.prefetchHome(key)
	return s.fail("put", s.update(func(t *txn) error { return t.putHashed(key, h, value, condNone, nil) }))
}

// Delete removes key, or returns ErrNotFound.
func (s *Store) Delete(key []byte) error {
	h := s.prefetchHome(key)
	return s.fail("delete", s.update(func(t *txn) error { return t.delHashed(key, h, nil) }))
}

// CompareAndSwap sets key to new if its value is old, and reports whether
// it did. old == nil means "only if key is absent"; a non-nil empty old
// matches an empty value.
func (s *Store) CompareAndSwap(key, old, new []byte) (bool, error) {
	cond := condEqual
	if old == nil {
		cond = condAbsent
	}
	h := s.prefetchHome(key)
	err := s.update(func(t *txn) error { return t.putHashed(key, h, new, cond, old) })
	if errors.Is(err, errMismatch) {
		return false, nil
	}
	return err == nil, s.fail("compare-and-swap", err)
}

// CompareAndDelete deletes key if its value is old, and reports whether it
// did. It returns false, ErrNotFound if key is absent.
func (s *Store) CompareAndDelete(key, old []byte) (bool, error) {
	h := s.prefetchHome(key)
	err := s.update(func(t *txn) error { return t.delHashed(key, h, old) })
	if errors.Is(err, errMismatch) {
		return false, nil
	}
	return err == nil, s.fail("compare-and-delete", err)
}

type cond uint8

const (
	condNone   cond = iota
	condAbsent      // only if the key is absent
	condEqual       // only if the key's value equals old
)

// ValueLimit is the longest value that a key of keyLen bytes can ever
// have in this store: a tool reading a value from a stream reads at most
// one byte more before it knows the value cannot fit.
func (s *Store) ValueLimit(keyLen int) int {
	room := int64(s.maxSize-s.geo.HeapOff) - layout.EntryHeader - int64(keyLen)
	return int(max(min(room, MaxValueSize), 0))
}

func (s *Store) checkSizes(key, value []byte) error {
	if len(key) > MaxKeySize {
		return fmt.Errorf("%w: key of %d bytes, at most %d", ErrTooLarge, len(key), MaxKeySize)
	}
	if len(value) > MaxValueSize {
		return fmt.Errorf("%w: value of %d bytes, at most %d", ErrTooLarge, len(value), MaxValueSize)
	}
	if need, heap := layout.BlockSize(uint64(len(key)), uint64(len(value))), s.maxSize-s.geo.HeapOff; need > heap {
		return fmt.Errorf("%w: entry of %d bytes cannot fit a heap of %d bytes", ErrTooLarge, need, heap)
	}
	return nil
}

// update runs fn as one transaction under the writer lock.
func (s *Store) update(fn func(t *txn) error) error {
	return s.withLock(context.Background(), fn, true)
}

// withLock runs fn holding the writer lock, with the journal idle (repaired
// first if the last holder died mid-transaction). With tx, fn plans one
// transaction, committed if fn returns nil and rolled back if not;
// without, fn gets nil and runs transactions of its own (begin, commit or
// rollback), as many as it likes.
func (s *Store) withLock(ctx context.Context, fn func(t *txn) error, tx bool) error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.readOnly {
		return ErrReadOnly
	}
	if !s.wmu.TryLock() {
		if err := s.lockSlowly(ctx); err != nil {
			return err
		}
	}
	return s.underLock(ctx, fn, tx)
}

// underLock is withLock once wmu is held. NB: its defers are few and so
// are its returns, so the compiler open-codes them: through the runtime's
// defer records they cost a put about 480 instructions, a tenth of it.
func (s *Store) underLock(ctx context.Context, fn func(t *txn) error, tx bool) (err error) {
	defer s.wmu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	// A write to a page the kernel cannot back (a sparse store when
	// /dev/shm is full, or an object truncated by someone) raises SIGBUS;
	// with panic-on-fault it becomes a panic, which the deferred functions
	// below turn into a repair from the journal and an error.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	var repairErr error
	defer func() {
		if r := recover(); r != nil {
			class := ErrCorrupt
			if s.flags&layout.FlagNoReserve != 0 {
				class = ErrFull
			}
			err = faultError(r, class)
			if repairErr != nil {
				err = fmt.Errorf("%w; repair failed: %w", err, repairErr)
			}
		}
	}()
	if err := s.lockWriter(ctx); err != nil {
		return err
	}
	defer s.unlockWriter()
	defer func() {
		if r := recover(); r != nil {
			// Roll the abandoned transaction back (or forward) while we still
			// hold the lock, then let the fault reach the handler above.
			repairErr = s.repairAfterPanic()
			panic(r)
		}
	}()
	return s.transact(fn, tx)
}

// transact runs fn holding the writer lock, with the journal idle
// (repaired first if the last holder died mid-transaction): as one
// transaction with tx, else as fn likes (see withLock).
func (s *Store) transact(fn func(t *txn) error, tx bool) error {
	// The size first: recovery may touch what another writer grew into;
	// then again, as recovery may have undone a growth.
	if err := s.refreshSize(); err != nil {
		return err
	}
	if err := s.repairIfNeeded(); err != nil {
		return err
	}
	if err := s.refreshSize(); err != nil {
		return err
	}
	if !tx {
		return fn(nil)
	}
	if err := s.tendIndex(); err != nil {
		return err
	}
	t := s.begin()
	err := fn(t)
	if err == nil {
		err = t.poison
	}
	if err != nil {
		t.rollback()
		return err
	}
	return t.commit()
}

// lockSlowly takes wmu, which another goroutine of this Store holds: it
// fails at once if that goroutine is this one (a Store method called from
// inside Update's fn), and gives up at the write's deadline.
func (s *Store) lockSlowly(ctx context.Context) error {
	if g := s.updateG.Load(); g != 0 && g == curG(nil) {
		return ErrInUpdate
	}
	start := time.Now()
	giveUp := s.writeDeadline(ctx, start)
	if giveUp.IsZero() && ctx.Done() == nil {
		s.wmu.Lock()
		return nil
	}
	for pause := time.Microsecond; !s.wmu.TryLock(); pause = min(2*pause, time.Millisecond) {
		if ctx.Err() != nil || (!giveUp.IsZero() && !time.Now().Before(giveUp)) {
			cause := ctx.Err()
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			return fmt.Errorf("%w: %w: another goroutine of this process held the Store's writer for the %v this write waited",
				ErrLockTimeout, cause, time.Since(start).Round(time.Millisecond))
		}
		time.Sleep(pause)
	}
	return nil
}

// goid is the running goroutine's id, from its stack header, which
// runtime.Stack writes into buf (it escapes: Update passes a buffer of the
// Store's, so it allocates nothing). It costs about a microsecond: only
// Update, which runs user code holding the writer, and the path that found
// the writer taken, ask for it.
func goid(buf []byte) uint64 {
	b := buf[:runtime.Stack(buf, false)]
	b = bytes.TrimPrefix(b, []byte("goroutine "))
	var id uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			break
		}
		id = id*10 + uint64(c-'0')
	}
	return id
}

// repairAfterPanic runs recovery for a transaction this process abandoned.
func (s *Store) repairAfterPanic() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: fault during repair: %v", ErrCorrupt, r)
		}
	}()
	return s.recoverJournal()
}

// put plans key=value: the new block is filled and the intent recorded.
func (t *txn) put(key, value []byte, c cond, old []byte) error {
	return t.putHashed(key, hashKey(key), value, c, old)
}

// putHashed is put for a key whose hash h the caller has at hand.
func (t *txn) putHashed(key []byte, h uint64, value []byte, c cond, old []byte) error {
	s := t.s
	if t.poison != nil {
		return t.poison
	}
	if err := s.checkSizes(key, value); err != nil {
		return err
	}
	size := layout.BlockSize(uint64(len(key)), uint64(len(value)))
	if t.batch == nil {
		// (In a batch no fence drains the store buffer between puts, so
		// the block's misses overlap the next put's without it.)
		s.prefetchBlock(size)
	}
	p, err := t.findHashed(key, h)
	if err != nil {
		return err
	}
	switch c {
	case condAbsent:
		if p.found {
			return errMismatch
		}
	case condEqual:
		if !p.found || !bytes.Equal(s.value(p.b), old) {
			return errMismatch
		}
	}
	if !p.found {
		n := int64(s.hdr.Meta.Count.Load()) + t.inserts
		if m := s.geo.MaxEntries; m != 0 && n >= int64(m) {
			return fmt.Errorf("%w: %d entries, the most this store holds (MaxEntries)", ErrFull, n)
		}
		if !p.deleted && (p.slot == 0 || n >= int64(s.indexCapacity())) {
			// The index must grow first (migrate.go).
			if t.replaying || t.noCompact {
				if p.slot == 0 {
					return fmt.Errorf("%w: no free index slot within %d buckets of the key's home", ErrFull, layout.MaxProbe)
				}
				return fmt.Errorf("%w: %d entries, the most the index can hold in this store's room", ErrFull, n)
			}
			if err := t.makeRoom(0, true); err != nil {
				return err
			}
			return t.putAgain(key, value, c, old)
		}
	}
	kind := mutInsert
	if p.found {
		kind = mutOverwrite
	}
	if err := t.budget(kind, p.probed); err != nil {
		return err
	}
	var off uint64
	if t.replaying {
		// Planned once already, when the reserve was kept: now it only
		// has to fit.
		off, err = t.allocWith(size, 0)
	} else {
		off, err = t.alloc(size)
	}
	if err == errNoRoom {
		if t.replaying || t.noCompact {
			return s.fullError(size)
		}
		// Room may be scattered over free blocks that live ones keep
		// apart: compact, and plan this mutation again on the new heap.
		if err := t.makeRoom(size, false); err != nil {
			return err
		}
		return t.putAgain(key, value, c, old)
	}
	if err != nil {
		return err
	}
	faultPoint("alloc")
	e := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(off))
	if invariants && e.Bytes() != size {
		// apply counts the block as size bytes (newBlock).
		panic(fmt.Sprintf("shmkv: invariant: alloc(%d) gave a block of %d bytes", size, e.Bytes()))
	}
	e.KeyLen = uint16(len(key))
	e.Slack = uint8(e.Bytes() - layout.EntryHeader - uint64(len(key)) - uint64(len(value)))
	e.Flags = 0
	b, _ := s.r.Bytes(offsetptr.Offset(off+layout.EntryHeader), uint64(len(key)+len(value)))
	copy(b, key)
	copy(b[len(key):], value)
	e.Sum = layout.EntrySum(p.h, value)
	// Even Seq: the entry is whole. Readers can only reach it after the
	// commit publishes it.
	storeHalf(&e.Seq, s.nextSeq(false))
	faultPoint("filled")
	w := layout.SlotWord(p.tag, off)
	if p.found {
		t.addIntent(layout.IntentOverwrite, &p, w, newBlock{size, uint64(len(key) + len(value))})
	} else {
		// Also when re-inserting a key deleted earlier in the batch: that
		// delete's apply lowers the counts its probe raised.
		t.probe(p.tbl, p.home, p.probed)
		p.word = 0
		t.addIntent(layout.IntentInsert, &p, w, newBlock{size, uint64(len(key) + len(value))})
		t.inserts++
	}
	faultPoint("intent")
	t.checkBudget()
	return nil
}

// putAgain plans the put again after makeRoom, which set noCompact.
// (NB: not a defer in put: a function with defers and many returns gets
// no open-coded defers, and every put then paid for deferreturn.)
func (t *txn) putAgain(key, value []byte, c cond, old []byte) error {
	err := t.put(key, value, c, old)
	t.noCompact = false
	return err
}

// del plans deleting key (if its value is old, when old != nil).
func (t *txn) del(key, old []byte) error { return t.delHashed(key, hashKey(key), old) }

// delHashed is del for a key whose hash h the caller has at hand.
func (t *txn) delHashed(key []byte, h uint64, old []byte) error {
	s := t.s
	if t.poison != nil {
		return t.poison
	}
	if len(key) > MaxKeySize {
		return ErrNotFound
	}
	p, err := t.findHashed(key, h)
	if err != nil {
		return err
	}
	if !p.found {
		return ErrNotFound
	}
	if old != nil && !bytes.Equal(s.value(p.b), old) {
		return errMismatch
	}
	if err := t.budget(mutDelete, p.probed); err != nil {
		return err
	}
	t.addIntent(layout.IntentDelete, &p, 0, newBlock{})
	t.inserts--
	faultPoint("intent")
	t.checkBudget()
	return nil
}

// prefetchBlock asks for the cache lines of the block alloc will most
// likely hand out for size bytes, the head of its lazy stack or else of its
// class's list, so that they arrive while find waits for the index and the
// old entry. Without
// it a lone put waited for them at its end: releasing the writer lock is
// a fence, which waits for every store still missing the cache. A guess:
// a head that is not taken, or not a block at all, costs only the lines
// fetched (prefetch never faults).
func (s *Store) prefetchBlock(size uint64) {
	c := layout.ClassOf(size)
	off := s.lazyHead(size, c)
	if off == 0 {
		off = s.hdr.FreeLists[c].Load()
	}
	if off == 0 || off >= s.geo.Size || size > maxPrefetch {
		return
	}
	start := s.m.addr() + uintptr(off)
	end := start + uintptr(size)
	start &^= 63
	prefetch(start, (end-start+63)/64)
}

// maxPrefetch bounds prefetchBlock: past a few lines, the copy itself
// streams and the hardware prefetcher keeps up.
const maxPrefetch = 512

// prefetchHome returns key's hash, having asked for the cache line of its
// home bucket in the index as this process last saw it: the line arrives
// while the writer lock is taken and the transaction begun, instead of
// after. (A mutation of one key that misses the cache waits for the
// bucket, then the entry it names, then the new block; this and
// prefetchBlock leave it the one wait that depends on another.)
func (s *Store) prefetchHome(key []byte) uint64 {
	h := hashKey(key)
	if v := s.idx.Load(); v != nil && len(v.cur.b) != 0 {
		prefetch(uintptr(unsafe.Pointer(&v.cur.b[v.cur.home(h)])), 1)
	}
	return h
}
