package store

import (
	"errors"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/shmopen"
)

// Error is the error of a failed operation on a store, in the manner of
// os.PathError: the operation, the store's name, and the cause, which
// usually wraps one of the errors below (test with errors.Is) and may be an
// *os.PathError about the object. Every public operation that fails
// returns one, except where failing is an expected answer: Get and
// GetAppend return ErrNotFound bare, as a Reader returns io.EOF, so that a
// miss costs no allocation; Update returns the error its fn returned as it
// is; and Compact and CompactWithProgress return their cause bare for now
// (compact.go is being rewritten; they should join the rest).
type Error struct {
	Op   string // what failed: "open", "create", "remove", "get", "put", ...
	Name string // the store's name, as given to Open or Create
	Err  error  // why
}

func (e *Error) Error() string { return e.Op + " " + e.Name + ": " + e.Err.Error() }

func (e *Error) Unwrap() error { return e.Err }

// fail is err as the *Error of operation op on s; nil stays nil.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Name: s.name, Err: err}
}

// Errors a Store's operations return. Test them with errors.Is: the errors
// returned wrap these, in an *Error, with the store's name and detail.
var (
	// ErrNotFound is returned when a key is not in the store (Get, Delete,
	// CompareAndDelete).
	ErrNotFound = errors.New("shmkv: key not found")
	// ErrFull is returned when a mutation finds no room: no free block big
	// enough in the heap, or the index holds MaxEntries keys. The store is
	// left exactly as it was.
	ErrFull = errors.New("shmkv: store full")
	// ErrTooLarge is returned when a key is longer than MaxKeySize, or a
	// key and value could never fit the store's heap, or a batch outgrows
	// the journal.
	ErrTooLarge = errors.New("shmkv: key or value too large")
	// ErrReadOnly is returned by mutations on a store opened ReadOnly.
	ErrReadOnly = errors.New("shmkv: store opened read-only")
	// ErrClosed is returned by operations on a closed Store.
	ErrClosed = errors.New("shmkv: store closed")
	// ErrBusy is returned when every process slot of a store is taken:
	// NumProcesses Stores are attached already.
	ErrBusy = errors.New("shmkv: too many processes attached")
	// ErrHugePages is returned when huge pages were asked for and the host
	// cannot give them; the message says what to set up.
	ErrHugePages = errors.New("shmkv: huge pages unavailable")
	// ErrLockTimeout is returned by a write that gave up waiting for the
	// writer lock at its deadline (the context of UpdateContext, or
	// Options.WriteTimeout): a live process held it all that time. The
	// message names its pid; the error also wraps the context's error.
	ErrLockTimeout = errors.New("shmkv: writer lock not acquired in time")
	// ErrInUpdate is returned by a Store method called from inside the fn
	// of that Store's Update, which holds the writer: use the Batch.
	ErrInUpdate = errors.New("shmkv: Store method called inside its own Update; use the Batch")
)

// Errors about the region itself, shared with package layout.
var (
	// ErrCorrupt is returned when the region breaks the format's rules: a
	// link outside the region, a bad checksum, an entry that does not match
	// its index slot. Nothing read from the region is trusted unchecked, so
	// corruption is reported, never followed.
	ErrCorrupt = layout.ErrCorrupt
	// ErrIncompatible is returned when the object is not a shmkv store, or
	// one of a format version this build does not read.
	ErrIncompatible = layout.ErrIncompatible
	// ErrInvalidName is returned for a name that is not a valid POSIX
	// shared-memory object name.
	ErrInvalidName = shmopen.ErrInvalidName
)

// Errors of dumps, backups, loads and restores (dump.go, backup.go).
var (
	// ErrSnapshotBusy is returned by Dump and Backup while another process
	// takes a snapshot of the store: one at a time. The message names its
	// pid.
	ErrSnapshotBusy = errors.New("shmkv: another dump or backup of this store is in progress")
	// ErrSnapshotLost is returned by Dump and Backup when the snapshot could
	// not be kept to the end: a writer could not copy a page for it (the
	// taker stopped draining its copy buffer). What was written has no
	// trailer, so no load or restore accepts it. The store is unharmed;
	// try again.
	ErrSnapshotLost = errors.New("shmkv: snapshot lost")
	// ErrDamaged is returned when a dump or backup is truncated, fails a
	// checksum, or breaks its format; or a restored image fails Check.
	ErrDamaged = errors.New("shmkv: damaged dump or backup")
)
