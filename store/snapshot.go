package store

// Snapshots: an image of the region as it was at one instant, read while
// writers go on. Dump and Backup are built on it.
//
// The mechanism is a copy-on-write epoch, at page granularity, with the
// writers' cooperation:
//
//  1. The taker creates a copy buffer (layout/snapshot.go): a bitmap with a
//     bit per page of the region, and a ring of page copies. Then, holding
//     the writer lock for a few microseconds, it copies the header page,
//     notes Meta.Top and the counts, and publishes the epoch in
//     Lock.Snapshot. That is the snapshot's instant T: the journal is idle
//     (the lock's taker repairs it first), so the region is whole.
//  2. From then on every writer, before it changes any byte that the image
//     at T needs, looks up that byte's page in the bitmap; if its bit is
//     clear it copies the page into the ring, publishes the copy (Head),
//     and only then sets the bit (atomic OR) and writes.
//  3. The taker reads the region page by page, in order. For a page whose
//     bit is clear it copies the live page, then sets the bit with an
//     atomic OR. If the OR finds the bit still clear, no writer has changed
//     the page since T (a writer sets the bit before its first change), so
//     the copy is the page at T. If a writer set it first, the taker takes
//     that writer's copy from the ring instead: the writer made it before
//     changing anything on the page.
//  4. At the end the taker takes the lock again and clears the epoch. The
//     dump's or backup's trailer, its proof of completeness, is written
//     only after that succeeded.
//
// What "every byte the image needs" means, and where the writers hook in
// (all in journal.go): every word a transaction changes in place is
// undo-logged first (txn.log), so the hook there covers Meta, the free
// lists, bucket overflow counts and every block header and link; a block
// header's hook covers its free-list links too (24 bytes), which a later
// allocation may overwrite unlogged once the block lies inside a bigger
// free one. Slot publications (apply) are hooked. A freed block's bytes,
// and the footer before it and the header and links after it, are hooked
// before the free (apply), since the allocator later writes into free
// space without logging (alloc.go: fresh blocks, a split's remainder).
// What the image does not need, and no hook covers: bytes inside blocks
// that were free at T, space above Meta.Top at T, the journal, and the
// process slots; the image normalises the last two (Backup) or ignores
// them (Dump, which walks only the heap).
//
// A dump checks its image against the counts Meta held at T (entries,
// their bytes, free bytes): a mismatch is an error, never a dump.
//
// Costs. The taker holds the writer lock twice, each time for a copy of
// one page and a few words. A writer pays, during a snapshot, one load of
// Lock.Snapshot per change (also outside snapshots), one bitmap load per
// page it changes, and a 4 KiB copy the first time it changes a page. The
// ring holds snapRing pages; if the taker stops draining it (it is
// stopped, or killed: then the writer ends the epoch at once), a writer
// waits at most snapWait and then breaks the snapshot (SnapshotBroken):
// the dump fails, writers go on. The taker keeps in memory the pages
// writers copied ahead of its reading, at most the region's used size.

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/shmkv/shmkv/internal/units"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
	"github.com/shmkv/shmkv/shmopen"
)

const (
	snapPage = layout.SnapPage
	// snapRing is how many page copies the ring holds (16 MiB).
	snapRing = 4096
	// snapWait is how long a writer waits for room in a full ring before
	// it gives up on the snapshot.
	snapWait = time.Second
	// snapChunk is how many pages the taker reads at once: one bitmap word.
	snapChunk = 64
)

// snapPath is the copy buffer of the store at storePath for nonce.
func snapPath(storePath string, nonce uint32) string {
	base := filepath.Base(storePath)
	if b, err := objectBase(base, 18); err == nil {
		base = b
	}
	return filepath.Join(ShmDir, base+".snapshot-"+strconv.FormatUint(uint64(nonce), 16))
}

func snapNonce(epoch uint64) uint32 { return uint32(epoch>>32) &^ (1 << 31) }

// cowMap is one process's mapping of a copy buffer.
type cowMap struct {
	path   string
	data   []byte
	hdr    *layout.SnapHeader
	bitmap []atomic.Uint64
	index  []uint64
	ring   []byte
	pages  uint64
	slots  uint64
}

