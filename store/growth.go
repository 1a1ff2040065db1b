package store

// Growth: a store that becomes bigger while in use (GROWTH.md).
//
// Every process maps MaxSize bytes of the object once, at open, however
// long the object is; only the prefix the object backs is ever touched.
// To grow, the writer (holding the writer lock, journal idle):
//
//  1. extends the object (extendObject: fallocate, which reserves the new
//     memory, or ftruncate with NoReserve). This is outside the journal and
//     idempotent, and nothing uses the new bytes yet. A writer killed
//     after it leaves an object longer than the published size, which the
//     next growth uses as it is.
//  2. publishes the new size: one transaction that sets Grow.Size and
//     counts the growth, committed like any other. The heap ends at the
//     published size, so the never-used space above Meta.Top simply
//     becomes bigger.
//
// Nobody remaps: the new pages are already inside every process's mapping,
// and the kernel backs them once the object covers them. A reader bounds
// every offset it follows by the published size (limit). The writer
// stores that size only after the object covers it, and a slot names a
// block past the old size only after a later commit, so a reader that
// finds such a slot finds the new size too (x86-TSO keeps its loads in
// order, loadFence elsewhere). A published size that a hostile process
// raised past the object is still bounded by the mapping, and a fault
// there is turned into ErrCorrupt by the fault guard, never a crash.

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/layout"
)

// Growth steps: double while below growDoubleLimit, then add an eighth;
// never more than growMaxStep at once (extending the object by 64 MiB
// takes about 10 ms here, and one put pays for one step), rounded up to
// growAlign (a transparent huge page), capped at MaxSize.
const (
	growDoubleLimit = 1 << 30
	growMaxStep     = 64 << 20
	growAlign       = 2 << 20
)

// mapLength is the length each process maps for a store of up to maxSize
// bytes: whole pages (huge ones on hugetlbfs are whole already).
func mapLength(maxSize uint64) uint64 {
	return alignUp(maxSize, 4096)
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) / a * a }

// limit is the published size, the bound of every offset a reader
// follows: never past this process's mapping.
func (s *Store) limit() uint64 {
	return min(s.hdr.Grow.Size.Load(), s.mapLen)
}

// setSize makes size the writer's size. REQUIRES: wmu (or no other
// goroutine has the Store yet), size checked by refreshSize.
func (s *Store) setSize(size uint64) {
	s.geo.Size = size
	s.geo.HeapSize = size - s.geo.HeapOff
	s.lazyLimit = s.geo.HeapSize / 32
	if eagerFrees() {
		s.lazyLimit = 0
	}
	s.bigFree = bigFreeBlock()
}

// refreshSize takes the published size as the writer's, after checking
// it: aligned, between the first size and MaxSize, and inside the object
// (which it looks at again only when the size passes the longest it has
// seen). REQUIRES: the writer lock, or no writer able to change it.
func (s *Store) refreshSize() error {
	n := s.hdr.Grow.Size.Load()
	if n == s.geo.Size {
		return nil
	}
	if n < s.hdr.InitSize || n > s.maxSize || n%layout.EntryAlign != 0 || n <= s.geo.HeapOff {
		return fmt.Errorf("%w: published size %d outside [%d, %d]", ErrCorrupt, n, s.hdr.InitSize, s.maxSize)
	}
	if n > s.objLen {
		var st unix.Stat_t
		if err := unix.Fstat(s.obj.fd(), &st); err != nil {
			return fmt.Errorf("fstat %s: %w", s.obj.path, err)
		}
		if uint64(st.Size) < n {
			return fmt.Errorf("%w: published size %d past the object's %d bytes", ErrCorrupt, n, st.Size)
		}
		s.objLen = uint64(st.Size)
	}
	s.setSize(n)
	return nil
}

// nextSize is the size to grow to from size, for a heap that needs at
// least need bytes more: the growth step, or more when need asks, within
// growMaxStep and MaxSize. It is size when the store cannot grow.
func (s *Store) nextSize(size, need uint64) uint64 {
	step := size
	if size >= growDoubleLimit {
		step = size / 8
	}
	step = min(max(step, need), growMaxStep)
	align := uint64(growAlign)
	if s.obj.tlb {
		align = s.obj.pageSize()
	}
	return min(alignUp(size+step, align), s.maxSize)
}

// canGrow reports whether the store may still grow.
func (s *Store) canGrow() bool { return s.geo.Size < s.maxSize && !s.readOnly }

// grow enlarges the store by one step, or more when need (bytes of heap)
// asks, up to growMaxStep. REQUIRES: the writer lock, the journal idle.
func (s *Store) grow(need uint64) error {
	cur := s.geo.Size
	size := s.nextSize(cur, need)
	if size <= cur {
		return fmt.Errorf("%w: the store is at its maximum size, %s", ErrFull, units.FormatBytes(int64(s.maxSize)))
	}
	if err := extendObject(s.obj, int64(cur), int64(size), s.flags&layout.FlagNoReserve != 0); err != nil {
		return err
	}
	faultPoint("grow-extend")
	s.objLen = max(s.objLen, size)
	t := s.begin()
	if err := t.budget(mutGrow, 0); err != nil {
		t.rollback()
		return err
	}
	t.set(layout.GrowSizeOff, size)
	t.add(layout.GrowthsOff, 1)
	faultPoint("grow-publish")
	t.checkBudget()
	t.settled = true // a commit with no intent
	if err := t.commit(); err != nil {
		return err
	}
	return s.refreshSize()
}

// growFor grows the store until alloc would find need bytes, keeping the
// reserve for an entry of entry bytes, or until it cannot grow. It reports
// whether need fits. REQUIRES: the writer lock, the journal idle.
func (s *Store) growFor(need, entry uint64) (bool, error) {
	for !s.roomFor(need, entry) {
		if !s.canGrow() {
			return false, nil
		}
		if err := s.growStep(need, entry); err != nil {
			return false, err
		}
	}
	return true, nil
}

// growStep grows the store one step towards room for need bytes in the
// never-used space, with the reserve for an entry of entry bytes above
// them. REQUIRES: the writer lock, the journal idle, canGrow.
func (s *Store) growStep(need, entry uint64) error {
	top, err := s.top()
	if err != nil {
		return err
	}
	want := need + s.reserve(entry)
	return s.grow(want - min(want, s.geo.Size-top))
}

// Grow makes the store at least size bytes now, in growth steps (each
// its own transaction, at most 64 MiB), as writes do by themselves when
// they need room. It is for growing ahead of a load, and for `shmkv
// grow`. A size at or below the current one changes nothing; one past
// MaxSize is an error.
func (s *Store) Grow(size int64) error {
	return s.fail("grow", s.withLock(context.Background(), func(*txn) error {
		if size < 0 || uint64(size) > s.maxSize {
			return fmt.Errorf("%w: cannot grow to %s: the store's maximum size is %s (set at creation)", ErrFull, units.FormatBytes(size), units.FormatBytes(int64(s.maxSize)))
		}
		for s.geo.Size < uint64(size) {
			if err := s.grow(uint64(size) - s.geo.Size); err != nil {
				return err
			}
		}
		return nil
	}, false))
}
