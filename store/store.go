package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
	"github.com/shmkv/shmkv/shmopen"
)

// Store is an open shmkv store: a hash map in a POSIX shared-memory object
// that other processes (and other Stores of this process) share. A Store is
// safe for concurrent use by many goroutines.
type Store struct {
	name string
	obj  *object
	m    *mapping
	r    offsetptr.Region
	hdr  *layout.Header
	// geo is this process's copy of the validated geometry. It is never
	// read again from the region, so a later scribble over the header
	// cannot steer this process outside its mapping. Its Size and
	// HeapSize are the writer's: the published size as of the last time
	// this process held the writer lock (refreshSize), guarded by wmu.
	// Readers bound offsets by limit() instead, and never read them.
	geo layout.Geometry
	// maxSize is the header's MaxSize, and mapLen the mapping's length
	// (MaxSize rounded up to whole pages): readers never follow an offset
	// past the published size, which is never above either.
	maxSize, mapLen uint64
	// objLen is the least length of the object this process has seen,
	// which bounds the published sizes it accepts; guarded by wmu.
	objLen uint64
	// lazyLimit bounds Alloc.LazyBytes (alloc.go, lazyOK).
	lazyLimit uint64
	// bigFree is the size from which a tagged free block is big:
	// layout.BigFree (smaller in the crash tests, which cannot fill 4 GiB
	// at every fault point: bigFreeBlock).
	bigFree uint64
	// verify: readers check entry checksums (Options.VerifyReads).
	verify bool
	// idx is the index as this process last checked it (index.go, view).
	idx atomic.Pointer[indexView]
	// intents and undos are the journal's records: views checked once
	// against geo.
	intents []layout.Intent
	undos   []layout.Undo
	flags   uint32
	huge    HugePages

	readOnly     bool
	lockTimeout  time.Duration
	writeTimeout time.Duration
	populated    bool
	locked       bool

	slot  int
	ident uint32 // lock identity; 0 when not attached (read-only)

	// closed is set by Close. Readers check it and take no lock: Close
	// does not unmap but replaces the mapping with an inaccessible
	// reservation, so a read that raced Close faults, and the fault guard
	// every operation runs under turns that into ErrClosed.
	closed atomic.Bool
	// wmu serializes this Store's writers, so the writer lock (whose word
	// holds the Store's identity) is taken by one goroutine at a time.
	wmu   sync.Mutex
	tx    txn             // the transaction in progress; guarded by wmu
	batch batchIndex      // reused by each Update; guarded by wmu
	b     Batch           // the Batch each Update hands out; guarded by wmu
	itBuf []layout.Intent // the transaction's intents: as the writer wrote them (writeIntent), or the journal's, copied out and checked (loadIntents); guarded by wmu
	itNew []newBlock      // beside itBuf, the writer's: what each intent's new block holds (writeIntent); guarded by wmu
	cows  cowCache        // the snapshot in progress, as this writer sees it (snapshot.go); guarded by wmu

	tookOver atomic.Int64 // writer locks taken over from dead holders

	// updateG is the goroutine running an Update's fn (0 when none), so
	// that a Store method it calls fails with ErrInUpdate instead of
	// waiting forever for the lock its own goroutine holds.
	updateG atomic.Uint64
	goidBuf [32]byte // for goid in Update; guarded by wmu
}

// Create creates a new store. It fails with an error satisfying
// errors.Is(err, fs.ErrExist) if one of that name exists.
func Create(name string, opts *Options) (*Store, error) {
	o := opts.withDefaults()
	s, err := guardOpen(func() (*Store, error) { return create(name, &o) })
	if err != nil {
		return nil, wrapErr("create", name, err)
	}
	return s, nil
}

// Open opens an existing store. It fails with an error satisfying
// errors.Is(err, fs.ErrNotExist) if there is none of that name. Only
// ReadOnly, Populate, Lock, LockTimeout and InitTimeout of opts apply: the
// rest was fixed when the store was created.
func Open(name string, opts *Options) (*Store, error) {
	o := opts.withDefaults()
	s, err := guardOpen(func() (*Store, error) { return open(name, &o, false) })
	if err != nil {
		return nil, wrapErr("open", name, err)
	}
	return s, nil
}