// mapCow maps a copy buffer, all its pages at once (MAP_POPULATE): a few
// milliseconds once per snapshot for the writer's first change, rather
// than a page fault in each page copy (this VM's faults cost microseconds).
func mapCow(f *os.File, path string, pages, slots uint64) (*cowMap, error) {
	size := layout.SnapSize(pages, slots)
	data, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: path, Err: err}
	}
	r := offsetptr.NewRegion(data)
	m := &cowMap{path: path, data: data, pages: pages, slots: slots}
	m.hdr, err = offsetptr.Base[layout.SnapHeader](r)
	if err == nil {
		m.bitmap, err = offsetptr.SliceAt[atomic.Uint64](r, layout.SnapBitmapOff, (pages+63)/64)
	}
	if err == nil {
		m.index, err = offsetptr.SliceAt[uint64](r, offsetptr.Offset(layout.SnapIndexOff(pages)), slots)
	}
	if err != nil {
		unix.Munmap(data)
		return nil, err
	}
	m.ring = data[layout.SnapDataOff(pages, slots):]
	return m, nil
}

func (m *cowMap) unmap() {
	if m != nil && m.data != nil {
		unix.Munmap(m.data)
		m.data = nil
	}
}

// cowCache is a writer Store's view of the snapshot in progress: the
// Lock.Snapshot value it last acted on, and the buffer mapped for it (nil
// when there is none, or the snapshot is broken). Guarded by wmu: only the
// writer lock's holder uses it.
type cowCache struct {
	epoch uint64
	m     *cowMap
}

// cow is called before a writer changes the n bytes at off: while a
// snapshot is in progress, the pages they lie on are copied for it first.
// Outside snapshots it costs two loads. REQUIRES: the writer lock.
func (s *Store) cow(off, n uint64) {
	// NB: kept within the inliner's budget: it is on every logged word.
	if s.hdr.Lock.Snapshot.Load()|s.cows.epoch != 0 {
		s.cowSlow(off, n)
	}
}

func (s *Store) cowSlow(off, n uint64) {
	e := s.hdr.Lock.Snapshot.Load()
	if e != s.cows.epoch {
		s.cowSwitch(e)
	}
	m := s.cows.m
	if m == nil || n == 0 {
		return
	}
	first, last := off/snapPage, (off+n-1)/snapPage
	if last >= m.pages {
		last = m.pages - 1
	}
	for p := first; p <= last; p++ {
		w, bit := &m.bitmap[p/64], uint64(1)<<(p%64)
		if w.Load()&bit != 0 {
			continue
		}
		if !s.cowPage(m, e, p) {
			return
		}
		// INVARIANT: the copy is published (Head) before the bit, and the
		// bit before the change: the taker, finding the bit set, finds the
		// copy.
		w.Or(bit)
	}
}

// cowSwitch moves the cache to epoch e: drops the old buffer and maps the
// new one, or, if its taker is gone, ends the epoch for it.
func (s *Store) cowSwitch(e uint64) {
	s.cows.m.unmap()
	s.cows = cowCache{epoch: e}
	if e == 0 || e&layout.SnapshotBroken != 0 {
		return
	}
	taker := uint32(e)
	if taker != s.ident && !s.alive(taker) {
		s.snapAbandoned(e)
		return
	}
	m, err := s.openCow(e)
	if err != nil {
		s.snapBreak(e, nil, layout.SnapBrokenOpen)
		return
	}
	s.cows.m = m
}

// openCow maps the copy buffer of epoch e and checks it is the one its
// taker made for this store.
func (s *Store) openCow(e uint64) (*cowMap, error) {
	path := snapPath(s.obj.path, snapNonce(e))
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var hb [64]byte
	if _, err := f.ReadAt(hb[:], 0); err != nil {
		return nil, err
	}
	pages, slots := binary.LittleEndian.Uint64(hb[24:]), binary.LittleEndian.Uint64(hb[32:])
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if binary.LittleEndian.Uint64(hb[0:]) != layout.SnapMagic || binary.LittleEndian.Uint64(hb[8:]) != e ||
		int64(binary.LittleEndian.Uint64(hb[16:])) != s.hdr.CreatedNano ||
		pages != regionPages(s.maxSize) || slots == 0 || slots > 1<<20 || uint64(fi.Size()) != layout.SnapSize(pages, slots) {
		return nil, fmt.Errorf("%w: %s is not this snapshot's copy buffer", ErrCorrupt, path)
	}
	return mapCow(f, path, pages, slots)
}

func regionPages(size uint64) uint64 { return (size + snapPage - 1) / snapPage }

