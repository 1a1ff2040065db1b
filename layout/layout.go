package layout

import (
	"math/bits"
	"sync/atomic"
	"unsafe"
)

// Format identity.
const (
	// Magic is the first word of every shmkv region: "SHMKV\x00db" read as a
	// little-endian uint64. It is stored last at creation, so a region whose
	// Magic is 0 is still being initialised.
	Magic uint64 = 0x6264_00_564b4d4853
	// MagicInit marks a region whose creator has started but not finished
	// initialising it: "SHMKVini". A region left so with no creator alive
	// (no OFD lock on InitLockByte) may be initialised again by another.
	MagicInit uint64 = 0x696e69564b4d4853
	// Version is the format version; bump it on every layout change.
	// Version 4 added Lock.Snapshot: a writer of version 3 would not copy
	// pages for a snapshot in progress, so the two must not share a store.
	// Version 5 added lazy free blocks (SizeLazy, Alloc.LazyBytes),
	// version 6 the entry checksum (Entry.Sum, a 16-byte header), version
	// 7 the fields of growth (MaxSize, InitSize, Grow; store/GROWTH.md): a
	// version 6 writer would ignore a published size past its own.
	// Version 8 moved lazy blocks onto stacks of their own (LazyHeads) and
	// added big free blocks (BigSizeOff), whose size passes Entry.Size's
	// 32 bits.
	Version uint32 = 8
)

// Geometry constants.
const (
	HeaderSize   = 4096
	CacheLine    = 64
	EntryAlign   = 8
	EntrySize    = 32 // the smallest block: a free block's links at 8 and 16, its footer at Size-8
	EntryHeader  = 16 // the Entry struct; the key starts right after it
	BucketSlots  = 7
	BucketSize   = 64
	ProcSlotSize = 32
	IntentSize   = 64
	UndoSize     = 16
	JournalHead  = 64

	// NumSlots is how many processes (more exactly, open Stores) can be
	// attached at once. Slot numbers plus one fit SlotBits bits of the lock
	// word.
	NumSlots = 1023
	SlotBits = 10
	// GenBits is how many bits of a slot's generation the lock word keeps.
	GenBits = 21

	// MaxProbe bounds a key's probe sequence, in buckets. It bounds every
	// lookup, so a corrupt index cannot make a reader loop. At the index's
	// full load (6 keys per 7-slot bucket) linear probing has a long tail:
	// a million keys reach about 70 buckets, so leave room.
	MaxProbe = 256

	// NumClasses is the number of free-list size classes: NumExact exact
	// classes of 16..1016 bytes, then 8 per power of two from 1024 up to
	// 2^32, past the largest block (Entry.Size is 32 bits).
	NumClasses = NumExact + 8*(31-10+1)
	// NumExact is the number of exact classes, each of one block size,
	// and of lazy stacks (LazyHeads).
	NumExact = 126
	// ExactClassLimit: blocks below it have a class of their own size.
	ExactClassLimit = 1024
	// BigFree is the size from which a free block is big: Entry.Size
	// holds its flags only (its size bits are 0), and its size is the
	// word at BigSizeOff; its footer is its size | FooterBig. Only tagged
	// free blocks are ever that large (entries are at most about 1 GiB).
	BigFree    = 1 << 32
	BigSizeOff = 24
	FooterBig  = 1 << 63

	// Offsets inside the header page.
	ChecksumOff  = 248
	LockOff      = 256
	SnapshotOff  = LockOff + 8
	MetaOff      = 320
	FreeListsOff = 384
	LazyHeadsOff = FreeListsOff + NumClasses*8
	AllocOff     = 3840
	GrowOff      = 3968
	IndexDescOff = 4032
)

// Flags in Header.Flags: the creation options that live in the region.
const (
	FlagNoReserve uint32 = 1 << iota
	FlagPopulate
	FlagLock
)

// HugePages values in Header.HugePages.
const (
	HugeOff uint32 = iota
	HugeTransparent
	HugeTLB
)

