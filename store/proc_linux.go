package store

// Attached processes. Each open Store claims a process slot by taking the
// OFD write lock on its own byte of the object (layout.SlotLockBase+slot),
// as LMDB does in its lock file: the kernel drops the lock when the last
// descriptor of that open file description closes, including when the
// process is SIGKILLed, and an OFD lock is not fooled by pid reuse or pid
// namespaces. The slot also records pid and start time, the fallback
// liveness test where OFD locks are unavailable, and what stat shows.

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
)

const genMask = 1<<layout.GenBits - 1

// identity is what the lock word holds for the Store in slot with
// generation gen: never 0, never with WaitersBit.
func identity(slot int, gen uint32) uint32 {
	return uint32(slot+1) | (gen&genMask)<<layout.SlotBits
}

// splitIdentity undoes identity; ok is false for a word no Store writes.
func splitIdentity(id uint32) (slot int, gen uint32, ok bool) {
	id &^= layout.WaitersBit
	s := int(id&(1<<layout.SlotBits-1)) - 1
	return s, id >> layout.SlotBits, s >= 0 && s < layout.NumSlots
}

// ofdLock takes (typ F_WRLCK) or drops (F_UNLCK) the OFD lock on one byte
// without waiting. It reports false, nil when another description holds it.
func ofdLock(fd int, at int64, typ int16) (bool, error) {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: at, Len: 1}
	err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
		return false, nil
	}
	if err != nil {
		return false, os.NewSyscallError("fcntl(F_OFD_SETLK)", err)
	}
	return true, nil
}

// ofdHeld reports whether another open file description holds a write
// lock on the byte at. Read locks do not count: a slot's owner takes a
// write lock, and anyone who can read the object can take a read lock,
// which must not make a dead holder look alive. (A read-lock query
// conflicts only with write locks.)
func ofdHeld(fd int, at int64) (bool, error) {
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0, Start: at, Len: 1}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk); err != nil {
		return false, os.NewSyscallError("fcntl(F_OFD_GETLK)", err)
	}
	return lk.Type == unix.F_WRLCK, nil
}

// foreignReadLocks counts the bytes in [from, from+n) on which another
// open file description holds a read lock: no Store takes one there, so
// each is some other process's doing (a read-only user can). It asks byte
// by byte: F_OFD_GETLK over a range reports one conflicting lock, the
// first in the kernel's list, not the lowest, so a range query undercounts.
func foreignReadLocks(fd int, from, n int64) int {
	count := 0
	for at := from; at < from+n; at++ {
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: at, Len: 1}
		if unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk) != nil {
			break
		}
		if lk.Type == unix.F_RDLCK {
			count++
		}
	}
	return count
}

// foreignLocks is foreignReadLocks over the process slots, cheaply: the
// bytes of attached slots hold their owners' write locks, which leave no
// room for a read lock, and each run of unattached slots is asked about in
// one query first, byte by byte only when it holds some lock.
func (s *Store) foreignLocks() int {
	fd, count := s.obj.fd(), 0
	for i := 0; i < layout.NumSlots; {
		if s.procSlot(i).PID.Load() != 0 {
			i++
			continue
		}
		j := i + 1
		for j < layout.NumSlots && s.procSlot(j).PID.Load() == 0 {
			j++
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: layout.SlotLockBase + int64(i), Len: int64(j - i)}
		if unix.FcntlFlock(uintptr(fd), unix.F_OFD_GETLK, &lk) == nil && lk.Type != unix.F_UNLCK {
			count += foreignReadLocks(fd, layout.SlotLockBase+int64(i), int64(j-i))
		}
		i = j
	}
	return count
}

var selfStart = startTime(os.Getpid())

func (s *Store) procSlot(i int) *layout.ProcSlot {
	return offsetptr.MustAt[layout.ProcSlot](s.r, offsetptr.Offset(s.geo.SlotsOff+uint64(i)*layout.ProcSlotSize))
}

// attach claims a free process slot for this Store.
func (s *Store) attach() error {
	pid := os.Getpid()
	first := pid % layout.NumSlots
	for i := range layout.NumSlots {
		slot := (first + i) % layout.NumSlots
		ok, err := ofdLock(s.obj.fd(), layout.SlotLockBase+int64(slot), unix.F_WRLCK)
		if err != nil {
			return err
		}
		if !ok {
			continue // another Store's, or read-locked by someone else
		}
		// INVARIANT: the generation changes before this slot's new owner can
		// take the writer lock, so a lock word naming the slot's previous
		// owner no longer matches it, and waiters see that owner is gone.
		ps := s.procSlot(slot)
		gen := ps.Gen.Add(1)
		if identity(slot, gen) == s.hdr.Lock.Word.Load()&^layout.WaitersBit {
			// The generation wrapped onto a dead holder's identity: skip it,
			// or waiters would take us for that holder and wait forever.
			gen = ps.Gen.Add(1)
		}
		ps.PID.Store(uint32(pid))
		ps.Start.Store(selfStart)
		ps.Attached.Store(time.Now().UnixNano())
		s.slot, s.ident = slot, identity(slot, gen)
		return nil
	}
	if n := foreignReadLocks(s.obj.fd(), layout.SlotLockBase, layout.NumSlots); n > 0 {
		return fmt.Errorf("%w: %d of the %d process slots are read-locked by processes that are not shmkv writers (a user with read access can do this)",
			ErrBusy, n, layout.NumSlots)
	}
	return ErrBusy
}

// detach gives the slot up. The OFD lock goes with the descriptor.
func (s *Store) detach() {
	if s.ident == 0 {
		return
	}
	ps := s.procSlot(s.slot)
	ps.PID.Store(0)
	ofdLock(s.obj.fd(), layout.SlotLockBase+int64(s.slot), unix.F_UNLCK)
	// NB: ident stays: Stats may be reading it, and nothing runs after.
}

// alive reports whether the Store that wrote identity id into the lock word
// is still attached.
func (s *Store) alive(id uint32) bool {
	slot, gen, ok := splitIdentity(id)
	if !ok {
		return false // no Store writes such a word: treat its writer as dead
	}
	ps := s.procSlot(slot)
	if ps.Gen.Load()&genMask != gen {
		return false // the slot was given up and claimed again since
	}
	held, err := ofdHeld(s.obj.fd(), layout.SlotLockBase+int64(slot))
	if err == nil {
		return held
	}
	// Fallback without OFD locks: pid plus start time, which a reused pid
	// does not match.
	pid := int(ps.PID.Load())
	return pid != 0 && startTime(pid) == ps.Start.Load()
}