// cowPage copies page p into the ring. It reports false when the snapshot
// ended or broke while it waited for room.
func (s *Store) cowPage(m *cowMap, e, p uint64) bool {
	h := m.hdr
	head := h.Head.Load() // only the writer lock's holder changes it
	if head-h.Tail.Load() >= m.slots && !s.cowWaitRoom(m, e, head) {
		return false
	}
	slot := head % m.slots
	dst := m.ring[slot*snapPage : (slot+1)*snapPage]
	start := p * snapPage
	n := copy(dst, s.m.data[start:min(start+snapPage, uint64(len(s.m.data)))])
	clear(dst[n:])
	m.index[slot] = p
	faultPoint("snapshot-copy")
	h.Head.Store(head + 1)
	return true
}

// cowWaitRoom waits until the taker has made room in the ring. A taker
// that died ends the epoch; one that does not drain within snapWait breaks
// the snapshot. Either way writers go on.
func (s *Store) cowWaitRoom(m *cowMap, e, head uint64) bool {
	h := m.hdr
	deadline := time.Now().Add(snapWait)
	for {
		h.Waiting.Store(1)
		v := h.Room.Load()
		if head-h.Tail.Load() < m.slots {
			return true
		}
		if taker := uint32(e); taker != s.ident && !s.alive(taker) {
			s.snapAbandoned(e)
			return false
		}
		// (The taker's own Store waits too: its drainer is a goroutine of
		// its own, which needs no lock.)
		if !time.Now().Before(deadline) {
			s.snapBreak(e, m, layout.SnapBrokenFull)
			return false
		}
		ts := unix.NsecToTimespec(int64(10 * time.Millisecond))
		futex(&h.Room, futexWait, v, &ts)
	}
}

// snapBreak gives up on snapshot e: the taker will fail, and writers stop
// copying.
func (s *Store) snapBreak(e uint64, m *cowMap, why uint32) {
	if m != nil {
		m.hdr.BrokenPID.Store(uint32(os.Getpid()))
		m.hdr.BrokenWhy.Store(why)
	}
	s.hdr.Lock.Snapshot.CompareAndSwap(e, e|layout.SnapshotBroken)
	s.cows.m.unmap()
	s.cows = cowCache{epoch: e | layout.SnapshotBroken}
}

// snapAbandoned ends epoch e, whose taker died, and removes its buffer.
func (s *Store) snapAbandoned(e uint64) {
	if s.hdr.Lock.Snapshot.CompareAndSwap(e, 0) {
		os.Remove(snapPath(s.obj.path, snapNonce(e)))
	}
	s.cows.m.unmap()
	s.cows = cowCache{}
}

// cowDrop unmaps the cached buffer (Close).
func (s *Store) cowDrop() {
	s.cows.m.unmap()
	s.cows = cowCache{}
}

// snap is the taker's side: the image of the region at T, read in
// page order with read.
type snap struct {
	s     *Store
	epoch uint64
	m     *cowMap
	// At T: the header page (the lock word and the epoch cleared), Top,
	// and the counts the image must agree with.
	header []byte
	top    uint64
	meta   struct{ count, blockUsed, kvBytes, freeBytes uint64 }
	taken  time.Time
	pages  uint64 // pages of the image: [0, Top) rounded up to pages
	size   uint64 // the published size at the instant
	holes  bool   // a sparse store: skip its holes (see skipHole)

	mu    sync.Mutex
	next  uint64            // pages before next are read; the ring's copies of them are not needed
	held  map[uint64][]byte // copies from the ring, of pages not read yet
	spare [][]byte
	stop  chan struct{}
	done  chan struct{}
}

// withSnapshot takes a snapshot for op ("dump", "backup") and runs copy
// with it, ending the snapshot whatever happens. copy calls done once it
// has everything: done ends the snapshot and reports whether it held, so
// that the caller writes the end of its output only then.
func (s *Store) withSnapshot(ctx context.Context, op string, copy func(sn *snap, done func() error) error) (err error) {
	sn, err := s.takeSnapshot(ctx)
	if err != nil {
		return wrapErr(op, s.name, err)
	}
	ended := false
	defer func() {
		if !ended {
			sn.end()
		}
	}()
	g := s.guard()
	defer s.unguard(&g, &err)
	return copy(sn, func() error {
		ended = true
		if err := sn.end(); err != nil {
			return wrapErr(op, s.name, err)
		}
		return nil
	})
}

// progress is eachChunk's report for a caller's fn, or nil.
func progress(fn func(Progress), p *Progress) func() {
	if fn == nil {
		return nil
	}
	return func() { fn(*p) }
}