// Header is the region's first page.
type Header struct {
	Magic       atomic.Uint64 // 0
	Version     uint32        // 8
	HeaderSize  uint32        // 12
	Size        uint64        // 16: bytes in the region
	Flags       uint32        // 24
	HugePages   uint32        // 28
	Mode        uint32        // 32: permission bits at creation
	NumSlots    uint32        // 36
	SlotsOff    uint64        // 40
	JournalOff  uint64        // 48
	MaxIntents  uint32        // 56
	MaxUndo     uint32        // 60
	IndexOff    uint64        // 64
	NumBuckets  uint64        // 72
	MaxEntries  uint64        // 80
	HeapOff     uint64        // 88
	HeapSize    uint64        // 96
	CreatedNano int64         // 104
	CreatorPID  uint32        // 112
	_           uint32        // 116
	MaxSize     uint64        // 120: the most bytes the region may grow to
	InitSize    uint64        // 128: bytes at creation
	_           [ChecksumOff - 136]byte
	Checksum    uint64 // 248: xxhash64 of bytes [8, 248)

	Lock      Lock                      // 256
	Meta      Meta                      // 320
	FreeLists [NumClasses]atomic.Uint64 // 384: head offset of each class's free list
	// LazyHeads is the head of each exact class's lazy stack (alloc.go).
	LazyHeads [NumExact]atomic.Uint64 // 2800
	// Clean is the heap offset from which the region has never been
	// written: the highest Meta.Top ever (the object's new bytes are
	// zeros, and nothing writes above Top). Stored before the bytes below
	// it are, never undone. A new index table allocated above it needs no
	// clearing.
	Clean atomic.Uint64 // 3808
	_     [AllocOff - LazyHeadsOff - NumExact*8 - 8]byte
	Alloc Alloc // 3840
	Grow  Grow  // 3968
	Index Index // 4032
}

// Grow is the region's published size, alone on its cache line with the
// index's generation: readers load both on every lookup
// (store/GROWTH.md). Only the writer changes them. Size changes in a
// journaled step after the object has been extended, and never exceeds
// the object's length or MaxSize.
type Grow struct {
	Size    atomic.Uint64 // 0: bytes of the region in use, published
	Growths atomic.Uint64 // 8: growths committed
	// IndexGen selects the index descriptor in force, Index.Desc[IndexGen
	// & 1], and rises by one each time the writer publishes another (it
	// fills the other one first). It never goes back: undo moves it
	// forward to the old value's parity (UndoGen). A reader that loads
	// the same IndexGen before and after a lookup used tables that were
	// not freed meanwhile.
	IndexGen atomic.Uint64 // 16
	_        [CacheLine - 24]byte
}

// Index holds the two index descriptors (see Grow.IndexGen).
type Index struct {
	Desc [2]IndexDesc
}

// IndexDesc describes the index tables: the current one, and while a
// migration runs the old one, whose keys move to the current one bucket by
// bucket (Alloc.IndexCursor). The first table lies at the header's
// IndexOff; later ones are heap blocks whose Entry.Flags is EntryIndex,
// with the buckets at IndexTableOff in the block.
type IndexDesc struct {
	Off        atomic.Uint64 // 0: the current table's first bucket
	Buckets    atomic.Uint64 // 8
	OldOff     atomic.Uint64 // 16: the table being migrated (0: none)
	OldBuckets atomic.Uint64 // 24
}

// IndexDescAt is the offset of Index.Desc[gen & 1], the descriptor that
// IndexGen gen selects; its words are Off, Buckets, OldOff, OldBuckets.
func IndexDescAt(gen uint64) uint64 { return IndexDescOff + (gen&1)*IndexDescSize }

// IndexDescSize is the size of an IndexDesc.
const IndexDescSize = 32

// EntryIndex in Entry.Flags marks a heap block that holds an index table.
const EntryIndex uint8 = 1

// IndexTableBuckets is where the buckets start in an index table's block
// at off: the first cache line past the block's header and free-list
// links (bytes 0-23), so that freeing the block writes no bucket.
func IndexTableBuckets(off uint64) uint64 { return (off + 24 + CacheLine - 1) &^ (CacheLine - 1) }

// IndexTableBlock is the block size of a table of n buckets: room for the
// header, the alignment, the buckets and the footer a free block has. A
// block's size must fit Entry.Size: MaxIndexBuckets is the most a table
// holds (about 400 million keys).
func IndexTableBlock(n uint64) uint64 { return 2*CacheLine + n*BucketSize }

const MaxIndexBuckets = (1<<32 - 2*CacheLine - EntryAlign) / BucketSize

// ClassWords is the number of words in Alloc.NonEmpty.
const ClassWords = (NumClasses + 63) / 64

// AllocSize is the size of Alloc.
const AllocSize = 9*8 + maxClassWords*8

// maxClassWords is the room Alloc keeps for NonEmpty: what version 7's
// classes took, so that the words after it keep their offsets.
const maxClassWords = 7

