package store

// The read path. Readers take no lock, write nothing to the region and
// never wait for a writer: they read the index slot and the entry it names,
// and validate what they copied (see index.go). A read that raced the
// writer on the same entry simply runs again.

import (
	"bytes"
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/layout"
)

func yield() { runtime.Gosched() }

// Get returns a copy of key's value, or ErrNotFound.
func (s *Store) Get(key []byte) ([]byte, error) {
	v, err := s.GetAppend(nil, key)
	if err == nil && v == nil {
		v = []byte{}
	}
	return v, err
}

// GetAppend appends key's value to dst and returns the extended slice, or
// dst and ErrNotFound. With a dst of enough capacity it allocates nothing.
func (s *Store) GetAppend(dst, key []byte) ([]byte, error) { return s.get(key, dst, true) }

// Has reports whether key is in the store.
func (s *Store) Has(key []byte) (bool, error) {
	_, err := s.get(key, nil, false)
	if err == ErrNotFound {
		return false, nil
	}
	return err == nil, err
}

// get is lookup for the Store's callers: closed check, guard, ErrNotFound
// bare, other errors as the *Error of a get (a has, without copyValue).
// NB: the wrapping is here, not in GetAppend, which must stay small enough
// to inline: a call more is a tenth of a miss.
func (s *Store) get(key, dst []byte, copyValue bool) (_ []byte, err error) {
	op := "has"
	if copyValue {
		op = "get"
	}
	if s.closed.Load() {
		return dst, s.fail(op, ErrClosed)
	}
	g := s.guard()
	g.op = op
	defer s.unguard(&g, &err)
	out, found, err := s.lookup(key, dst, copyValue)
	g.done = true
	if err != nil {
		return dst, s.fail(op, err)
	}
	if !found {
		return dst, ErrNotFound
	}
	return out, nil
}

// Len is the number of keys in the store; 0 once the Store is closed.
func (s *Store) Len() (n int) {
	if s.closed.Load() {
		return 0
	}
	var err error
	g := s.guard()
	defer s.unguard(&g, &err)
	c := s.hdr.Meta.Count.Load()
	if m := s.geo.MaxEntries; m != 0 {
		c = min(c, m)
	}
	return int(min(c, 1<<62))
}

// Range calls fn for each key and value in the store, in no particular
// order, until fn returns false. It takes no lock: each pair is read
// whole and was in the store at some instant during Range, and a key
// present throughout Range is seen at least once: once, unless the index
// grew under Range (a migration moved it past the scan) or the key was
// deleted and put again, when it may be seen twice. Keys put or deleted
// while it runs may or may not be seen. key and value are fresh copies fn may keep (keeping
// the key does not keep the value's memory). fn may call the Store's other
// methods.
func (s *Store) Range(fn func(key, value []byte) bool) error {
	return s.fail("range", s.scan(true, fn))
}

// RangeKeys is Range for keys alone: it copies no value.
func (s *Store) RangeKeys(fn func(key []byte) bool) error {
	return s.fail("range", s.scan(false, func(k, _ []byte) bool { return fn(k) }))
}

func (s *Store) scan(values bool, fn func(key, value []byte) bool) (err error) {
	if s.closed.Load() {
		return ErrClosed
	}
	g := s.guard()
	defer s.unguard(&g, &err)
	sc := scanner{s: s, values: values, fn: fn}
	return sc.run()
}

// scanner walks the index tables for Range and the iterators. It reads the
// tables of one index view; when the index changes under it (IndexGen
// moves), it goes on in the new view's tables without ever reading a table
// that may have been freed: a table it was walking that is still in the
// new view (the current one became the old one of a new migration) it
// finishes, and then it walks the new view's current table, where every
// key it has not reached went; a table no longer in the view it leaves,
// its keys being in the new view's tables, which it walks whole. A key
// present throughout is so seen at least once; one that a migration moves
// past the scan may be seen twice.
type scanner struct {
	s      *Store
	values bool
	fn     func(key, value []byte) bool
}

// scanPart is a table left to walk, from bucket from on.
type scanPart struct {
	tb   itable
	from uint64
}

