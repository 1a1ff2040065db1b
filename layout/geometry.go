package layout

import (
	"errors"
	"fmt"
	"math/bits"
)

// MinSize is the smallest region shmkv creates.
const MinSize = 256 << 10

// MaxSize is the largest: entry offsets must fit the 48 bits of a slot once
// divided by EntryAlign, and 1 TiB is already far past /dev/shm on any host.
const MaxSize = 1 << 40

// Geometry is where each part of a region sits. Plan derives it from the
// region's size and entry capacity; Validate checks a stored one.
type Geometry struct {
	Size       uint64
	SlotsOff   uint64
	JournalOff uint64
	MaxIntents uint32
	MaxUndo    uint32
	IndexOff   uint64
	NumBuckets uint64
	MaxEntries uint64
	HeapOff    uint64
	HeapSize   uint64
}

// Undo log sizing. The journal holds UndoPerOp undo records per intent on
// average, and always one mutation of the worst kind: UndoWorst covers an
// allocation, a free with merges on both sides, the counters, and a probe
// past MaxProbe buckets twice over. Package store owns the per-step
// numbers (store/budget.go) and asserts at compile time that they fit.
const (
	UndoPerOp = 32
	UndoWorst = 64 + 2*MaxProbe
)

// ErrGeometry is returned by Plan for a size or capacity it cannot lay out.
var ErrGeometry = errors.New("shmkv: cannot lay out a region")

// Plan lays out a region of size bytes, which may grow to maxSize (0: size),
// that holds up to maxEntries keys (0: no limit but the region's).
// The journal is sized for what the region may become, up to 4 MiB, so a
// store created small and growable still takes batches of 64 mutations.
func Plan(size, maxSize, maxEntries uint64) (Geometry, error) {
	if size < MinSize || size > MaxSize {
		return Geometry{}, fmt.Errorf("%w: size %d bytes is outside [%d, %d]", ErrGeometry, size, uint64(MinSize), uint64(MaxSize))
	}
	size &^= EntryAlign - 1
	maxSize = max(maxSize&^(EntryAlign-1), size)
	// The first index table holds maxEntries, which is then also the
	// ceiling on keys. With no ceiling, a region that may grow starts with
	// one entry per KiB, and the index grows with the keys
	// (store/migrate.go); one of fixed size has one entry per 128 bytes,
	// as before growth, so its index grows (into the heap, where tables
	// are blocks compaction cannot move) only past that.
	first := size / 128
	switch {
	case maxEntries != 0:
		first = maxEntries
	case maxSize > size:
		first = size / 1024
	}
	first = max(first, 16)
	var g Geometry
	g.Size = size
	g.SlotsOff = HeaderSize
	g.JournalOff = alignUp(g.SlotsOff+NumSlots*ProcSlotSize, CacheLine)
	g.MaxIntents = uint32(min(max(max(size, min(maxSize, 4<<20))/(64<<10), 8), 4096))
	g.MaxUndo = g.MaxIntents*UndoPerOp + UndoWorst
	g.IndexOff = alignUp(g.JournalOff+JournalHead+uint64(g.MaxIntents)*IntentSize+uint64(g.MaxUndo)*UndoSize, 4096)
	// Keep the index at most 6/7 full: lookups then touch one bucket almost
	// always, MaxProbe buckets are never all full in practice, and the index
	// costs 64/6 bytes per entry at capacity. Any count works: a key's home
	// bucket is its hash scaled to NumBuckets (Home), not masked.
	g.NumBuckets = (first + 5) / 6
	g.MaxEntries = maxEntries
	g.HeapOff = alignUp(g.IndexOff+g.NumBuckets*BucketSize, 4096)
	if g.HeapOff+64<<10 > size {
		return Geometry{}, fmt.Errorf("%w: %d bytes leave no room for data after an index of %d entries (raise the size or lower the entry count)",
			ErrGeometry, size, first)
	}
	g.HeapSize = size - g.HeapOff
	return g, nil
}

func alignUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }

// Geometry returns the geometry recorded in h.
func (h *Header) Geometry() Geometry {
	return Geometry{
		Size: h.Size, SlotsOff: h.SlotsOff, JournalOff: h.JournalOff,
		MaxIntents: h.MaxIntents, MaxUndo: h.MaxUndo,
		IndexOff: h.IndexOff, NumBuckets: h.NumBuckets, MaxEntries: h.MaxEntries,
		HeapOff: h.HeapOff, HeapSize: h.HeapSize,
	}
}

// SetGeometry records g in h.
func (h *Header) SetGeometry(g Geometry) {
	h.Size, h.SlotsOff, h.JournalOff = g.Size, g.SlotsOff, g.JournalOff
	h.MaxIntents, h.MaxUndo = g.MaxIntents, g.MaxUndo
	h.IndexOff, h.NumBuckets, h.MaxEntries = g.IndexOff, g.NumBuckets, g.MaxEntries
	h.HeapOff, h.HeapSize = g.HeapOff, g.HeapSize
}