// Alloc is the allocator's state beyond the free lists. Only the writer
// writes it.
type Alloc struct {
	// SeqNext is the last sequence number handed out. Every Entry.Seq the
	// writer stores is the next one of the parity it needs, so a given
	// (offset, Seq) pair never comes back (until the 32 bits an entry keeps
	// wrap): blocks merge and split, and a reader holding an old offset must
	// never find there the Seq it saw. Stored before each use, never undone.
	SeqNext atomic.Uint64 // 0
	// Cursor is where compaction resumes: a block boundary in
	// [HeapOff, Top], or anything else, which means HeapOff.
	Cursor atomic.Uint64 // 8
	// MaxBlock is the largest block ever allocated. The allocator keeps
	// Reserve(MaxBlock) bytes above Top for compaction (store/compact.go).
	MaxBlock atomic.Uint64 // 16
	// Moved and Compactions count the bytes compaction moved and the
	// compaction transactions it committed; Passes the full passes.
	Moved       atomic.Uint64 // 24
	Compactions atomic.Uint64 // 32
	Passes      atomic.Uint64 // 40
	// LazyBytes is the bytes in lazy free blocks (SizeLazy): freed without
	// merging, which the allocator keeps under HeapSize/32.
	LazyBytes atomic.Uint64 // 48
	// NonEmpty has bit c set when free list c is not empty.
	NonEmpty [ClassWords]atomic.Uint64 // 56
	_        [maxClassWords - ClassWords]uint64
	// IndexCursor is how many old buckets a migration has moved;
	// Migrations counts the migrations finished.
	IndexCursor atomic.Uint64 // 112
	Migrations  atomic.Uint64 // 120
}

// Lock is the writer lock, alone on its cache line so waiters spinning on it
// do not slow the writer's other stores. Snapshot shares the line: only the
// lock holder reads it (once per write), and it changes twice per dump.
type Lock struct {
	// Word is 0 when free, else the holder's identity (see store/lock.go):
	// slot+1 in the low SlotBits bits, the slot's generation in the next
	// GenBits bits, and WaitersBit when someone may sleep on it.
	Word atomic.Uint32
	_    uint32
	// Snapshot is 0, or the epoch of a dump or backup in progress
	// (store/snapshot.go): the taker's lock identity in the low 32 bits,
	// a nonce that names its copy buffer in bits 32-62, and SnapshotBroken.
	// Set and cleared only under the writer lock. While it is set, every
	// writer copies each page it is about to change, the first time, into
	// the taker's buffer.
	Snapshot atomic.Uint64
	_        [CacheLine - 16]byte
}

// SnapshotBroken in Lock.Snapshot says a writer could not copy a page for
// the snapshot in progress: the snapshot fails, and writers stop copying.
const SnapshotBroken uint64 = 1 << 63

// WaitersBit in Lock.Word says a waiter may be asleep in FUTEX_WAIT.
const WaitersBit uint32 = 1 << 31

// Meta holds the writer's running totals. Count is read by Len without the
// lock; the rest only under it.
type Meta struct {
	Count     atomic.Uint64 // 320: live entries
	BlockUsed atomic.Uint64 // 328: bytes of heap blocks holding live entries
	KVBytes   atomic.Uint64 // 336: key and value bytes of live entries
	Top       atomic.Uint64 // 344: heap offset of the first never-used byte
	Commits   atomic.Uint64 // 352: committed transactions
	Recovered atomic.Uint64 // 360: journals repaired after a writer died
	FreeBytes atomic.Uint64 // 368: bytes in free lists
	TakeOvers atomic.Uint64 // 376: writer locks taken over from dead holders
}

// ProcSlot records one attached Store. Its owner holds the OFD write lock on
// byte SlotLockBase+slot of the object for as long as it is attached; the
// kernel drops that lock when the process dies.
type ProcSlot struct {
	Gen      atomic.Uint32 // bumped on every claim
	PID      atomic.Uint32
	Start    atomic.Uint64 // process start time, clock ticks since boot (/proc/PID/stat field 22)
	Attached atomic.Int64  // unix nanoseconds
	_        [8]byte
}

// Byte ranges of the object used for OFD locks. They lie far beyond any
// region so they never overlap data (locks on a file need not lie inside it).
const (
	InitLockByte = 1 << 40
	SlotLockBase = InitLockByte + 1
)

// Journal states.
const (
	JournalIdle      uint32 = 0
	JournalPrepare   uint32 = 1
	JournalCommitted uint32 = 2
)

