package store

// The fault guard. Every operation reads (and a writer writes) a mapping
// that another process may truncate or scribble over. A page the object
// no longer has raises SIGBUS; with panic-on-fault set for the operation,
// that is a panic the operation's deferred handler recovers and turns
// into an error (ErrCorrupt, or ErrClosed after Close), instead of the
// death of the process. Readers use guard and unguard; Open and Create
// use guardOpen; the writer's withLock (put.go) recovers the same faults
// and repairs the region from the journal before it returns.

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/shmkv/shmkv/offsetptr"
)

// corruption is a panic value for damage found deep in the write path,
// where returning an error would leave a transaction half-planned; the
// operation's deferred handler turns it back into its error.
type corruption struct{ err error }

// recovered is the error for a panic an operation recovered: ErrClosed for
// a fault after Close, else see faultError.
func (s *Store) recovered(r any) error {
	if s.closed.Load() {
		if _, fault := r.(interface{ Addr() uintptr }); fault {
			return ErrClosed // Close retired the mapping under us
		}
	}
	return faultError(r, ErrCorrupt)
}

// guard turns a memory fault in the mapping into an error. Reading a page
// the object no longer has (someone truncated it) raises SIGBUS; with
// panic-on-fault set for the operation, that is a panic unguard recovers
// instead of the death of the process. Use:
//
//	g := s.guard()
//	defer s.unguard(&g, &err)
//	... the operation ...
//	g.done = true // optional: last, right before returning
//
// Setting done spares the call to recover, a fair part of a Get's cost;
// and panic-on-fault is only restored if it was off. With op set, the
// error of a recovered fault is the *Error of that operation, for an
// operation whose caller does not wrap its errors (get).
type guard struct {
	was, done bool
	op        string
}

func (s *Store) guard() guard { return guard{was: debug.SetPanicOnFault(true)} }

// unguard ends a guard. REQUIRES: deferred directly by the operation.
func (s *Store) unguard(g *guard, err *error) {
	// NB: restored first: recovered re-panics what is not a memory fault.
	if !g.was {
		debug.SetPanicOnFault(false)
	}
	if !g.done {
		if r := recover(); r != nil {
			*err = s.recovered(r)
			if g.op != "" {
				*err = s.fail(g.op, *err)
			}
		}
	}
}

// faultError describes a recovered fault as class, or re-panics a panic
// that is not a memory fault (this process's own bug).
//
// As a backstop, a failed bounds check also becomes ErrCorrupt: every
// length and offset taken from the region is checked before use, so one
// that still reaches an index or a slice out of range was changed by
// another process between two loads that should have been one.
func faultError(r any, class error) error {
	if c, ok := r.(corruption); ok {
		return c.err
	}
	if be, ok := r.(*offsetptr.BoundsError); ok {
		return fmt.Errorf("%w: a link in the region leads outside it: %v", ErrCorrupt, be)
	}
	if re, ok := r.(runtime.Error); ok {
		if msg := re.Error(); strings.Contains(msg, "index out of range") || strings.Contains(msg, "slice bounds out of range") {
			return fmt.Errorf("%w: a length read from the region changed under this process: %v", ErrCorrupt, re)
		}
	}
	if _, fault := r.(interface{ Addr() uintptr }); !fault {
		panic(r)
	}
	return fmt.Errorf("%w: memory fault in the store's mapping (object truncated, or %s full under NoReserve): %v", class, ShmDir, r)
}

// guardOpen runs an open or a create with the fault guard every other
// operation has: the object may be truncated, or its header changed, by
// another process while this one reads it.
func guardOpen(fn func() (*Store, error)) (s *Store, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, faultError(r, ErrCorrupt)
		}
	}()
	return fn()
}
