package store

import (
	"fmt"

	"github.com/shmkv/shmkv/layout"
	"io/fs"
	"time"
)

// HugePages selects the page size behind a store.
type HugePages uint8

const (
	// HugeOff uses ordinary 4 KiB pages.
	HugeOff HugePages = iota
	// HugeTransparent asks for transparent huge pages on the mapping
	// (madvise MADV_HUGEPAGE). The kernel grants them for shared memory only
	// where /sys/kernel/mm/transparent_hugepage/shmem_enabled allows it
	// ("advise", "always" or "within_size"); Stats reports what it did.
	HugeTransparent
	// HugeTLB puts the store on a hugetlbfs mount, backed by pages reserved
	// in /proc/sys/vm/nr_hugepages. Create fails with ErrHugePages, saying
	// what to set up, when there is no mount or too few free pages.
	HugeTLB
)

// MarshalText and UnmarshalText make HugePages read and print as "off",
// "thp" or "tlb" in JSON and flags.
func (h HugePages) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

func (h *HugePages) UnmarshalText(b []byte) error {
	v, err := ParseHugePages(string(b))
	*h = v
	return err
}

func (h HugePages) String() string {
	switch h {
	case HugeOff:
		return "off"
	case HugeTransparent:
		return "thp"
	case HugeTLB:
		return "tlb"
	}
	return fmt.Sprintf("HugePages(%d)", uint8(h))
}

// ParseHugePages reads "off", "thp" or "tlb".
func ParseHugePages(s string) (HugePages, error) {
	switch s {
	case "off", "":
		return HugeOff, nil
	case "thp", "transparent":
		return HugeTransparent, nil
	case "tlb", "hugetlb":
		return HugeTLB, nil
	}
	return 0, fmt.Errorf("shmkv: unknown huge page mode %q (want off, thp or tlb)", s)
}

// Defaults.
const (
	// DefaultSize is the initial size of a store created with neither Size
	// nor MaxSize: small, because such a store grows (up to the size of
	// /dev/shm), so it costs only what it holds.
	DefaultSize        = 8 << 20
	DefaultMode        = fs.FileMode(0o600)
	DefaultLockTimeout = 200 * time.Millisecond
	// DefaultInitTimeout bounds how long Open waits for another process to
	// finish creating the store.
	DefaultInitTimeout = 3 * time.Second
)

// Limits.
const (
	// MaxKeySize is the longest key.
	MaxKeySize = 1<<16 - 1
	// MaxValueSize is the longest value; a value must also fit the heap.
	MaxValueSize = 1 << 30
	// NumProcesses is how many Stores may be attached to one store at once.
	NumProcesses = 1023
)

// Options configure Create, Open and OpenOrCreate. A nil *Options means the
// defaults. Size, Mode, HugePages, NoReserve and MaxEntries apply only when
// a store is created; they are recorded in the store, so a process opening
// it needs only its name. Populate and Lock apply to this process's mapping
// and are also on when the creator set them. ReadOnly and LockTimeout are
// this process's choice.
type Options struct {
	// Size of the store in bytes when creating it: its initial size.
	// Default 8 MiB. With HugeTLB it is rounded up to a whole number of
	// huge pages.
	Size int64
	// MaxSize is the most bytes the store may grow to. When a write needs
	// room the store has not got, the writer enlarges the object (doubling
	// up to 1 GiB, then by an eighth; at most 64 MiB per step) while other
	// processes go on reading and writing. Each process reserves MaxSize
	// of address space (not memory) at open.
	//
	// Default: with Size also left 0, the size of the file system under
	// /dev/shm at creation, so a default store grows until /dev/shm is
	// full; with Size set, Size, so a store you sized stays that size, as
	// it always has. HugeTLB stores do not grow unless MaxSize is set: huge
	// pages come from a pool reserved ahead.
	MaxSize int64
	// Mode is the permission of the object when creating it; default 0600.
	Mode fs.FileMode
	// MaxEntries is the most keys the store's index holds; default one per
	// 128 bytes of Size. The index takes about 11 bytes per entry of it. Put of a new key beyond it returns ErrFull.
	MaxEntries int64
	// HugePages: HugeOff (default), HugeTransparent or HugeTLB.
	HugePages HugePages
	// NoReserve skips reserving the object's memory when creating it. The
	// object is then sparse: creation is instant and unused space costs
	// nothing, but a write that needs a new page when /dev/shm (or the huge
	// page pool) is exhausted fails. shmkv turns that fault into an error
	// and rolls the write back, but other programs using the same tmpfs
	// may die with SIGBUS.
	NoReserve bool
	// Populate prefaults every page of the mapping at open.
	Populate bool
	// Lock mlocks the mapping so it is never swapped out (needs
	// CAP_IPC_LOCK or a large enough RLIMIT_MEMLOCK).
	Lock bool
	// ReadOnly maps the store PROT_READ; mutations return ErrReadOnly.
	ReadOnly bool
	// LockTimeout is how long a writer waits for the writer lock before it
	// checks whether the holder died (and if so repairs the store and takes
	// the lock over). Default 200ms. A holder that is alive is waited for
	// as long as it runs.
	LockTimeout time.Duration
	// InitTimeout bounds how long Open waits for a store that another
	// process is still creating. Default 3s.
	InitTimeout time.Duration
	// WriteTimeout bounds how long a write (Put, Delete, Update...) waits
	// for the writer lock while a live process holds it; then it fails
	// with ErrLockTimeout naming the holder. Default 0: wait as long as the
	// holder runs. UpdateContext takes a deadline per call.
	WriteTimeout time.Duration
	// Owners, when not empty, lists the user ids this process trusts to own
	// the store: Open and OpenOrCreate refuse an object owned by anyone
	// else, or one that group or others may write beyond Mode, with an
	// error satisfying errors.Is(err, fs.ErrPermission) that says whose it
	// is. Without it, Open accepts any owner (sharing a store between users
	// is a feature), while OpenOrCreate, which would create the store if it
	// were missing, requires the process's own effective uid, as if Owners
	// held just that: a name another user took first is refused, never
	// used.
	Owners []int
	// VerifyReads makes Get, GetAppend, Has, Range, RangeKeys, ForEach and
	// the iterators check each entry they read against its checksum (every
	// entry carries one, Entry.Sum). The functions return ErrCorrupt naming
	// the key instead of bytes that do not match; the iterators end there,
	// as on any damage. Check always verifies every entry. It is this
	// process's choice, not the store's: a process that must never act on
	// damaged data (a bad DIMM, a stray write from another process) turns
	// it on; one that needs the last nanosecond leaves it off.
	VerifyReads bool
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	switch {
	case r.Size == 0 && r.MaxSize == 0:
		r.Size = DefaultSize
		if r.HugePages != HugeTLB {
			r.MaxSize = max(shmCapacity(), r.Size)
		}
	case r.Size == 0:
		r.Size = min(DefaultSize, max(r.MaxSize, layout.MinSize))
	}
	if r.MaxSize == 0 {
		r.MaxSize = r.Size
	}
	if r.Mode == 0 {
		r.Mode = DefaultMode
	}
	if r.LockTimeout <= 0 {
		r.LockTimeout = DefaultLockTimeout
	}
	if r.InitTimeout <= 0 {
		r.InitTimeout = DefaultInitTimeout
	}
	return r
}