// JournalHeader heads the journal.
type JournalHeader struct {
	State      atomic.Uint32 // 0
	NumIntents atomic.Uint32 // 4
	NumUndo    atomic.Uint32 // 8
	CommitUndo atomic.Uint32 // 12: NumUndo when State became Committed
	Owner      atomic.Uint32 // 16: lock identity of the writer
	// Flags: JournalEager, the transaction's frees merge, never lazy
	// (compaction's), so that a replay frees as the writer did.
	Flags atomic.Uint32 // 20
	// PreFree and PreLazy are what the transaction's allocations before
	// its commit changed Meta.FreeBytes and Alloc.LazyBytes by (two's
	// complement), stored just before the commit. Apply adds them to the
	// counters with its own changes, in one logged add each: so an
	// overwrite that takes a free block and frees one of the same size
	// writes neither counter, and a replay adds them again from here.
	PreFree atomic.Uint64 // 24
	PreLazy atomic.Uint64 // 32
	_       [JournalHead - 40]byte
}

// JournalEager is JournalHeader.Flags's bit for a transaction whose
// frees all merge.
const JournalEager uint32 = 1

// Intent kinds.
const (
	IntentInsert    uint32 = 1 // slot was empty
	IntentOverwrite uint32 = 2 // slot held another entry of the same key
	IntentDelete    uint32 = 3 // slot becomes empty
	// IntentMove moves a key's slot word from the old index table to the
	// current one during a migration: New is the word, Slot the slot in
	// the current table, Old the slot in the old table (an offset, not a
	// word). Apply stores New into Slot, then 0 into Old; both are
	// idempotent, never logged, and no block changes.
	IntentMove uint32 = 4
)

// IntentSuperseded marks an intent whose slot a later intent of the same
// transaction publishes into: apply does its bookkeeping but not its
// store, so replaying a transaction never shows readers an older value.
const IntentSuperseded uint32 = 1

// Intent is one publication of a committed transaction: an atomic store of
// New into the index slot at Slot, replacing Old (whose block is then freed).
type Intent struct {
	Kind  uint32 // 0
	Flags uint32 // 4: IntentSuperseded
	Slot  uint64 // 8: offset of the slot word
	Old   uint64 // 16
	New   uint64 // 24
	Home  uint64 // 32: home bucket of the key, for Overflow bookkeeping on delete
	_     [24]byte
}

// Undo kinds, kept in the low bits of Undo.Off (words are 8-aligned).
const (
	UndoPlain uint64 = 0 // restore Old
	UndoSeq   uint64 = 1 // first word of a block: restore Size, move Seq forward to Old's parity
	UndoGen   uint64 = 2 // Grow.IndexGen: move it forward to Old's parity
	UndoKind  uint64 = 7
)

// Undo is the old value of one 8-byte word changed in place.
type Undo struct {
	Off uint64 // offset of the word | kind
	Old uint64
}

// Entry heads a heap block. The value's length is what the block holds
// beyond header, key and Slack, so the header needs no ValLen field.
//
// A free block is laid out as Seq, Size (with SizeFree), the offset of the
// next block on its free list at 8, of the previous one at 16 (0 at the
// list's head), and its own size again in its last 8 bytes (the footer), so
// that the block after it, whose Size carries SizePrevFree, can find its
// start and merge with it.
type Entry struct {
	Seq    atomic.Uint32 // 0: even: published entry; odd: free or being filled
	Size   uint32        // 4: block bytes (a multiple of 8, at least EntrySize) | Size flags
	KeyLen uint16        // 8: for a free block, the 8 bytes from here are the next free block
	Slack  uint8         // 10: bytes after the value, up to the block's end
	Flags  uint8         // 11: 0; reserved
	// Sum is EntrySum of the key and value, written before the entry is
	// published and never changed while it is: a reader or Check that
	// finds bytes that do not match has found damage.
	Sum uint32 // 12
	// The key follows at EntryHeader, then the value.
}

// EntrySum is the checksum an entry's header carries, of its key and its
// value: keyHash is KeyHash of the key (which a lookup has computed
// already, and which covers the key's length), and the value is hashed
// the same way. A reader can so check the value it has just copied, in
// its own cache, and never hash the region's bytes a second time.
func EntrySum(keyHash uint64, value []byte) uint32 {
	h := keyHash ^ bits.RotateLeft64(KeyHash(value)*prime64_1, 31)
	h ^= h >> 29
	return uint32(h) ^ uint32(h>>32)
}