// OpenOrCreate opens the store, creating it with opts if it does not exist.
// Processes racing to do this on one name all end up on the same, fully
// initialised store.
func OpenOrCreate(name string, opts *Options) (*Store, error) {
	o := opts.withDefaults()
	for range 100 {
		s, err := guardOpen(func() (*Store, error) { return open(name, &o, true) })
		if !errors.Is(err, fs.ErrNotExist) {
			if err != nil {
				return nil, wrapErr("open", name, err)
			}
			return s, nil
		}
		if o.ReadOnly {
			return nil, wrapErr("open", name, err)
		}
		s, err = guardOpen(func() (*Store, error) { return create(name, &o) })
		if !errors.Is(err, fs.ErrExist) {
			if err != nil {
				return nil, wrapErr("create", name, err)
			}
			return s, nil
		}
		// Lost the race to another creator, or it was removed between our
		// two calls: try again.
	}
	return nil, wrapErr("open", name, errors.New("store keeps appearing and disappearing"))
}

// Remove unlinks the store's object. Processes that have it open keep
// working on their mapping until they close it; a new Open fails with
// fs.ErrNotExist and a new Create makes a fresh store. An object that is
// not a shmkv store (its first word is not shmkv's magic) is left alone,
// with ErrIncompatible.
func Remove(name string) error {
	if err := removeStore(name); err != nil {
		return wrapErr("remove", name, err)
	}
	removeSnapshotBuffers(name)
	return nil
}

// Unlink unlinks the object of that name whatever it holds, store or not:
// what `shmkv rm --force` does. Prefer Remove, which touches only stores.
func Unlink(name string) error {
	if err := removeObject(name); err != nil {
		return wrapErr("remove", name, err)
	}
	removeSnapshotBuffers(name)
	return nil
}

// wrapErr is err as the *Error of operation op on the store name.
func wrapErr(op, name string, err error) error { return &Error{Op: op, Name: name, Err: err} }

func create(name string, o *Options) (*Store, error) {
	if err := checkCreate(name, o); err != nil {
		return nil, err
	}
	if _, _, err := objectSize(o); err != nil {
		return nil, err
	}
	obj, err := createObject(name, o)
	if err != nil {
		return nil, err
	}
	return finishCreate(name, obj, o)
}

// finishCreate initialises the object create just made exclusively.
func finishCreate(name string, obj *object, o *Options) (*Store, error) {
	// Take the init lock first: openers wait while it is held, and if we
	// die they see it dropped.
	if ok, err := ofdLock(obj.fd(), layout.InitLockByte, unix.F_WRLCK); err != nil || !ok {
		obj.file.Close()
		if err != nil {
			return nil, err
		}
		// In the instant before we locked it, an OpenOrCreate found the
		// object empty and is initialising it: the store exists.
		return nil, &os.PathError{Op: "create", Path: obj.path, Err: fs.ErrExist}
	}
	var st unix.Stat_t
	if err := unix.Fstat(obj.fd(), &st); err != nil || st.Size != 0 {
		// An OpenOrCreate adopted the empty object in that instant and has
		// finished with it: it is a store in use now.
		obj.file.Close()
		return nil, &os.PathError{Op: "create", Path: obj.path, Err: fs.ErrExist}
	}
	s, err := initialize(name, obj, o, false)
	if err != nil {
		// Magic was never published, so no one can be using the object.
		// Unlink it while we still hold the init lock (no one can adopt it
		// meanwhile), and only if the name still leads to it.
		if sameFile(obj) {
			removeObject(name)
		}
		obj.file.Close()
		return nil, err
	}
	return s, nil
}

