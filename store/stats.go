package store

import (
	"fmt"
	"io/fs"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/layout"
)

// Stats describes a store and this process's view of it.
type Stats struct {
	Name    string
	Path    string
	Version uint32

	Size       int64 // bytes in the region now: its published size
	HeapSize   int64 // bytes for entries now
	Entries    int
	MaxEntries int
	// InitialSize and MaxSize are the region's size at creation and the
	// most it may grow to; Growths counts the times it grew, and
	// ObjectBytes is the object's length, which a writer that died while
	// growing may have left above Size (the next growth uses it).
	InitialSize int64
	MaxSize     int64
	Growths     uint64
	ObjectBytes int64
	// IndexBytes is the index's size (both tables while it grows), and
	// IndexCapacity the keys its current table holds before it grows
	// again. MaxEntries is the ceiling set at creation, 0 for none.
	// IndexMigrating says a migration to a bigger table is under way,
	// IndexMigrated how far (0 to 1), and IndexMigrations counts those
	// finished.
	IndexBytes      int64
	IndexCapacity   int
	IndexMigrating  bool
	IndexMigrated   float64
	IndexMigrations uint64
	// IndexOldBuckets and IndexMoved are the old table's buckets and how
	// many have moved, while a migration runs.
	IndexOldBuckets int64
	IndexMoved      int64

	KeyValueBytes int64 // key and value bytes of live entries
	BlockBytes    int64 // heap bytes in live entries' blocks (headers and padding included)
	FreeListBytes int64 // heap bytes in freed blocks, reusable
	TailBytes     int64 // heap bytes never used yet
	// Fill is BlockBytes / HeapSize.
	Fill float64
	// LargestFree is the largest run of free heap bytes in one piece: the
	// largest free block, or the never-used tail if larger.
	LargestFree int64
	// Fragmentation is the share of free heap bytes that are not in that
	// largest piece: 0 when all free space is one block. A put that finds
	// no piece big enough compacts first (Compact).
	Fragmentation float64
	// LazyFreeBytes is the part of FreeListBytes in lazy blocks: freed by
	// overwrites with a value of the same block size, put on their list
	// without merging with their neighbours, so that the next such
	// overwrite takes one back touching nothing else. They stay under a
	// 32nd of the heap, merge with a neighbour that is freed, and
	// compaction merges them all.
	LazyFreeBytes int64
	// Reserve is how much of the never-used tail puts leave for compaction
	// to move entries into: twice the largest entry block ever written, at
	// most a tenth of the heap.
	Reserve int64
	// BytesMoved and Compactions count the entry bytes compaction moved
	// and the transactions that moved them, since creation; CompactPasses
	// the passes over the whole heap.
	BytesMoved    int64
	Compactions   uint64
	CompactPasses uint64
	// OverheadPerEntry is the region's bytes per entry beyond its key and
	// value: block header and padding plus the index's share. The index is
	// sized for MaxEntries, so this is meaningful for a well-filled store.
	OverheadPerEntry float64

	HugePages HugePages
	NoReserve bool
	Populate  bool
	Lock      bool
	Mode      fs.FileMode // the object's permission now (fstat), not only at creation
	Owner     int         // the object's owner's uid
	OwnerName string      // and name, if known
	ReadOnly  bool        // this Store

	// Backing says what memory the store really got.
	Backing string
	// HugePageBytes is how much of this process's mapping the kernel backs
	// with huge pages right now.
	HugePageBytes int64
	// THPShmem is /sys/kernel/mm/transparent_hugepage/shmem_enabled.
	THPShmem string

	Writer   LockHolder
	Attached int // Stores attached now (read-only ones are not counted)
	// ForeignLocks counts process slots that another process holds a read
	// lock on. No Store takes one: it is someone with read access to the
	// object, and it keeps new writers from those slots (liveness ignores
	// it).
	ForeignLocks int
	Commits      uint64 // transactions committed since creation
	Recoveries   uint64 // journals repaired after a writer died
	TakeOvers    uint64 // writer locks taken over from dead holders, by any process
	// TakeOversHere counts those this Store took over.
	TakeOversHere int64

	Created    time.Time
	CreatorPID int
}