// Size flags, in the low bits of Entry.Size (block sizes are multiples of
// 8). Readers mask them off; only the writer reads them.
const (
	SizeFree     uint32 = 1 // the block is free: on a free list, or a fragment too small for one
	SizePrevFree uint32 = 2 // the block before this one is free and tagged: its footer precedes this header
	// SizeLazy, with SizeFree: a lazy free block, freed without looking at
	// its neighbours. It has no footer, the block after it does not carry
	// SizePrevFree, and it may touch other free blocks until a merge or
	// compaction absorbs it. A free block without it is tagged.
	SizeLazy  uint32 = 4
	SizeFlags uint32 = EntryAlign - 1
)

// MaxSlack is the most padding an entry's block has: up to 16 bytes to make
// the smallest block, or 7 to align. (What is left of a free block too small
// for a list stays a free fragment, not slack.)
const MaxSlack = EntrySize - EntryHeader

// Bytes is the block's size without its flags.
func (e *Entry) Bytes() uint64 { return uint64(e.Size &^ SizeFlags) }

// Bucket is one cache line of the index.
type Bucket struct {
	Overflow atomic.Uint32
	_        uint32
	Slots    [BucketSlots]atomic.Uint64
}

// Compile-time layout assertions: each fails to build if a size or offset
// drifts.
const (
	_ = uintptr(HeaderSize) - unsafe.Sizeof(Header{})
	_ = unsafe.Sizeof(Header{}) - HeaderSize
	_ = uintptr(ChecksumOff) - unsafe.Offsetof(Header{}.Checksum)
	_ = unsafe.Offsetof(Header{}.Checksum) - ChecksumOff
	_ = uintptr(LockOff) - unsafe.Offsetof(Header{}.Lock)
	_ = unsafe.Offsetof(Header{}.Lock) - LockOff
	_ = uintptr(MetaOff) - unsafe.Offsetof(Header{}.Meta)
	_ = unsafe.Offsetof(Header{}.Meta) - MetaOff
	_ = uintptr(FreeListsOff) - unsafe.Offsetof(Header{}.FreeLists)
	_ = unsafe.Offsetof(Header{}.FreeLists) - FreeListsOff
	_ = uintptr(AllocOff) - unsafe.Offsetof(Header{}.Alloc)
	_ = unsafe.Offsetof(Header{}.Alloc) - AllocOff
	_ = uintptr(AllocSize) - unsafe.Sizeof(Alloc{})
	_ = unsafe.Sizeof(Alloc{}) - AllocSize
	_ = uintptr(112) - unsafe.Offsetof(Header{}.CreatorPID)
	_ = unsafe.Offsetof(Header{}.CreatorPID) - 112
	_ = uintptr(120) - unsafe.Offsetof(Header{}.MaxSize)
	_ = unsafe.Offsetof(Header{}.MaxSize) - 120
	_ = uintptr(128) - unsafe.Offsetof(Header{}.InitSize)
	_ = unsafe.Offsetof(Header{}.InitSize) - 128
	_ = uintptr(GrowOff) - unsafe.Offsetof(Header{}.Grow)
	_ = unsafe.Offsetof(Header{}.Grow) - GrowOff
	_ = uintptr(CacheLine) - unsafe.Sizeof(Grow{})
	_ = unsafe.Sizeof(Grow{}) - CacheLine
	_ = uintptr(LazyHeadsOff) - unsafe.Offsetof(Header{}.LazyHeads)
	_ = unsafe.Offsetof(Header{}.LazyHeads) - LazyHeadsOff
	_ = uintptr(LazyHeadsOff+NumExact*8) - unsafe.Offsetof(Header{}.Clean)
	_ = unsafe.Offsetof(Header{}.Clean) - uintptr(LazyHeadsOff+NumExact*8)
	_ = uintptr(IndexDescOff) - unsafe.Offsetof(Header{}.Index)
	_ = unsafe.Offsetof(Header{}.Index) - IndexDescOff
	_ = uintptr(IndexDescSize) - unsafe.Sizeof(IndexDesc{})
	_ = unsafe.Sizeof(IndexDesc{}) - IndexDescSize
	_ = uintptr(CacheLine) - unsafe.Sizeof(Index{})
	_ = unsafe.Sizeof(Index{}) - CacheLine
	_ = uintptr(IndexGenOff) - (GrowOff + unsafe.Offsetof(Grow{}.IndexGen))
	_ = (GrowOff + unsafe.Offsetof(Grow{}.IndexGen)) - uintptr(IndexGenOff)
	_ = uintptr(IndexCursorOff) - (AllocOff + unsafe.Offsetof(Alloc{}.IndexCursor))
	_ = (AllocOff + unsafe.Offsetof(Alloc{}.IndexCursor)) - uintptr(IndexCursorOff)

	_ = uintptr(SnapshotOff) - (LockOff + unsafe.Offsetof(Lock{}.Snapshot))
	_ = (LockOff + unsafe.Offsetof(Lock{}.Snapshot)) - uintptr(SnapshotOff)
	_ = uintptr(CacheLine) - unsafe.Sizeof(Lock{})
	_ = unsafe.Sizeof(Lock{}) - CacheLine
	_ = uintptr(CacheLine) - unsafe.Sizeof(Meta{})
	_ = unsafe.Sizeof(Meta{}) - CacheLine
	_ = uintptr(ProcSlotSize) - unsafe.Sizeof(ProcSlot{})
	_ = unsafe.Sizeof(ProcSlot{}) - ProcSlotSize
	_ = uintptr(JournalHead) - unsafe.Sizeof(JournalHeader{})
	_ = unsafe.Sizeof(JournalHeader{}) - JournalHead
	_ = uintptr(IntentSize) - unsafe.Sizeof(Intent{})
	_ = unsafe.Sizeof(Intent{}) - IntentSize
	_ = uintptr(32) - unsafe.Offsetof(Intent{}.Home)
	_ = unsafe.Offsetof(Intent{}.Home) - 32
	_ = uintptr(UndoSize) - unsafe.Sizeof(Undo{})
	_ = unsafe.Sizeof(Undo{}) - UndoSize
	_ = uintptr(EntryHeader) - unsafe.Sizeof(Entry{})
	_ = unsafe.Sizeof(Entry{}) - EntryHeader
	_ = uintptr(8) - unsafe.Offsetof(Entry{}.KeyLen)
	_ = unsafe.Offsetof(Entry{}.KeyLen) - 8
	_ = uintptr(10) - unsafe.Offsetof(Entry{}.Slack)
	_ = unsafe.Offsetof(Entry{}.Slack) - 10
	_ = uintptr(12) - unsafe.Offsetof(Entry{}.Sum)
	_ = unsafe.Offsetof(Entry{}.Sum) - 12
	_ = uintptr(BucketSize) - unsafe.Sizeof(Bucket{})
	_ = unsafe.Sizeof(Bucket{}) - BucketSize
	_ = uintptr(8) - unsafe.Offsetof(Bucket{}.Slots)
	_ = unsafe.Offsetof(Bucket{}.Slots) - 8
)