// sameFile reports whether obj's path still names obj's object.
func sameFile(obj *object) bool {
	var a, b unix.Stat_t
	return unix.Fstat(obj.fd(), &a) == nil && unix.Stat(obj.path, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino
}

func checkCreate(name string, o *Options) error {
	switch {
	case o.Size < layout.MinSize:
		return fmt.Errorf("shmkv: size %d is below the minimum %d", o.Size, layout.MinSize)
	case o.Size > layout.MaxSize:
		return fmt.Errorf("%w: size %d is above the maximum %d", ErrTooLarge, o.Size, int64(layout.MaxSize))
	case o.HugePages > HugeTLB:
		return fmt.Errorf("shmkv: unknown HugePages value %d", o.HugePages)
	case o.ReadOnly:
		return fmt.Errorf("%w: cannot create a store read-only", ErrReadOnly)
	case o.MaxEntries < 0:
		return fmt.Errorf("shmkv: negative MaxEntries %d", o.MaxEntries)
	case o.MaxSize < o.Size:
		return fmt.Errorf("shmkv: MaxSize %d is below Size %d", o.MaxSize, o.Size)
	case o.MaxSize > layout.MaxSize:
		return fmt.Errorf("%w: MaxSize %d is above the maximum %d", ErrTooLarge, o.MaxSize, int64(layout.MaxSize))
	}
	_, err := shmopen.Normalize(name)
	return err
}

// initialize lays a new store into obj and publishes it. REQUIRES: this
// process holds obj's init lock; obj is new (empty), or was abandoned by a
// creator that died (adopt: its bytes are cleared first). Everything that
// can fail happens before Magic is published, so a failure leaves an object
// nobody has used.
func initialize(name string, obj *object, o *Options, adopt bool) (s *Store, err error) {
	if err := checkCreate(name, o); err != nil {
		return nil, err
	}
	// A write to a page /dev/shm cannot supply (NoReserve) faults: report
	// it as ErrFull rather than dying.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			s, err = nil, faultError(r, ErrFull)
		}
	}()
	size, maxSize, err := objectSize(o)
	if err != nil {
		return nil, err
	}
	g, err := layout.Plan(uint64(size), uint64(maxSize), uint64(o.MaxEntries))
	if err != nil {
		return nil, err
	}
	if !obj.tlb { // hugetlbfs has no write(2); there the mapping marks it below
		var mark [8]byte
		binary.LittleEndian.PutUint64(mark[:], layout.MagicInit)
		if _, err := unix.Pwrite(obj.fd(), mark[:], 0); err != nil {
			return nil, &os.PathError{Op: "pwrite", Path: obj.path, Err: err}
		}
	}
	if err := sizeObject(obj, size, o.NoReserve); err != nil {
		return nil, err
	}
	faultPoint("create")
	m, err := mapObject(obj, int64(mapLength(uint64(maxSize))), false, o.NoReserve || obj.tlb)
	if err != nil {
		return nil, err
	}
	r := offsetptr.NewRegion(m.data)
	h := headerOf(r)
	h.Magic.Store(layout.MagicInit)
	if adopt {
		// The dead creator may have written the header, claimed slots or
		// set Top; it published nothing, so nothing past HeapOff matters.
		clear(m.data[8:g.HeapOff])
	}
	h.Version = layout.Version
	h.HeaderSize = layout.HeaderSize
	h.NumSlots = layout.NumSlots
	h.SetGeometry(g)
	h.MaxSize, h.InitSize = uint64(maxSize)&^(layout.EntryAlign-1), g.Size
	h.Grow.Size.Store(g.Size)
	h.HugePages = uint32(o.HugePages)
	if o.NoReserve {
		h.Flags |= layout.FlagNoReserve
	}
	if o.Populate {
		h.Flags |= layout.FlagPopulate
	}
	if o.Lock {
		h.Flags |= layout.FlagLock
	}
	h.Mode = uint32(o.Mode.Perm())
	h.CreatedNano = time.Now().UnixNano()
	h.CreatorPID = uint32(os.Getpid())
	d := &h.Index.Desc[0]
	d.Off.Store(g.IndexOff)
	d.Buckets.Store(g.NumBuckets)
	h.Meta.Top.Store(g.HeapOff)
	// A new object is zeros; an adopted one may hold what its dead creator
	// wrote anywhere.
	h.Clean.Store(g.HeapOff)
	if adopt {
		h.Clean.Store(g.Size)
	}
	h.Alloc.Cursor.Store(g.HeapOff)
	h.Checksum = layout.HeaderChecksum(h)
	s, err = attachMapping(name, obj, m, o)
	if err != nil {
		m.unmap()
		return nil, err
	}
	// Publish last: until Magic is stored nobody uses the region.
	h.Magic.Store(layout.Magic)
	ofdLock(obj.fd(), layout.InitLockByte, unix.F_UNLCK)
	return s, nil
}

// initGrace is how long an opener waits on an uninitialised object whose
// init lock nobody holds before it concludes the creator is gone.
const initGrace = 100 * time.Millisecond

