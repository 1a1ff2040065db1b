package layout

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// ErrIncompatible is returned when a region is not a shmkv store this build
// can read: another format, another version. ErrCorrupt is returned when it
// claims to be one but its contents break the format's rules.
var (
	ErrIncompatible = errors.New("shmkv: incompatible store")
	ErrCorrupt      = errors.New("shmkv: corrupt store")
)

// ErrNotReady is returned by Validate while Magic is still 0: the creator
// has not finished initialising the region.
var ErrNotReady = errors.New("shmkv: store not initialised yet")

// HeaderChecksum computes the checksum of the static header bytes [8, 248).
func HeaderChecksum(h *Header) uint64 {
	b := unsafe.Slice((*byte)(unsafe.Pointer(h)), ChecksumOff)
	return xxhash.Sum64(b[8:])
}

// Validate checks a header against the length of the object it came from:
// magic, version, checksum, then geometry. The errors wrap ErrNotReady,
// ErrIncompatible or ErrCorrupt and say what was found.
func Validate(h *Header, objectLen uint64) error {
	switch m := h.Magic.Load(); {
	case m == 0 || m == MagicInit:
		return ErrNotReady
	case m != Magic:
		return fmt.Errorf("%w: not a shmkv store (first 8 bytes %#016x, want %#016x)", ErrIncompatible, m, Magic)
	}
	if h.Version < Version {
		return fmt.Errorf("%w: format version %d, this build reads version %d only: dump it with the shmkv that made it (shmkv dump NAME > FILE) and load it with this one (shmkv load NAME < FILE)",
			ErrIncompatible, h.Version, Version)
	}
	if h.Version != Version {
		return fmt.Errorf("%w: format version %d, this build reads version %d: to move its data, dump it with the shmkv that made it and load the dump with this one (shmkv dump, shmkv load)", ErrIncompatible, h.Version, Version)
	}
	if h.HeaderSize != HeaderSize {
		return fmt.Errorf("%w: header size %d, want %d", ErrCorrupt, h.HeaderSize, HeaderSize)
	}
	if sum := HeaderChecksum(h); sum != h.Checksum {
		return fmt.Errorf("%w: header checksum %#016x, computed %#016x", ErrCorrupt, h.Checksum, sum)
	}
	if h.NumSlots != NumSlots {
		return fmt.Errorf("%w: %d process slots, want %d", ErrCorrupt, h.NumSlots, NumSlots)
	}
	if h.HugePages > HugeTLB || h.Flags&^(FlagNoReserve|FlagPopulate|FlagLock) != 0 {
		return fmt.Errorf("%w: unknown options (hugepages %d, flags %#x)", ErrCorrupt, h.HugePages, h.Flags)
	}
	if err := h.Geometry().Check(); err != nil {
		return err
	}
	return checkGrow(h, objectLen)
}

// checkGrow checks the sizes of growth: the header's Size is the size the
// region was created with (InitSize), and the published size lies between
// it and MaxSize, inside the object.
func checkGrow(h *Header, objectLen uint64) error {
	switch gs := h.Grow.Size.Load(); {
	case h.MaxSize > MaxSize || h.MaxSize%EntryAlign != 0 || h.InitSize != h.Size || h.Size > h.MaxSize:
		return fmt.Errorf("%w: sizes: initial %d, first %d, maximum %d", ErrCorrupt, h.InitSize, h.Size, h.MaxSize)
	case gs < h.Size || gs > h.MaxSize || gs%EntryAlign != 0 || gs > objectLen:
		return fmt.Errorf("%w: published size %d outside [%d, %d], or past the object's %d bytes", ErrCorrupt, gs, h.Size, h.MaxSize, objectLen)
	}
	return nil
}
