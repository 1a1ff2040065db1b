package store

// The writer lock: a binary semaphore on a 32-bit futex word in the region
// (layout.Lock.Word), shared by every process that maps the store.
//
// The word's value is the holder's identity (slot and generation), so the
// holder is recorded by the very CAS that acquires the lock: there is no
// instant at which the lock is held by nobody-knows-whom, as there is with a
// sem_t or with a mutex whose owner field is written after locking. A waiter
// that finds the holder dead takes the lock over with a CAS from the dead
// holder's identity to its own, never by releasing it, so at most one
// process can win. The winner then repairs the region from the journal
// before doing anything else.
//
// Uncontended, acquire is one CAS and release one swap: no system call.
// Contended, waiters set WaitersBit and sleep in FUTEX_WAIT (shared, not
// FUTEX_PRIVATE_FLAG, so it works across processes; the kernel keys it on
// the object and offset, not the address) for at most LockTimeout, then
// check whether the holder is alive. This is Drepper's "mutex3" with the
// identity in place of the constant 1.

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/layout"
)

const (
	futexWait = 0
	futexWake = 1
)

// lockWriter takes the writer lock, waiting for a live holder until the
// write's deadline (ctx, or Options.WriteTimeout; none by default).
// REQUIRES: s.wmu held, so at most one goroutine of this Store is here.
// The caller then runs repairIfNeeded before touching anything else.
func (s *Store) lockWriter(ctx context.Context) error {
	w := &s.hdr.Lock.Word
	if w.CompareAndSwap(0, s.ident) {
		return nil
	}
	return s.lockSlow(ctx, w)
}

// writeDeadline is when a write that starts now must give up waiting:
// the sooner of ctx's deadline and Options.WriteTimeout, or zero for none.
func (s *Store) writeDeadline(ctx context.Context, start time.Time) time.Time {
	var d time.Time
	if s.writeTimeout > 0 {
		d = start.Add(s.writeTimeout)
	}
	if cd, ok := ctx.Deadline(); ok && (d.IsZero() || cd.Before(d)) {
		d = cd
	}
	return d
}

// lockWaitError is the error of a write that gave up waiting for the
// writer lock: it says who holds it.
func (s *Store) lockWaitError(ctx context.Context, start time.Time) error {
	cause := ctx.Err()
	if cause == nil {
		cause = context.DeadlineExceeded
	}
	h := s.lockHolder()
	who := "a process that could not be identified"
	if h.PID != 0 {
		who = fmt.Sprintf("pid %d", h.PID)
		if !h.Alive {
			who += " (being taken over)"
		}
	}
	return fmt.Errorf("%w: %w: the writer lock was held by %s for the %v this write waited", ErrLockTimeout, cause, who, time.Since(start).Round(time.Millisecond))
}

func (s *Store) lockSlow(ctx context.Context, w *atomic.Uint32) error {
	start := time.Now()
	giveUp := s.writeDeadline(ctx, start)
	deadline := start.Add(s.lockTimeout)
	for {
		v := w.Load()
		if v == 0 {
			// Take it marked contended: others may still sleep on it.
			if w.CompareAndSwap(0, s.ident|layout.WaitersBit) {
				return nil
			}
			continue
		}
		if v&layout.WaitersBit == 0 {
			if !w.CompareAndSwap(v, v|layout.WaitersBit) {
				continue
			}
			v |= layout.WaitersBit
		}
		if v&^layout.WaitersBit == s.ident {
			// This Store does not hold the lock (wmu is ours, and we are
			// here), so the word is stale or forged by another process:
			// take it over like a dead holder's, and repair.
			if w.CompareAndSwap(v, s.ident|layout.WaitersBit) {
				s.tookOver.Add(1)
				s.hdr.Meta.TakeOvers.Add(1)
				return nil
			}
			continue
		}
		if ctx.Err() != nil || (!giveUp.IsZero() && !time.Now().Before(giveUp)) {
			return s.lockWaitError(ctx, start)
		}
		wait := time.Until(deadline)
		if !giveUp.IsZero() {
			wait = min(wait, time.Until(giveUp))
		}
		if ctx.Done() != nil {
			wait = min(wait, 20*time.Millisecond) // to see a cancel
		}
		if !time.Now().Before(deadline) {
			if !s.alive(v) {
				// Take over from the dead holder. Only one CAS from v wins.
				if w.CompareAndSwap(v, s.ident|layout.WaitersBit) {
					s.tookOver.Add(1)
					s.hdr.Meta.TakeOvers.Add(1)
					faultPoint("takeover")
					return nil
				}
				continue
			}
			deadline = time.Now().Add(s.lockTimeout)
			continue
		}
		if wait <= 0 {
			continue // the write's deadline: checked above
		}
		ts := unix.NsecToTimespec(int64(wait))
		futex(w, futexWait, v, &ts)
	}
}

// unlockWriter releases the writer lock and wakes one waiter if any sleeps.
func (s *Store) unlockWriter() {
	w := &s.hdr.Lock.Word
	v := w.Swap(0)
	if v&layout.WaitersBit != 0 {
		futex(w, futexWake, 1, nil)
	}
}

// LockHolder describes who holds a store's writer lock.
type LockHolder struct {
	Held  bool   // the lock word is not 0
	PID   int    // holder's pid, 0 if unknown
	Slot  int    // holder's process slot
	Alive bool   // the holder is still attached
	Word  uint32 // raw lock word
}

// Writer reports who holds the store's writer lock, and whether that
// process is still alive. It costs a system call or two. The zero
// LockHolder once the Store is closed.
func (s *Store) Writer() LockHolder {
	if s.closed.Load() {
		return LockHolder{}
	}
	var err error
	g := s.guard()
	defer s.unguard(&g, &err)
	return s.lockHolder()
}

func (s *Store) lockHolder() LockHolder {
	v := s.hdr.Lock.Word.Load()
	h := LockHolder{Word: v, Held: v != 0}
	if v == 0 {
		return h
	}
	slot, _, ok := splitIdentity(v)
	if !ok {
		return h
	}
	h.Slot = slot
	h.PID = int(s.procSlot(slot).PID.Load())
	h.Alive = s.alive(v)
	return h
}
