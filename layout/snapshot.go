package layout

import (
	"sync/atomic"
	"unsafe"
)

// A snapshot's copy buffer: a second object, in /dev/shm, that the process
// taking a snapshot (a dump or a backup) creates and every writer maps
// while Header.Lock.Snapshot names it. Its name is the store's, then
// ".snapshot-" and the epoch's nonce in hex.
//
//	offset 0          +------------------------------------------------+
//	                  | SnapHeader (4096 B)                            |
//	SnapBitmapOff     +------------------------------------------------+
//	                  | bitmap: one bit per page of the region, set    |
//	                  | once that page's image is safe (copied)        |
//	SnapIndexOff()    +------------------------------------------------+
//	                  | ring index: Slots x 8 B, the page number held  |
//	                  | in each ring slot                              |
//	SnapDataOff()     +------------------------------------------------+
//	                  | ring: Slots x SnapPage, copies of pages as     |
//	                  | they were at the snapshot's instant            |
//	                  +------------------------------------------------+
//
// Writers (one at a time: they hold the store's writer lock) fill ring slot
// Head mod Slots and then advance Head; the taker copies slots out and
// advances Tail. Bitmap words are set with atomic OR by both sides. The
// taker writes the rest of the header before it publishes the epoch.

// SnapMagic is the first word of a copy buffer: "SHMKVcow".
const SnapMagic uint64 = 0x776f63564b4d4853

// SnapPage is the unit writers copy: a page of the region.
const SnapPage = 4096

// SnapBitmapOff is where the bitmap starts.
const SnapBitmapOff = SnapPage

// Reasons in SnapHeader.BrokenWhy.
const (
	SnapBrokenFull uint32 = 1 // the ring stayed full for the writers' whole wait
	SnapBrokenOpen uint32 = 2 // a writer could not open or map the buffer
)

// SnapHeader heads a copy buffer.
type SnapHeader struct {
	Magic   uint64 // 0
	Epoch   uint64 // 8: Lock.Snapshot's value for this snapshot
	Created int64  // 16: the store's CreatedNano, tying the buffer to it
	Pages   uint64 // 24: pages of the region the bitmap covers
	Slots   uint64 // 32: pages the ring holds
	PID     uint32 // 40: the taker's pid
	_       uint32
	Start   uint64 // 48: the taker's start time (/proc/PID/stat field 22)
	_       [8]byte
	// Head counts the pages writers have put in the ring; Tail those the
	// taker has taken out. Each alone on its cache line.
	Head atomic.Uint64 // 64
	_    [CacheLine - 8]byte
	Tail atomic.Uint64 // 128
	// Room is bumped by the taker each time it frees ring slots; a writer
	// that found the ring full sets Waiting and sleeps on Room (futex).
	Room    atomic.Uint32 // 136
	Waiting atomic.Uint32 // 140
	_       [CacheLine - 16]byte
	// BrokenPID and BrokenWhy say which writer gave up on the snapshot, and
	// why (SnapBroken*), before it set SnapshotBroken in Lock.Snapshot.
	BrokenPID atomic.Uint32 // 192
	BrokenWhy atomic.Uint32 // 196
	_         [SnapPage - 200]byte
}

// SnapIndexOff is where the ring index starts for a bitmap of pages bits.
func SnapIndexOff(pages uint64) uint64 {
	return SnapBitmapOff + alignUp((pages+63)/64*8, SnapPage)
}

// SnapDataOff is where the ring's page copies start.
func SnapDataOff(pages, slots uint64) uint64 {
	return SnapIndexOff(pages) + alignUp(slots*8, SnapPage)
}

// SnapSize is the size of a copy buffer.
func SnapSize(pages, slots uint64) uint64 { return SnapDataOff(pages, slots) + slots*SnapPage }

const (
	_ = uintptr(SnapPage) - unsafe.Sizeof(SnapHeader{})
	_ = unsafe.Sizeof(SnapHeader{}) - SnapPage
	_ = uintptr(64) - unsafe.Offsetof(SnapHeader{}.Head)
	_ = unsafe.Offsetof(SnapHeader{}.Head) - 64
	_ = uintptr(128) - unsafe.Offsetof(SnapHeader{}.Tail)
	_ = unsafe.Offsetof(SnapHeader{}.Tail) - 128
	_ = uintptr(136) - unsafe.Offsetof(SnapHeader{}.Room)
	_ = unsafe.Offsetof(SnapHeader{}.Room) - 136
	_ = uintptr(192) - unsafe.Offsetof(SnapHeader{}.BrokenPID)
	_ = unsafe.Offsetof(SnapHeader{}.BrokenPID) - 192
)