// eachChunk passes the snapshot's pages from first on to each, a chunk at a
// time, with the chunk's first page; between chunks it calls report (at
// most every 50 ms) and stops with ctx's error when ctx is done.
func (sn *snap) eachChunk(ctx context.Context, first uint64, each func(pg uint64, buf []byte) error, report func()) error {
	chunk := make([]byte, snapChunk*snapPage)
	last := time.Now()
	for pg := first; pg < sn.pages; {
		n := min(snapChunk-pg%snapChunk, sn.pages-pg)
		buf := chunk[:n*snapPage]
		if err := sn.read(pg, buf); err != nil {
			return err
		}
		if err := each(pg, buf); err != nil {
			return err
		}
		pg += n
		if report != nil && time.Since(last) >= 50*time.Millisecond {
			report()
			last = time.Now()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// takeSnapshot starts a snapshot of the store: its instant is within this
// call. The caller reads it with read and must call end.
func (s *Store) takeSnapshot(ctx context.Context) (*snap, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	if s.readOnly {
		return nil, fmt.Errorf("%w: a snapshot needs a writable Store: it asks the writers to copy pages for it through the store", ErrReadOnly)
	}
	s.removeStaleSnapshots()
	sn := &snap{s: s, held: map[uint64][]byte{}, holes: s.flags&layout.FlagNoReserve != 0}
	// The buffer covers the most the store may grow to: its size at the
	// instant is not known before the lock, and every writer must agree
	// on the buffer's shape.
	pages := regionPages(s.maxSize)
	var path string
	var f *os.File
	for {
		var b [4]byte
		if _, err := crand.Read(b[:]); err != nil {
			return nil, err
		}
		nonce := binary.LittleEndian.Uint32(b[:]) &^ (1 << 31)
		if nonce == 0 {
			continue
		}
		sn.epoch = uint64(nonce)<<32 | uint64(s.ident)
		path = snapPath(s.obj.path, nonce)
		var err error
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("snapshot: creating its copy buffer: %w", err)
		}
		break
	}
	fail := func(err error) (*snap, error) {
		f.Close()
		os.Remove(path)
		sn.m.unmap()
		return nil, err
	}
	// Every writer must be able to open it: the store's own owner group
	// and mode.
	var st unix.Stat_t
	if err := unix.Fstat(s.obj.fd(), &st); err == nil {
		unix.Fchown(int(f.Fd()), -1, int(st.Gid))
		unix.Fchmod(int(f.Fd()), st.Mode&0o666)
	}
	size := layout.SnapSize(pages, snapRing)
	if err := unix.Fallocate(int(f.Fd()), 0, 0, int64(size)); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			return fail(fmt.Errorf("%w: snapshot: its copy buffer of %s does not fit in %s (%s free)", ErrFull, units.FormatBytes(int64(size)), ShmDir, freeSpace(ShmDir)))
		}
		return fail(&os.PathError{Op: "fallocate", Path: path, Err: err})
	}
	m, err := mapCow(f, path, pages, snapRing)
	if err != nil {
		return fail(err)
	}
	sn.m = m
	// Touch the ring now, so that no writer pays for its first use.
	unix.Madvise(m.data, unix.MADV_POPULATE_WRITE)
	h := m.hdr
	h.Magic, h.Epoch, h.Created = layout.SnapMagic, sn.epoch, s.hdr.CreatedNano
	h.Pages, h.Slots = pages, snapRing
	h.PID, h.Start = uint32(os.Getpid()), selfStart
	err = s.withLock(ctx, func(*txn) error {
		if cur := s.hdr.Lock.Snapshot.Load(); cur != 0 {
			taker := uint32(cur)
			if cur&layout.SnapshotBroken == 0 && (taker == s.ident || s.alive(taker)) {
				pid := 0
				if slot, _, ok := splitIdentity(taker); ok {
					pid = int(s.procSlot(slot).PID.Load())
				}
				return fmt.Errorf("%w: pid %d is taking one", ErrSnapshotBusy, pid)
			}
			// Its taker died, or it broke: end it.
			os.Remove(snapPath(s.obj.path, snapNonce(cur)))
			s.hdr.Lock.Snapshot.Store(0)
		}
		top, err := s.top()
		if err != nil {
			return err
		}
		sn.header = append([]byte(nil), s.m.data[:layout.HeaderSize]...)
		sn.top, sn.size = top, s.geo.Size
		mt := &s.hdr.Meta
		sn.meta.count, sn.meta.blockUsed = mt.Count.Load(), mt.BlockUsed.Load()
		sn.meta.kvBytes, sn.meta.freeBytes = mt.KVBytes.Load(), mt.FreeBytes.Load()
		sn.pages = min(regionPages(top), pages)
		// The header page is read already; pages past Top are not part of
		// the image: no writer needs to copy them.
		// (No writer maps the buffer yet: word by word, not bit by bit.)
		m.bitmap[0].Or(1)
		if p := sn.pages; p < pages {
			m.bitmap[p/64].Or(^uint64(0) << (p % 64))
			for w := p/64 + 1; w < uint64(len(m.bitmap)); w++ {
				m.bitmap[w].Store(^uint64(0))
			}
		}
		sn.taken = time.Now()
		// The instant T.
		s.hdr.Lock.Snapshot.Store(sn.epoch)
		faultPoint("snapshot-begin")
		return nil
	}, false)
	if err != nil {
		return fail(err)
	}
	f.Close()
	binary.LittleEndian.PutUint32(sn.header[layout.LockOff:], 0)
	binary.LittleEndian.PutUint64(sn.header[layout.SnapshotOff:], 0)
	sn.stop, sn.done = make(chan struct{}), make(chan struct{})
	go sn.drainer()
	return sn, nil
}

