// Package offsetptr is shmkv's relative link: a position inside a mapped
// region counted in bytes from the region's base, so the same link means the
// same thing in every process whatever address it mapped the region at.
//
// Offset 0 is nil (the region's first bytes are its header, which no link
// ever names). Turning an Offset into a pointer happens in one place, unsafe.go,
// and only after the link has been checked against the mapped length and
// the target's alignment: a link read from shared memory may have been written
// by a buggy or hostile process, and following it unchecked could crash this
// one.
package offsetptr

import (
	"errors"
	"fmt"
)

// Offset is a byte offset from a region's base. 0 is nil.
type Offset uint64

// Nil is the zero Offset, which links to nothing.
const Nil Offset = 0

// IsNil reports whether o links to nothing.
func (o Offset) IsNil() bool { return o == Nil }

// ErrOutOfBounds is returned when an offset, with the size of what it names,
// does not lie inside the region, or is not aligned for it.
var ErrOutOfBounds = errors.New("shmkv: offset outside the region")

// ErrNil is returned when a nil offset is resolved.
var ErrNil = errors.New("shmkv: nil offset")

// BoundsError describes a bad link: where it pointed, what it needed, and the
// region's length. It wraps ErrOutOfBounds or ErrNil.
type BoundsError struct {
	Off    Offset
	Size   uint64
	Align  uint64
	Length uint64
	err    error
}

func (e *BoundsError) Error() string {
	if e.err == ErrNil {
		return "shmkv: nil offset followed"
	}
	return fmt.Sprintf("shmkv: offset %#x (size %d, align %d) outside region of %d bytes or misaligned",
		uint64(e.Off), e.Size, e.Align, e.Length)
}

func (e *BoundsError) Unwrap() error { return e.err }

// Check reports whether [o, o+size) lies inside a region of length bytes and
// o is a multiple of align (a power of two). It is the one bounds rule every
// resolution goes through.
func Check(o Offset, size, align, length uint64) error {
	if o == Nil {
		return &BoundsError{Off: o, Size: size, Align: align, Length: length, err: ErrNil}
	}
	// NB: written so that no sum can overflow: o <= length and size <= length-o.
	if uint64(o)&(align-1) != 0 || uint64(o) > length || size > length-uint64(o) {
		return &BoundsError{Off: o, Size: size, Align: align, Length: length, err: ErrOutOfBounds}
	}
	return nil
}

// InBounds is Check without the error value, for hot paths that turn a
// failure into their own error.
func InBounds(o Offset, size, align, length uint64) bool {
	return o != Nil && uint64(o)&(align-1) == 0 && uint64(o) <= length && size <= length-uint64(o)
}
