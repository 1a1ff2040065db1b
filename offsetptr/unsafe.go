package offsetptr

// This file holds all of offsetptr's use of unsafe: the conversion between an
// Offset and a pointer into a mapped region. Everything here checks bounds and
// alignment before it makes a pointer.

import "unsafe"

// Region is a mapped range of memory that offsets are relative to. It holds
// the base address as an unsafe.Pointer only so that conversion is cheap; the
// memory is not Go memory and must stay mapped while any pointer made from it
// is in use.
type Region struct {
	base unsafe.Pointer
	len  uint64
}

// NewRegion describes the mapping b. b must not be empty.
func NewRegion(b []byte) Region {
	return Region{base: unsafe.Pointer(unsafe.SliceData(b)), len: uint64(len(b))}
}

// Len is the region's length in bytes.
func (r Region) Len() uint64 { return r.len }

// At returns a pointer to the T at offset o, after checking that the whole T
// lies inside the region and o is aligned for T.
func At[T any](r Region, o Offset) (*T, error) {
	var z T
	if err := Check(o, uint64(unsafe.Sizeof(z)), uint64(unsafe.Alignof(z)), r.len); err != nil {
		return nil, err
	}
	return (*T)(unsafe.Add(r.base, o)), nil
}

// MustAt is At for offsets this process computed itself from validated
// geometry (never for a link read from the region): a failure is this
// process's bug, so it panics.
func MustAt[T any](r Region, o Offset) *T {
	var z T
	// NB: InBounds, not At, so that MustAt inlines: it is on every path
	// that touches the region.
	if InBounds(o, uint64(unsafe.Sizeof(z)), uint64(unsafe.Alignof(z)), r.len) {
		return (*T)(unsafe.Add(r.base, o))
	}
	panic(&BoundsError{Off: o, Size: uint64(unsafe.Sizeof(z)), Align: uint64(unsafe.Alignof(z)), Length: r.len, err: ErrOutOfBounds})
}

// Bytes returns the n bytes at offset o as a slice aliasing the mapping.
// The slice must not outlive the mapping nor be kept past the operation that
// asked for it. n == 0 gives an empty slice for any in-bounds o.
func (r Region) Bytes(o Offset, n uint64) ([]byte, error) {
	if err := Check(o, n, 1, r.len); err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(unsafe.Add(r.base, o)), n), nil
}

// OffsetOf returns the offset of p, which must point into the region.
func OffsetOf[T any](r Region, p *T) (Offset, bool) {
	d := uintptr(unsafe.Pointer(p)) - uintptr(r.base)
	if uintptr(unsafe.Pointer(p)) < uintptr(r.base) || uint64(d) >= r.len {
		return Nil, false
	}
	return Offset(d), true
}

// Base returns the T at the region's start (the header, which no Offset
// names since offset 0 is nil), after checking that the region holds a T.
func Base[T any](r Region) (*T, error) {
	var z T
	if uint64(unsafe.Sizeof(z)) > r.len {
		return nil, &BoundsError{Off: 0, Size: uint64(unsafe.Sizeof(z)), Align: 1, Length: r.len, err: ErrOutOfBounds}
	}
	return (*T)(r.base), nil
}

// SliceAt returns the n consecutive Ts at offset o as a slice aliasing the
// mapping, after checking that all of them lie inside the region and o is
// aligned for T. Indexing the slice is then bounds-checked by Go, so a hot
// loop over a table in the region needs no check per element.
func SliceAt[T any](r Region, o Offset, n uint64) ([]T, error) {
	var z T
	size := uint64(unsafe.Sizeof(z))
	if size != 0 && n > r.len/size {
		return nil, &BoundsError{Off: o, Size: n * size, Align: uint64(unsafe.Alignof(z)), Length: r.len, err: ErrOutOfBounds}
	}
	if err := Check(o, n*size, uint64(unsafe.Alignof(z)), r.len); err != nil {
		return nil, err
	}
	return unsafe.Slice((*T)(unsafe.Add(r.base, o)), n), nil
}