// removeStaleSnapshots removes the copy buffers of this store whose taker
// died before it could end its snapshot.
func (s *Store) removeStaleSnapshots() {
	prefix := strings.TrimSuffix(filepath.Base(snapPath(s.obj.path, 0)), "0")
	des, err := os.ReadDir(ShmDir)
	if err != nil {
		return
	}
	for _, de := range des {
		if !strings.HasPrefix(de.Name(), prefix) {
			continue
		}
		path := filepath.Join(ShmDir, de.Name())
		f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		var hb [64]byte
		_, err = f.ReadAt(hb[:], 0)
		f.Close()
		if err != nil || binary.LittleEndian.Uint64(hb[0:]) != layout.SnapMagic ||
			int64(binary.LittleEndian.Uint64(hb[16:])) != s.hdr.CreatedNano {
			continue
		}
		pid, start := int(binary.LittleEndian.Uint32(hb[40:])), binary.LittleEndian.Uint64(hb[48:])
		if pid != os.Getpid() && startTime(pid) != start {
			os.Remove(path)
		}
	}
}

// removeSnapshotBuffers removes what the store name, just removed, may
// have around it: its snapshots' copy buffers (a dump of it still running
// fails, since its writers cannot open the buffer) and the temporary
// stores of loads and restores of it whose process died.
func removeSnapshotBuffers(name string) {
	n, err := shmopen.Normalize(name)
	if err != nil {
		return
	}
	prefix := strings.TrimSuffix(filepath.Base(snapPath(n[1:], 0)), "0")
	des, _ := os.ReadDir(ShmDir)
	for _, de := range des {
		if strings.HasPrefix(de.Name(), prefix) {
			os.Remove(filepath.Join(ShmDir, de.Name()))
		}
	}
	removeDeadTemps(name)
}

// drainer takes the writers' copies out of the ring as they come, so that
// writers never wait for the taker's reading or its output.
func (sn *snap) drainer() {
	defer close(sn.done)
	t := time.NewTicker(200 * time.Microsecond)
	defer t.Stop()
	for {
		sn.mu.Lock()
		sn.drain()
		sn.mu.Unlock()
		select {
		case <-sn.stop:
			return
		case <-t.C:
		}
	}
}

// drain empties the ring. REQUIRES: sn.mu.
func (sn *snap) drain() {
	m := sn.m
	h := m.hdr
	head, tail := h.Head.Load(), h.Tail.Load()
	if head == tail {
		return
	}
	for ; tail < head; tail++ {
		slot := tail % m.slots
		p := m.index[slot]
		if p < sn.next || p >= sn.pages || sn.held[p] != nil {
			continue // read already (or never needed), or a second copy
		}
		var b []byte
		if n := len(sn.spare); n > 0 {
			b, sn.spare = sn.spare[n-1], sn.spare[:n-1]
		} else {
			b = make([]byte, snapPage)
		}
		copy(b, m.ring[slot*snapPage:(slot+1)*snapPage])
		sn.held[p] = b
	}
	h.Tail.Store(tail)
	h.Room.Add(1)
	if h.Waiting.Load() != 0 {
		h.Waiting.Store(0)
		futex(&h.Room, futexWake, 1<<30, nil)
	}
}