// Offsets of the Meta words a transaction changes, and of free list heads.
const (
	CountOff     = MetaOff + 0
	BlockUsedOff = MetaOff + 8
	KVBytesOff   = MetaOff + 16
	TopOff       = MetaOff + 24
	CommitsOff   = MetaOff + 32
	FreeBytesOff = MetaOff + 48
)

// Offsets of the Alloc words a transaction changes.
const (
	CursorOff      = AllocOff + 8
	LazyBytesOff   = AllocOff + 48
	NonEmptyOff    = AllocOff + 56
	GrowSizeOff    = GrowOff + 0
	GrowthsOff     = GrowOff + 8
	IndexGenOff    = GrowOff + 16
	IndexCursorOff = AllocOff + 112
	MigrationsOff  = AllocOff + 120
)

// FreeListOff is the offset of class c's free list head.
func FreeListOff(c int) uint64 { return FreeListsOff + 8*uint64(c) }

// LazyHeadOff is the offset of exact class c's lazy stack head.
func LazyHeadOff(c int) uint64 { return LazyHeadsOff + 8*uint64(c) }

const (
	_ = uintptr(TopOff) - (MetaOff + unsafe.Offsetof(Meta{}.Top))
	_ = (MetaOff + unsafe.Offsetof(Meta{}.Top)) - uintptr(TopOff)
	_ = uintptr(FreeBytesOff) - (MetaOff + unsafe.Offsetof(Meta{}.FreeBytes))
	_ = (MetaOff + unsafe.Offsetof(Meta{}.FreeBytes)) - uintptr(FreeBytesOff)
	_ = uintptr(KVBytesOff) - (MetaOff + unsafe.Offsetof(Meta{}.KVBytes))
	_ = (MetaOff + unsafe.Offsetof(Meta{}.KVBytes)) - uintptr(KVBytesOff)
)