// Stats reports the store's sizes, options and writers (only Name once the
// Store is closed). It takes no lock,
// so while writers run its figures may be from slightly different instants.
func (s *Store) Stats() Stats {
	if s.closed.Load() {
		return Stats{Name: s.name}
	}
	var err error
	fg := s.guard()
	defer s.unguard(&fg, &err)
	h, g := s.hdr, &s.geo
	size := s.limit()
	st := Stats{
		Name: s.name, Path: s.obj.path, Version: layout.Version,
		Size: int64(size), HeapSize: int64(size - min(size, g.HeapOff)),
		InitialSize: int64(h.InitSize), MaxSize: int64(s.maxSize), Growths: h.Grow.Growths.Load(),

		Entries:       s.Len(),
		MaxEntries:    int(g.MaxEntries),
		KeyValueBytes: int64(h.Meta.KVBytes.Load()),
		BlockBytes:    int64(h.Meta.BlockUsed.Load()),
		FreeListBytes: int64(h.Meta.FreeBytes.Load()),
		LazyFreeBytes: int64(h.Alloc.LazyBytes.Load()),
		HugePages:     s.huge,
		NoReserve:     s.flags&layout.FlagNoReserve != 0,
		Populate:      s.populated,
		Lock:          s.locked,

		ReadOnly:      s.readOnly,
		THPShmem:      thpShmemSetting(),
		Commits:       h.Meta.Commits.Load(),
		Recoveries:    h.Meta.Recovered.Load(),
		TakeOvers:     h.Meta.TakeOvers.Load(),
		TakeOversHere: s.tookOver.Load(),
		Created:       time.Unix(0, h.CreatedNano),
		CreatorPID:    int(h.CreatorPID),
	}
	if top := h.Meta.Top.Load(); top >= g.HeapOff && top <= size {
		st.TailBytes = int64(size - top)
	}
	st.Fill = float64(st.BlockBytes) / float64(st.HeapSize)
	st.LargestFree = max(int64(s.largestFree(size)), st.TailBytes)
	if free := st.FreeListBytes + st.TailBytes; free > 0 {
		st.Fragmentation = 1 - float64(st.LargestFree)/float64(free)
	}
	st.Reserve = int64(min(2*h.Alloc.MaxBlock.Load(), uint64(st.HeapSize)/10))
	st.BytesMoved = int64(h.Alloc.Moved.Load())
	st.Compactions = h.Alloc.Compactions.Load()
	st.CompactPasses = h.Alloc.Passes.Load()
	if v, err := s.view(); err == nil {
		st.IndexBytes = int64((v.cur.n + v.old.n) * layout.BucketSize)
		st.IndexCapacity = int(v.cur.n * indexLoad)
		st.IndexMigrating = v.old.n != 0
		if st.IndexMigrating {
			moved := min(h.Alloc.IndexCursor.Load(), v.old.n)
			st.IndexMigrated = float64(moved) / float64(v.old.n)
			st.IndexOldBuckets, st.IndexMoved = int64(v.old.n), int64(moved)
		}
	}
	st.IndexMigrations = h.Alloc.Migrations.Load()
	if st.Entries > 0 {
		index := float64(st.IndexBytes)
		st.OverheadPerEntry = (float64(st.BlockBytes-st.KeyValueBytes) + index) / float64(st.Entries)
	}
	if s.huge != HugeOff || s.obj.tlb {
		// Reading /proc/self/smaps costs most of a millisecond: only
		// when huge pages were asked for.
		st.HugePageBytes = hugeMapped(s.m.addr())
	}
	st.Backing = s.backing(st.HugePageBytes)
	var fst unix.Stat_t
	if unix.Fstat(s.obj.fd(), &fst) == nil {
		st.ObjectBytes = fst.Size
	}
	if uid, perm, err := s.obj.owner(); err == nil {
		st.Mode, st.Owner, st.OwnerName = perm, uid, userName(uid)
	}
	st.Writer = s.lockHolder()
	st.ForeignLocks = s.foreignLocks()
	for i := range layout.NumSlots {
		if pid := s.procSlot(i).PID.Load(); pid != 0 {
			if s.ident != 0 && i == s.slot {
				st.Attached++
			} else if held, err := ofdHeld(s.obj.fd(), layout.SlotLockBase+int64(i)); err == nil && held {
				st.Attached++
			}
		}
	}
	return st
}

func (s *Store) backing(hugeBytes int64) string {
	reserve := "reserved (fallocate)"
	if s.flags&layout.FlagNoReserve != 0 {
		reserve = "sparse (NoReserve)"
	}
	switch {
	case s.obj.tlb:
		return fmt.Sprintf("hugetlbfs %s, %s, %s in huge pages", s.obj.path, reserve, units.FormatBytes(hugeBytes))
	case s.huge == HugeTransparent:
		return fmt.Sprintf("tmpfs %s, %s, transparent huge pages advised (shmem_enabled=%s), %s in huge pages",
			s.obj.path, reserve, thpShmemSetting(), units.FormatBytes(hugeBytes))
	}
	return fmt.Sprintf("tmpfs %s, %s, 4 KiB pages", s.obj.path, reserve)
}