func (sc *scanner) run() error {
	s := sc.s
	v, err := s.view()
	if err != nil {
		return err
	}
	// todo is the tables left to walk, in order: the old one first, as
	// keys only move from it into the current one.
	var todo []scanPart
	if v.old.n != 0 {
		todo = append(todo, scanPart{tb: v.old})
	}
	todo = append(todo, scanPart{tb: v.cur})
	for restarts := 0; len(todo) > 0; {
		part := todo[0]
		at, done, stop, err := sc.walk(&part.tb, part.from, v)
		if err != nil || stop {
			return err
		}
		if done {
			todo = todo[1:]
			continue
		}
		// The index moved: v is stale, and so is what the walk read last.
		if restarts++; restarts > 1<<16 {
			return fmt.Errorf("%w: the index kept changing under a scan", ErrCorrupt)
		}
		if v, err = s.view(); err != nil {
			return err
		}
		todo = todo[:0]
		switch off := part.tb.off; {
		case v.old.n != 0 && v.old.off == off && v.old.n == part.tb.n:
			// Still readable, as the old table of a new migration: finish
			// it, then walk the current one, where the rest went.
			todo = append(todo, scanPart{tb: v.old, from: at}, scanPart{tb: v.cur})
		case v.cur.off == off && v.cur.n == part.tb.n:
			todo = append(todo, scanPart{tb: v.cur, from: at})
		default:
			if v.old.n != 0 {
				todo = append(todo, scanPart{tb: v.old})
			}
			todo = append(todo, scanPart{tb: v.cur})
		}
	}
	return nil
}

// walk calls fn for the keys of table tb from bucket from on, while the
// index stays as in v. It returns the bucket to resume at when the index
// moved (done false), or done; stop when fn asked to stop.
func (sc *scanner) walk(tb *itable, from uint64, v *indexView) (at uint64, done, stop bool, err error) {
	s := sc.s
	for bi := from; bi < tb.n; bi++ {
		if next := s.skipHole(tb, bi); next != bi {
			bi = next - 1
			continue
		}
		for i := range layout.BucketSlots {
			kv, kl, ok, err := s.readSlot(tb, bi, i, sc.values)
			if s.indexMoved(v) {
				return bi, false, false, nil // this read may be of freed memory
			}
			if err != nil {
				return bi, false, false, fmt.Errorf("%w (bucket %d slot %d)", err, bi, i)
			}
			if !ok {
				continue
			}
			// NB: the key is a copy of its own, so that keeping it does not
			// keep the value's memory.
			k, val := kv, []byte(nil)
			if sc.values {
				k, val = bytes.Clone(kv[:kl]), kv[kl:]
			}
			if !sc.fn(k, val) {
				return bi, true, true, nil
			}
		}
	}
	return tb.n, true, false, nil
}

// skipHole returns bucket bi, or, on a sparse (NoReserve) store where bi
// starts a page the object has never had written, the first bucket past
// the hole. Reading a hole would make tmpfs allocate it: a scan of a big
// sparse store's index would fill /dev/shm with zero pages. A hole holds
// zeros: empty buckets.
func (s *Store) skipHole(tb *itable, bi uint64) uint64 {
	off := tb.off + bi*layout.BucketSize
	if s.flags&layout.FlagNoReserve == 0 || off%4096 != 0 {
		return bi
	}
	data, err := unix.Seek(s.obj.fd(), int64(off), unix.SEEK_DATA)
	if err != nil || uint64(data) <= off {
		return bi // data here, or no answer: read it
	}
	next := (uint64(data) - tb.off) / layout.BucketSize
	return min(max(next, bi+1), tb.n)
}

// readSlot copies the entry slot i of bucket bi names, whatever its key, through
// readEntry: its key and, if values, its value after it (kl is the key's
// length). ok is false for an empty slot. A copy that raced the writer is
// made again; out is a fresh slice, never nil.
func (s *Store) readSlot(tb *itable, bi uint64, i int, values bool) (out []byte, kl uint64, ok bool, err error) {
	slot := &tb.bucket(bi).Slots[i]
	m := readKey
	if values {
		m = readKV
	}
	dst := []byte{} // an empty key or value is not nil
	for attempt := 0; attempt < 1<<20; attempt++ {
		w := slot.Load()
		if w == 0 {
			return nil, 0, false, nil
		}
		switch out, kl, r := s.readEntry(slot, w, nil, 0, dst, m); r {
		case readMatch:
			return out, kl, true, nil
		case readCorrupt:
			return nil, 0, false, badSlot(slotOff(tb.bucketOff(bi), i), w)
		case readBadSum: // out starts with the key, as read
			return nil, 0, false, fmt.Errorf("%w (index slot %#x)", badSum(out[:kl], layout.SlotOffset(w)), slotOff(tb.bucketOff(bi), i))
		}
		if attempt > 64 {
			yield()
		}
	}
	return nil, 0, false, fmt.Errorf("%w: index slot never stable", ErrCorrupt)
}