// open opens an existing store. With adopt, an object whose creator died
// before finishing is initialised again with o (OpenOrCreate does this, so
// a crash during creation never needs a manual clean-up).
func open(name string, o *Options, adopt bool) (*Store, error) {
	if _, err := shmopen.Normalize(name); err != nil {
		return nil, err
	}
	obj, err := openObject(name, o.ReadOnly)
	if err != nil {
		return nil, err
	}
	if err := checkOwner(obj, o, adopt); err != nil {
		obj.file.Close()
		return nil, err
	}
	deadline := time.Now().Add(o.InitTimeout)
	var unlockedSince time.Time
	for {
		m, err := tryMap(obj, o)
		if err == nil {
			s, err := attachMapping(name, obj, m, o)
			if err != nil {
				m.unmap()
				obj.file.Close()
			}
			return s, err
		}
		if !errors.Is(err, layout.ErrNotReady) {
			obj.file.Close()
			return nil, err
		}
		// Being created by another process (it holds the init lock), or its
		// creator died, or it is not a store at all.
		if creating, _ := ofdHeld(obj.fd(), layout.InitLockByte); creating {
			unlockedSince = time.Time{}
		} else if unlockedSince.IsZero() {
			unlockedSince = time.Now()
		}
		if unlinked(obj) {
			// Removed (a failed creator unlinks its object): whatever store
			// the name leads to now, it is not this object.
			obj.file.Close()
			return nil, &os.PathError{Op: "open", Path: obj.path, Err: fs.ErrNotExist}
		}
		abandoned := !unlockedSince.IsZero() && isAbandoned(obj)
		if abandoned && adopt && !o.ReadOnly {
			if ok, _ := ofdLock(obj.fd(), layout.InitLockByte, unix.F_WRLCK); ok {
				if isAbandoned(obj) && !unlinked(obj) {
					s, err := initialize(name, obj, o, true)
					if err != nil {
						ofdLock(obj.fd(), layout.InitLockByte, unix.F_UNLCK)
						obj.file.Close()
					}
					return s, err
				}
				ofdLock(obj.fd(), layout.InitLockByte, unix.F_UNLCK)
				continue
			}
		}
		now := time.Now()
		// An adopter keeps trying (another may have beaten it to the lock)
		// until InitTimeout; others give up after initGrace.
		graceOver := !unlockedSince.IsZero() && now.Sub(unlockedSince) > initGrace && !(abandoned && adopt && !o.ReadOnly)
		if graceOver || now.After(deadline) {
			obj.file.Close()
			switch {
			case unlockedSince.IsZero():
				return nil, fmt.Errorf("%w: still being created after %v", ErrIncompatible, o.InitTimeout)
			case abandoned:
				return nil, fmt.Errorf("%w: its creator died before finishing it; OpenOrCreate initialises it again, or remove it with `shmkv rm`", ErrIncompatible)
			}
			return nil, fmt.Errorf("%w: not a shmkv store (its header is empty)", ErrIncompatible)
		}
		time.Sleep(time.Millisecond)
	}
}

// isAbandoned reports whether obj is a store whose creation started and
// never finished: still empty, or marked MagicInit. (An object that is
// merely zero-filled may be someone else's, and is never taken.)
func isAbandoned(obj *object) bool {
	var st unix.Stat_t
	if unix.Fstat(obj.fd(), &st) != nil {
		return false
	}
	if st.Size == 0 {
		return true
	}
	var b [8]byte
	if n, err := unix.Pread(obj.fd(), b[:], 0); err != nil || n != 8 {
		return false
	}
	m := binary.LittleEndian.Uint64(b[:])
	// hugetlbfs has no write(2), so its creator can mark the object only
	// once mapped: there, a zero first word on our own mount counts too.
	return m == layout.MagicInit || (obj.tlb && m == 0)
}

// unlinked reports whether obj's object has no name any more.
func unlinked(obj *object) bool {
	var st unix.Stat_t
	return unix.Fstat(obj.fd(), &st) == nil && st.Nlink == 0
}

// tryMap maps the object if its header is ready, and validates it.
func tryMap(obj *object, o *Options) (*mapping, error) {
	var st unix.Stat_t
	if err := unix.Fstat(obj.fd(), &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: obj.path, Err: err}
	}
	if st.Size < layout.HeaderSize {
		return nil, layout.ErrNotReady
	}
	// A sparse store is mapped MAP_NORESERVE in every process, or mapping
	// it on hugetlbfs would try to reserve every page; and every process
	// maps MaxSize, however long the object is now (growth.go). Peek at
	// the flags and MaxSize. A MaxSize that cannot be right maps only the
	// object, for Validate to say what is wrong.
	var peek [128]byte
	if _, err := unix.Pread(obj.fd(), peek[:], 0); err != nil {
		return nil, &os.PathError{Op: "pread", Path: obj.path, Err: err}
	}
	noReserve := binary.LittleEndian.Uint32(peek[24:])&layout.FlagNoReserve != 0
	maxSize := binary.LittleEndian.Uint64(peek[120:])
	length := uint64(st.Size)
	if maxSize <= layout.MaxSize && maxSize > length {
		length = mapLength(maxSize)
	}
	m, err := mapObject(obj, int64(length), o.ReadOnly, noReserve || obj.tlb)
	if err != nil {
		return nil, err
	}
	h := headerOf(offsetptr.NewRegion(m.data))
	for attempt := 0; ; attempt++ {
		err := layout.Validate(h, uint64(st.Size))
		if err == nil {
			break
		}
		// A writer may have grown the store since the fstat above: it
		// extends the object, then publishes the size that Validate just
		// read. Then the object is longer now: look again.
		var now unix.Stat_t
		if attempt < 8 && unix.Fstat(obj.fd(), &now) == nil && now.Size != st.Size {
			st = now
			continue
		}
		m.unmap()
		return nil, err
	}
	if (h.Flags&layout.FlagNoReserve != 0) != noReserve || h.MaxSize != maxSize {
		// Peeked before the creator wrote the header: map again.
		m.unmap()
		return nil, layout.ErrNotReady
	}
	return m, nil
}