// read fills dst with the image's pages from p0 on: len(dst)/snapPage of
// them, all within one bitmap word (p0/64), and p0 the next page not read
// (pages are read once, in order). Pages past the image read as zeros.
// REQUIRES: the fault guard, as for any read of the mapping.
func (sn *snap) read(p0 uint64, dst []byte) error {
	n := uint64(len(dst)) / snapPage
	if n == 0 || p0/64 != (p0+n-1)/64 {
		panic("shmkv: snapshot read across a bitmap word")
	}
	w := &sn.m.bitmap[p0/64]
	mask := (uint64(1)<<n - 1) << (p0 % 64)
	if n == 64 {
		mask = ^uint64(0)
	}
	pre := w.Load()
	for i := range n {
		p := p0 + i
		if pre&(1<<(p%64)) != 0 {
			continue
		}
		sn.copyLive(p, dst[i*snapPage:(i+1)*snapPage])
	}
	// Claim the pages: from here on writers change them without copying.
	// NB: every load of the copies above is done before this OR.
	old := w.Or(mask)
	for i := range n {
		p := p0 + i
		page := dst[i*snapPage : (i+1)*snapPage]
		switch {
		case p == 0:
			copy(page, sn.header)
			continue
		case p >= sn.pages:
			clear(page)
			continue
		case old&(1<<(p%64)) == 0:
			continue // the live copy is the page at T
		}
		// A writer copied it before changing it: the copy is in the ring
		// (published before the bit) or drained already.
		sn.mu.Lock()
		b := sn.held[p]
		if b == nil {
			sn.drain()
			b = sn.held[p]
		}
		if b == nil {
			sn.mu.Unlock()
			return fmt.Errorf("%w: snapshot: page %d was copied by a writer, but its copy is not in the buffer", ErrCorrupt, p)
		}
		copy(page, b)
		delete(sn.held, p)
		sn.spare = append(sn.spare, b)
		sn.mu.Unlock()
	}
	sn.mu.Lock()
	sn.next = p0 + n
	sn.mu.Unlock()
	return nil
}

// copyLive copies page p of the live region into dst; a sparse store's
// hole (never written: zeros) is not touched, or tmpfs would allocate it.
func (sn *snap) copyLive(p uint64, dst []byte) {
	start := p * snapPage
	data := sn.s.m.data
	if p == 0 || start >= uint64(len(data)) {
		return // the header is sn.header; past the object: zeros
	}
	if sn.holes {
		if d, err := unix.Seek(sn.s.obj.fd(), int64(start), unix.SEEK_DATA); err == nil && uint64(d) >= start+snapPage {
			clear(dst)
			return
		}
	}
	n := copy(dst, data[start:min(start+snapPage, uint64(len(data)))])
	clear(dst[n:])
}

// end stops the drainer and ends the epoch. Its error says whether the
// snapshot held: nil means every page read was the page at T.
func (sn *snap) end() error {
	if sn.stop != nil {
		close(sn.stop)
		<-sn.done
		sn.stop = nil
	}
	s := sn.s
	var cur uint64
	var err error
	for attempt := 0; ; attempt++ {
		err = s.withLock(context.Background(), func(*txn) error {
			cur = s.hdr.Lock.Snapshot.Load()
			if cur&^layout.SnapshotBroken == sn.epoch {
				s.hdr.Lock.Snapshot.Store(0)
			}
			return nil
		}, false)
		if err == nil || errors.Is(err, ErrClosed) || attempt == 10 {
			break
		}
	}
	why, pid := sn.m.hdr.BrokenWhy.Load(), sn.m.hdr.BrokenPID.Load()
	sn.m.unmap()
	os.Remove(sn.m.path)
	switch {
	case err != nil:
		return fmt.Errorf("snapshot: ending it: %w", err)
	case cur&^layout.SnapshotBroken != sn.epoch:
		return fmt.Errorf("%w: another process ended it, taking this process for dead", ErrSnapshotLost)
	case cur&layout.SnapshotBroken != 0:
		reason := "it could not open the copy buffer"
		if why == layout.SnapBrokenFull {
			reason = fmt.Sprintf("the copy buffer stayed full for %v (this process did not drain it: stopped, or starved of CPU)", snapWait)
		}
		return fmt.Errorf("%w: writer pid %d gave up copying pages for it: %s", ErrSnapshotLost, pid, reason)
	}
	return nil
}