// IntentsOff and UndoOff are where the journal's arrays start.
func (g Geometry) IntentsOff() uint64 { return g.JournalOff + JournalHead }
func (g Geometry) UndoOff() uint64 {
	return g.JournalOff + JournalHead + uint64(g.MaxIntents)*IntentSize
}

// Check verifies that g is self-consistent: every part in order, aligned,
// inside Size, and sized as Plan would size it.
func (g Geometry) Check() error {
	bad := func(what string, args ...any) error {
		return fmt.Errorf("%w: geometry: %s", ErrCorrupt, fmt.Sprintf(what, args...))
	}
	switch {
	case g.Size < MinSize || g.Size > MaxSize || g.Size%EntryAlign != 0:
		return bad("size %d", g.Size)
	case g.SlotsOff != HeaderSize:
		return bad("slots at %#x, want %#x", g.SlotsOff, HeaderSize)
	case g.JournalOff != alignUp(g.SlotsOff+NumSlots*ProcSlotSize, CacheLine):
		return bad("journal at %#x", g.JournalOff)
	case g.MaxIntents == 0 || g.MaxIntents > 4096 || g.MaxUndo != g.MaxIntents*UndoPerOp+UndoWorst:
		return bad("journal capacity %d intents, %d undo records", g.MaxIntents, g.MaxUndo)
	case g.IndexOff < g.UndoOff()+uint64(g.MaxUndo)*UndoSize || g.IndexOff%4096 != 0:
		return bad("index at %#x overlaps the journal", g.IndexOff)
	case g.NumBuckets == 0 || g.NumBuckets > g.Size/BucketSize:
		return bad("%d buckets", g.NumBuckets)
	case g.MaxEntries > g.NumBuckets*BucketSlots:
		return bad("%d entries for %d buckets", g.MaxEntries, g.NumBuckets)
	case g.HeapOff < g.IndexOff+g.NumBuckets*BucketSize || g.HeapOff%EntryAlign != 0 || g.HeapOff >= g.Size:
		return bad("heap at %#x", g.HeapOff)
	case g.HeapSize != g.Size-g.HeapOff:
		return bad("heap of %d bytes, want %d", g.HeapSize, g.Size-g.HeapOff)
	}
	return nil
}

// EntryInHeap reports whether an entry may start at off: aligned, inside
// the heap, and with room for the smallest block (EntrySize) before the
// end of the region. It is the one test of an entry offset read from the
// region (an index slot, a journal intent) before anything follows it.
// REQUIRES: g passed Check (so Size >= EntrySize).
func (g Geometry) EntryInHeap(off uint64) bool { return g.EntryIn(off, g.Size) }

// EntryIn is EntryInHeap for a heap that ends at size (a grown region's
// published size, which may be anything a hostile process wrote).
func (g Geometry) EntryIn(off, size uint64) bool {
	return off >= g.HeapOff && size >= EntrySize && off <= size-EntrySize && off%EntryAlign == 0
}

// Slot words: Tag<<48 | offset>>3.

// SlotWord packs a tag and an entry offset into a slot.
func SlotWord(tag uint16, off uint64) uint64 { return uint64(tag)<<48 | off>>3 }

// SlotOffset is the entry offset a slot names (0 for an empty slot).
func SlotOffset(w uint64) uint64 { return (w & (1<<48 - 1)) << 3 }

// SlotTag is the tag a slot carries.
func SlotTag(w uint64) uint16 { return uint16(w >> 48) }

// Tag is the slot tag for a key hash, from its low bits (Home uses the high
// ones); never 0, so an occupied slot is never 0.
func Tag(h uint64) uint16 { return uint16(h) | 1 }

// Home is the home bucket of a key hash among n buckets: the hash scaled
// to [0, n) by a multiply, which needs no power of two.
func Home(h, n uint64) uint64 {
	hi, _ := bits.Mul64(h, n)
	return hi
}

// BlockSize is the heap block that holds an entry with the given key and
// value lengths.
func BlockSize(keyLen, valLen uint64) uint64 {
	return max(alignUp(EntryHeader+keyLen+valLen, EntryAlign), EntrySize)
}

// ClassOf is the free list a free block of size bytes goes on: the largest
// class whose lower bound is <= size.
func ClassOf(size uint64) int {
	if size < 1024 {
		return int(size/8) - 2
	}
	e := bits.Len64(size) - 1 // 10..31 for a block; more for a request that no block holds
	sub := (size >> (e - 3)) & 7
	c := NumExact + (e-10)*8 + int(sub)
	return min(c, NumClasses-1)
}

// ClassMin is the smallest block size that ClassOf maps to c.
func ClassMin(c int) uint64 {
	if c < NumExact {
		return uint64(c+2) * 8
	}
	e := uint((c-NumExact)/8 + 10)
	sub := uint64((c - NumExact) % 8)
	return (8 + sub) << (e - 3)
}

// ClassFor is the first class all of whose blocks are at least size bytes.
func ClassFor(size uint64) int {
	c := ClassOf(size)
	if ClassMin(c) < size {
		c++
	}
	return c
}