// attachMapping finishes opening: options, process slot, recovery check.
func attachMapping(name string, obj *object, m *mapping, o *Options) (*Store, error) {
	r := offsetptr.NewRegion(m.data)
	h := headerOf(r)
	s := &Store{
		name: name, obj: obj, m: m, r: r, hdr: h,
		geo:          h.Geometry(),
		maxSize:      h.MaxSize,
		mapLen:       uint64(len(m.data)),
		flags:        h.Flags,
		huge:         HugePages(h.HugePages),
		readOnly:     o.ReadOnly,
		lockTimeout:  o.LockTimeout,
		writeTimeout: o.WriteTimeout,
		verify:       o.VerifyReads,
	}
	if s.mapLen < s.maxSize {
		return nil, fmt.Errorf("%w: mapped %d bytes of a store of up to %d", ErrCorrupt, s.mapLen, s.maxSize)
	}
	// Validate checked the published size against the object.
	s.setSize(h.Grow.Size.Load())
	s.objLen = s.geo.Size
	var err error
	if _, err = s.view(); err != nil {
		return nil, err
	}
	s.intents, err = offsetptr.SliceAt[layout.Intent](r, offsetptr.Offset(s.geo.IntentsOff()), uint64(s.geo.MaxIntents))
	if err != nil {
		return nil, fmt.Errorf("%w: journal: %v", ErrCorrupt, err)
	}
	s.undos, err = offsetptr.SliceAt[layout.Undo](r, offsetptr.Offset(s.geo.UndoOff()), uint64(s.geo.MaxUndo))
	if err != nil {
		return nil, fmt.Errorf("%w: journal: %v", ErrCorrupt, err)
	}
	if s.huge == HugeTransparent {
		// Advice, not a promise: shmem_enabled decides; Stats reports.
		unix.Madvise(m.data, unix.MADV_HUGEPAGE)
	}
	if o.Populate || s.flags&layout.FlagPopulate != 0 {
		if err := m.populate(s.geo.Size, o.ReadOnly); err != nil {
			return nil, err
		}
		s.populated = true
	}
	if o.Lock || s.flags&layout.FlagLock != 0 {
		if err := m.lock(); err != nil {
			return nil, err
		}
		s.locked = true
	}
	if !o.ReadOnly {
		if err := s.attach(); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Name is the name the store was opened with.
func (s *Store) Name() string { return s.name }

// Path is the object's path in the file system (/dev/shm/NAME, or on a
// hugetlbfs mount).
func (s *Store) Path() string { return s.obj.path }

// Close detaches this Store from the store and releases its mapping, after
// the write in flight on another goroutine, if any, finishes. The store
// itself stays for the other processes. Reads racing Close return
// ErrClosed. A closed Store keeps its address range reserved (no memory),
// so that such a read faults instead of reading whatever might be mapped
// there next.
func (s *Store) Close() (err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.closed.Swap(true) {
		return s.fail("close", ErrClosed)
	}
	func() {
		defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
		defer func() { recover() }() // a truncated object: nothing left to detach from
		s.detach()
	}()
	s.cowDrop()
	err = s.m.retire()
	if cerr := s.obj.file.Close(); err == nil {
		err = cerr
	}
	return s.fail("close", err)
}

// headerOf is the region's header. REQUIRES: the mapping holds at least
// layout.HeaderSize bytes, which every caller has checked.
func headerOf(r offsetptr.Region) *layout.Header {
	h, err := offsetptr.Base[layout.Header](r)
	if err != nil {
		panic(err)
	}
	return h
}
