// Package layout is shmkv's on-memory format: the structs that sit in the
// shared-memory object, their sizes and offsets (asserted at compile time),
// and Validate for the header.
//
// # Region
//
// All integers are little-endian (the format is only ever read on the host
// that wrote it, and shmkv builds for little-endian targets). Every link is an
// offsetptr.Offset from the region's base, never an address, so each process
// may map the region anywhere. Offsets of entries are 8-byte aligned.
//
//	offset 0        +--------------------------------------------------+
//	                | Header (4096 B)                                  |
//	                |   0   Magic      8   written last at creation    |
//	                |   8   static geometry and options (creator only) |
//	                |       incl. MaxSize (120) and InitSize (128)     |
//	                | 248   Checksum   8   xxhash64 of bytes [8,248)    |
//	                | 256   Lock      64   writer lock word (futex),    |
//	                |                      at 264 the Snapshot epoch    |
//	                | 320   Meta      64   counts, heap top             |
//	                | 384   FreeLists  NumClasses x 8  free block heads |
//	                | 2800  LazyHeads  NumExact x 8  lazy stack heads   |
//	                | 3808  Clean      8   highest Top ever             |
//	                | 3840  Alloc    128   Seq counter, compaction     |
//	                |                      cursor and counts, NonEmpty,|
//	                |                      the index migration's cursor|
//	                | 3968  Grow      64   published size, growths,     |
//	                |                      IndexGen                     |
//	                | 4032  Index     64   two index descriptors        |
//	SlotsOff        +--------------------------------------------------+
//	                | ProcSlot x NumSlots (32 B each): attached procs  |
//	JournalOff      +--------------------------------------------------+
//	                | JournalHeader (64 B)                             |
//	                | Intent x MaxIntents (64 B each)                  |
//	                | Undo x MaxUndo (16 B each)                       |
//	IndexOff        +--------------------------------------------------+
//	                | the first index table: Bucket x NumBuckets       |
//	HeapOff         +--------------------------------------------------+
//	                | blocks: header (16 B), key, value, padded to 8;  |
//	                | later index tables (Entry.Flags EntryIndex);     |
//	                | free blocks between them; above Meta.Top, space  |
//	                | never used or given back, up to Grow.Size        |
//	Grow.Size       +--------------------------------------------------+
//	                | (the object may be longer: a growth that died)   |
//	MaxSize         +--------------------------------------------------+
//
// The header's Size and HeapSize are the region's at creation (InitSize);
// the region in use ends at Grow.Size, which only the writer raises, in a
// journaled step, after extending the object (store/growth.go). Every
// process maps MaxSize bytes; readers bound every offset by Grow.Size.
//
// # Who writes what
//
// The creator writes the static header once, before it publishes Magic; no
// one writes it afterwards. Everything else that changes is written only by
// the process that holds the writer lock (Lock.Word), except a ProcSlot,
// which its owner writes while holding the slot's OFD lock. Words that
// readers or lock waiters load while a writer runs are typed atomics:
// Magic, Lock.Word, Lock.Snapshot, Grow.Size, Grow.IndexGen, the Index
// descriptors, Meta.Count, Bucket.Overflow, Bucket.Slots, Entry.Seq and
// the ProcSlot fields.
//
// # Index
//
// A key's 64-bit hash (KeyHash: XXH3 up to 128 bytes, XXH64 beyond) picks its home bucket (layout.Home: the hash times
// NumBuckets, high 64 bits) and a 16-bit tag (low bits). A Bucket is one cache line: an overflow count and 7 slots. A
// slot is 0 when empty, else Tag<<48 | EntryOffset>>3. A key lives in the
// first bucket of its probe sequence (home, home+1, ... modulo the table's
// buckets, at most MaxProbe buckets) that had room when it was inserted,
// and moves only when the index grows. A bucket's Overflow counts the live
// keys whose probe passed it, so a lookup stops at the first bucket that
// has no match and Overflow 0.
//
// The index is one table, or two while it grows (store/migrate.go):
// Index.Desc[Grow.IndexGen & 1] names the current table and the old one
// (OldOff 0: none). The first table lies at IndexOff; a later one is a
// heap block flagged EntryIndex, whose buckets start at
// IndexTableBuckets(block). Keys move from the old table to the current
// one bucket by bucket, from bucket 0 up to Alloc.IndexCursor (an
// IntentMove each); the old table's buckets below the cursor are empty, and
// its Overflow counts may stay higher than needed. The writer changes the
// tables by filling the descriptor not in force and then adding one to
// IndexGen, which never goes back (undo moves it forward to the old
// parity). Alloc.Migrations counts finished migrations.
//
// # Entries and free blocks
//
// A block is a 16-byte header (Seq, Size, KeyLen, Slack, Flags, Sum), the key,
// the value, and Slack bytes of padding (to 8 bytes, up to the smallest
// block, or a remainder too small to split off); at least EntrySize (32)
// bytes. Blocks tile [HeapOff, Meta.Top) with no gap; above Top the heap
// was never used or was given back. The value's length is
// Size-16-KeyLen-Slack, where Size is the header's Size with its low three
// bits (flags) cleared: SizeFree marks a free block, SizeLazy a lazy one,
// SizePrevFree a block whose predecessor is free and tagged (not lazy).
//
// Entry.Seq is even while the block holds a published entry and odd while
// it is free or being filled. Every Seq the writer stores is the next
// number of Alloc.SeqNext, a 64-bit store-wide counter, so a header at a
// given offset never shows the same Seq twice (until the 32 bits wrap),
// even after the block was merged into a neighbour and split off again.
// Entry.Sum is EntrySum of the key's hash and the value, written
// before the entry is published and moved unchanged by compaction.
//
// A free block keeps Seq and Size, stores the offset of the next free
// block of its size class at 8 and of the previous one at 16 (0 at the
// list's head), and repeats its size in its last 8 bytes, the footer. A
// free block smaller than EntrySize (8, 16 or 24 bytes: what is left when an
// entry takes a free block whose rest is too small for a list) is a
// fragment: on no list, it merges with its neighbours when they are freed;
// one of 8 bytes has no footer, and the block after it reads its header
// instead (a footer's high half is 0, a header's never). A free block is
// tagged, as above, or lazy (SizeLazy): freed by an overwrite whose new
// block has its size, which is under ExactClassLimit. A lazy block is on
// no list but on its exact class's lazy stack (LazyHeads): singly linked
// through the word at 8, no prev link, no footer, and the block after it
// is not told (no SizePrevFree). It never merges until compaction drains
// the stacks. Alloc.LazyBytes counts lazy bytes (the writer keeps them
// under HeapSize/32). No tagged free block touches another tagged one
// (a tagged free merges with tagged neighbours), lazy ones may touch
// anything, and the block below Top is never tagged free (it goes back
// above Top). A tagged free block of BigFree (4 GiB) or more, past what
// Entry.Size holds, is big: Size holds its flags only (its size bits are
// 0), its size is the word at BigSizeOff (24), and its footer is its size
// with FooterBig (the top bit) set.
// Alloc.NonEmpty has a bit per class whose list is not empty.
//
// Alloc.Cursor is where compaction resumes: a block boundary in
// [HeapOff, Top].
//
// # Journal
//
// A mutation (or a batch of them) first records, in Undo, the old value of
// every word it changes in place, then sets JournalHeader.State to Committed,
// then publishes its Intents (one atomic store into an index slot each; an
// IntentMove then clears the old table's slot), then frees what they
// replaced. Compaction moves an entry with an
// IntentOverwrite whose new block holds the same key and value. Recovery
// undoes everything when it finds State Prepare, and when it finds
// Committed undoes the post-commit records and replays the intents. See package store, journal.go, for the protocol.
//
// # Snapshots
//
// Lock.Snapshot is 0, or the epoch of a dump or backup in progress: the
// taker's lock identity in bits 0-31, a nonce in bits 32-62 that names
// its copy buffer (/dev/shm/NAME.snapshot-NONCE in hex, SnapHeader), and
// SnapshotBroken. Only the writer lock's holder changes it. While it is
// set, a writer about to change bytes of a page whose bit in the buffer's
// bitmap is clear first copies the page into the buffer's ring, advances
// Head, and sets the bit (atomic OR); the taker claims each page it reads
// with an atomic OR too. See package store, snapshot.go.
package layout
