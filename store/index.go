package store

// The index: open addressing over 64-byte buckets of 7 slots (see package
// layout). Keys never move once placed, and a bucket's Overflow only counts
// keys that probed past it, so a lookup can run concurrently with the
// writer: it either finds the key's slot (entries are validated by Seq and
// a second read of the slot), or reaches a bucket with no match and
// Overflow 0, which proves the key was absent at some instant of the
// lookup.

import (
	"bytes"
	"fmt"
	"sync/atomic"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
)

func hashKey(key []byte) uint64 { return layout.KeyHash(key) }

// itable is one index table as this process checked it: its first
// bucket's offset, its bucket count, and a view of its buckets.
type itable struct {
	off uint64 // the first bucket
	n   uint64
	b   []layout.Bucket
	blk uint64 // the heap block holding it; 0 for the first table
}

// indexView is the index as of one Grow.IndexGen: the current table, and
// while a migration runs (old.n != 0) the old one (migrate.go).
type indexView struct {
	gen      uint64
	cur, old itable
}

// view is the index in force. Readers call it once per lookup and check
// IndexGen again after it (indexMoved). It reads the descriptor again only
// when IndexGen has changed.
func (s *Store) view() (*indexView, error) {
	if v := s.idx.Load(); v != nil && v.gen == s.hdr.Grow.IndexGen.Load() {
		return v, nil
	}
	return s.loadView(s.hdr.Grow.IndexGen.Load())
}

// indexMoved reports whether the index changed since v: a lookup made in v
// must be made again, as v's tables may have been freed.
func (s *Store) indexMoved(v *indexView) bool {
	loadFence()
	return s.hdr.Grow.IndexGen.Load() != v.gen
}

// loadView reads and checks the descriptor IndexGen g selects. The writer
// fills a descriptor before it makes IndexGen select it and never writes
// the one selected, so a copy taken while IndexGen stayed g is whole.
func (s *Store) loadView(g uint64) (*indexView, error) {
	for attempt := 0; ; attempt++ {
		d := &s.hdr.Index.Desc[g&1]
		off, n, oo, on := d.Off.Load(), d.Buckets.Load(), d.OldOff.Load(), d.OldBuckets.Load()
		loadFence()
		if g2 := s.hdr.Grow.IndexGen.Load(); g2 != g {
			if attempt >= 1<<20 {
				return nil, fmt.Errorf("%w: index descriptor never stable", ErrCorrupt)
			}
			g = g2
			continue
		}
		v := &indexView{gen: g}
		lim := s.limit()
		var err error
		if v.cur, err = s.tableAt(off, n, lim); err != nil {
			return nil, err
		}
		if oo != 0 || on != 0 {
			if v.old, err = s.tableAt(oo, on, lim); err != nil {
				return nil, err
			}
			if v.old.off < v.cur.off+n*layout.BucketSize && v.cur.off < v.old.off+on*layout.BucketSize {
				return nil, fmt.Errorf("%w: index tables at %#x and %#x overlap", ErrCorrupt, off, oo)
			}
		}
		s.idx.Store(v)
		return v, nil
	}
}

// tableAt checks a table the descriptor names: the first table at
// IndexOff, or a heap block below lim (the descriptor names the block;
// the buckets start at the first cache line past its links,
// layout.IndexTableBuckets).
func (s *Store) tableAt(off, n, lim uint64) (itable, error) {
	g := &s.geo
	tb := itable{off: off, n: n}
	ok := n > 0
	if off == g.IndexOff {
		ok = ok && n == g.NumBuckets
	} else {
		tb.blk, tb.off = off, layout.IndexTableBuckets(off)
		ok = ok && off >= g.HeapOff && off%layout.EntryAlign == 0 && off < lim &&
			n <= (lim-off)/layout.BucketSize && layout.IndexTableBlock(n) <= lim-off
	}
	if !ok {
		return itable{}, fmt.Errorf("%w: index table of %d buckets at %#x", ErrCorrupt, n, off)
	}
	b, err := offsetptr.SliceAt[layout.Bucket](s.r, offsetptr.Offset(tb.off), n)
	if err != nil {
		return itable{}, fmt.Errorf("%w: index table: %v", ErrCorrupt, err)
	}
	tb.b = b
	return tb, nil
}

// bucket and bucketOff are bucket i and its offset, i taken modulo n
// (wrap), so a probe can run off the end and wrap.
func (t *itable) bucket(i uint64) *layout.Bucket { return &t.b[t.wrap(i)] }

func (t *itable) bucketOff(i uint64) uint64 { return t.off + t.wrap(i)*layout.BucketSize }

// wrap takes a bucket number past the end of the table back into it.
func (t *itable) wrap(b uint64) uint64 {
	if b >= t.n {
		b %= t.n
	}
	return b
}

func (t *itable) home(h uint64) uint64 { return layout.Home(h, t.n) }

// distance is how many buckets a probe from home walks to reach bucket.
func (t *itable) distance(home, bucket uint64) uint64 {
	// NB: both are < n, so no division (a DIV is tens of cycles).
	if bucket >= home {
		return bucket - home
	}
	return bucket + t.n - home
}

func (t *itable) bucketOfSlot(slotOff uint64) uint64 {
	return (slotOff - t.off) / layout.BucketSize
}

// hasSlot reports whether off is the offset of a slot word of the table.
func (t *itable) hasSlot(off uint64) bool {
	return t.n != 0 && off >= t.off && off < t.off+t.n*layout.BucketSize &&
		off%8 == 0 && (off-t.off)%layout.BucketSize != 0
}

// tableOf is the table of v that holds slot off, or nil.
func (v *indexView) tableOf(off uint64) *itable {
	switch {
	case v.cur.hasSlot(off):
		return &v.cur
	case v.old.hasSlot(off):
		return &v.old
	}
	return nil
}

func slotOff(bucketOff uint64, i int) uint64 { return bucketOff + 8 + 8*uint64(i) }

// readResult is what reading one candidate entry found.
type readResult uint8

const (
	readMatch   readResult = iota // the key asked for (any key, in a scan); copied
	readOther                     // a stable entry of another key
	readRetry                     // raced a writer: read the slot again
	readCorrupt                   // an entry that can never be valid
	readBadSum                    // a stable entry whose bytes fail its checksum (VerifyReads)
)

// readMode is what readEntry copies, and of which entry.
type readMode uint8

const (
	readHas   readMode = iota // a lookup: key's entry only; copy nothing
	readValue                 // a lookup: key's entry only; its value
	readKey                   // a scan: any entry; its key
	readKV                    // a scan: any entry; its key, then its value
)

// readEntry is the readers' one copy of an entry: Get, GetAppend and Has
// (through lookup) and every scan (through readSlot) use it. It reads the
// entry that slot word w (loaded from slot) names and appends to dst what
// m asks for: for a lookup, only if the entry's key is key. kl is the
// entry's key length, where the value starts in a readKV copy. The copy is
// returned only if, after it, the slot still holds w and the entry's first
// word (Seq and Size) is the even one the reader saw before it; else dst
// comes back as it was.
//
// Why that proves the copy is the value published for the key. The writer
// keeps three rules (put.go, alloc.go, compact.go):
//
//	W1. It writes a block's bytes only while no slot names the block: a
//	    new block is filled before the store that publishes it; a
//	    published block is written again only after its slot has been
//	    given another word, and its Seq has turned odd. (The one
//	    exception is SizePrevFree in its Size word, which a neighbour's
//	    free or allocation flips: readers mask it off, and since they
//	    compare the whole word, a flip only makes them read again.)
//	W2. Every Seq it stores is a fresh number (Alloc.SeqNext): a block
//	    header at a given offset never shows a Seq it showed before, until
//	    2^32 numbers have been handed out.
//	W3. Its stores become visible in program order (x86-TSO; atomic stores
//	    elsewhere), and the reader's loads are ordered by loadFence.
//
// Say the reader loaded w from the slot (t1), the header word h with an
// even Seq (t2), copied (t2..t3), and then found w in the slot (t4) and h
// at the offset (t5). If the slot held w all along [t1, t4], the block was
// published throughout, so by W1 nothing wrote its bytes, and the copy is
// the value. Otherwise the slot was given another word and then w again
// before t4: the block at the offset was freed, and a block was created
// there and published, its header written, with a fresh Seq (W2), before
// t4. At t5 the reader finds that header (or a later fresh Seq): not h.
//
// What is left needs the same key republished at the same offset while the
// reader is stopped, and 8 bytes at that offset equal to h exactly at the
// reader's two header loads: either a value crafted to hold a header, past
// or future (Alloc.SeqNext is readable, so the next Seq can be predicted),
// written where the old header was; or 2^32 sequence numbers handed out
// while the reader is stopped (about 4 per put: ten minutes of 1.8 million
// puts a second; a SIGSTOPped reader) and the same Seq and Size met again
// at that offset. A process that can write values can write the key
// anyway; entry checksums will close the rest. Blocks merge and split (alloc.go), so an
// old offset may lie anywhere inside a block now; every length the reader
// takes from there is checked against the region before use, so it may
// read garbage, but only ever rejects it (readRetry) or reports damage
// (readCorrupt), and lookup and readSlot bound their retries.
func (s *Store) readEntry(slot *atomic.Uint64, w uint64, key []byte, kh uint64, dst []byte, m readMode) ([]byte, uint64, readResult) {
	off := layout.SlotOffset(w)
	lim := s.limit()
	if !s.geo.EntryIn(off, lim) {
		// A slot naming a block past the size this reader loaded: the
		// writer published both, the size first, so look again once.
		if lim = s.limit(); !s.geo.EntryIn(off, lim) {
			return dst, 0, readCorrupt
		}
	}
	hw := offsetptr.MustAt[atomic.Uint64](s.r, offsetptr.Offset(off))
	h := hw.Load()
	if h&1 != 0 {
		// Freed after being replaced: the slot has moved on, which the
		// reload in unstable sees. A slot that still names the block once
		// it is free is damage, not a race: the writer publishes the new
		// slot word before it frees the old block, and a block is filled
		// with an even Seq before any slot names it.
		return dst, 0, s.unstable(slot, w, hw, h, readCorrupt)
	}
	e := offsetptr.MustAt[layout.Entry](s.r, offsetptr.Offset(off))
	// NB: each header field is read once: a concurrent free may rewrite
	// them, and the checks must hold for the values used.
	kl, size, slack := uint64(e.KeyLen), entrySize(h), uint64(e.Slack)
	if size > lim-off || layout.EntryHeader+kl+slack > size {
		return dst, 0, s.unstable(slot, w, hw, h, readCorrupt)
	}
	lookup := m <= readValue
	if lookup && kl != uint64(len(key)) {
		return dst, 0, s.unstable(slot, w, hw, h, readOther)
	}
	vl := size - layout.EntryHeader - kl - slack
	b, _ := s.r.Bytes(offsetptr.Offset(off+layout.EntryHeader), kl+vl)
	if lookup && !bytes.Equal(b[:kl], key) {
		return dst, 0, s.unstable(slot, w, hw, h, readOther)
	}
	n := len(dst)
	switch m {
	case readValue:
		dst = append(dst, b[kl:]...)
	case readKey:
		dst = append(dst, b[:kl]...)
	case readKV:
		dst = append(dst, b...)
	}
	// With VerifyReads, the sum is checked in the same window as the copy:
	// it is trusted only if unstable below finds the block still
	// published, and then the copy and the sum are of the same bytes. It
	// hashes the copy where there is one (hashing the region's bytes
	// again cost a Get 170 ns in a 100,000-key store, against 9 ns in
	// cache), and a lookup's key by the hash it probed with (kh).
	bad := false
	if s.verify {
		var khash uint64
		var val []byte
		switch m {
		case readHas:
			khash, val = kh, b[kl:]
		case readValue:
			khash, val = kh, dst[n:]
		case readKey:
			khash, val = layout.KeyHash(dst[n:]), b[kl:]
		case readKV:
			khash, val = layout.KeyHash(dst[n:n+int(kl)]), dst[n+int(kl):]
		}
		bad = layout.EntrySum(khash, val) != e.Sum
	}
	if r := s.unstable(slot, w, hw, h, readMatch); r != readMatch {
		return dst[:n], 0, r
	}
	if bad { // the copy is returned, for the error to name the key
		return dst, kl, readBadSum
	}
	return dst, kl, readMatch
}

// entrySize is the block size in an entry's first word (Seq, then Size).
func entrySize(h uint64) uint64 { return uint64(uint32(h>>32) &^ layout.SizeFlags) }

// unstable returns readRetry if the slot or the entry's first word changed
// since the reader loaded w and h, else r.
func (s *Store) unstable(slot *atomic.Uint64, w uint64, hw *atomic.Uint64, h uint64, r readResult) readResult {
	loadFence()
	if slot.Load() != w || hw.Load() != h {
		return readRetry
	}
	return r
}

// badSlot is a reader's error for an index slot whose entry can never be
// valid (readCorrupt).
func badSlot(at, w uint64) error {
	return fmt.Errorf("%w: index slot %#x names a bad entry (word %#x)", ErrCorrupt, at, w)
}

// lookup appends key's value to dst (Has asks for no copy). found is false
// if the key is absent.
func (s *Store) lookup(key, dst []byte, copyValue bool) (out []byte, found bool, err error) {
	h := hashKey(key)
	tag := layout.Tag(h)
	m := readHas
	if copyValue {
		m = readValue
	}
	for attempt := 0; ; attempt++ {
		out, found, retry, err := s.lookupOnce(h, tag, key, dst, m)
		if !retry {
			return out, found, err
		}
		if attempt >= 1<<20 {
			return dst, false, fmt.Errorf("%w: entry for key never stable after %d reads", ErrCorrupt, attempt)
		}
		if attempt > 64 {
			yield()
		}
	}
}

func (s *Store) lookupOnce(h uint64, tag uint16, key, dst []byte, m readMode) ([]byte, bool, bool, error) {
	v, err := s.view()
	if err != nil {
		return dst, false, false, err
	}
	// During a migration a key is in the old table until its bucket
	// moves: the writer stores it in the current table before it clears
	// the old slot, so looking in the old table first never misses it.
	if v.old.n != 0 {
		out, found, retry, err := s.lookupIn(&v.old, h, tag, key, dst, m)
		if retry {
			return dst, false, true, nil
		}
		if found || err != nil {
			if s.indexMoved(v) {
				return dst, false, true, nil
			}
			return out, found, false, err
		}
	}
	out, found, retry, err := s.lookupIn(&v.cur, h, tag, key, dst, m)
	// The tables may have been freed under us: what they said is void.
	if retry || s.indexMoved(v) {
		return dst, false, true, nil
	}
	return out, found, false, err
}

// lookupIn is a lookup in one table.
func (s *Store) lookupIn(t *itable, h uint64, tag uint16, key, dst []byte, m readMode) ([]byte, bool, bool, error) {
	home := t.home(h)
	for pos := uint64(0); ; pos++ {
		var slot *atomic.Uint64
		var w uint64
		if pos, slot, w = t.match(home, tag, pos); slot == nil {
			return dst, false, false, nil
		}
		out, _, r := s.readEntry(slot, w, key, h, dst, m)
		switch r {
		case readMatch:
			return out, true, false, nil
		case readRetry:
			return dst, false, true, nil
		case readCorrupt:
			return dst, false, false, badSlot(slotOff(t.bucketOff(home+pos>>3), int(pos&7)), w)
		case readBadSum:
			return dst, false, false, badSum(key, layout.SlotOffset(w))
		}
	}
}

// badSum is the error for an entry whose bytes fail its checksum.
func badSum(key []byte, off uint64) error {
	return fmt.Errorf("%w: the entry for key %s at %#x fails its checksum", ErrCorrupt, QuoteKey(key), off)
}

// match is the inner loop of a lookup. It looks for tag in the key's probe
// sequence from position pos (pos>>3 buckets past home, slot pos&7) on, and
// returns the position, the slot and the word of the first slot that
// carries it. slot is nil once the probe ends: at a bucket with no match
// and Overflow 0, or after MaxProbe buckets.
func (tb *itable) match(home uint64, tag uint16, pos uint64) (uint64, *atomic.Uint64, uint64) {
	buckets, t := tb.b, uint64(tag)
	d, i := pos>>3, pos&7
	b := tb.wrap(home + d)
	for ; d < layout.MaxProbe; d++ {
		bk := &buckets[b]
		for ; i < layout.BucketSlots; i++ {
			// Tags are never 0, so an empty slot never matches.
			if w := bk.Slots[i].Load(); w>>48 == t {
				return d<<3 | i, &bk.Slots[i], w
			}
		}
		if bk.Overflow.Load() == 0 {
			return 0, nil, 0
		}
		i = 0
		if b++; b == uint64(len(buckets)) {
			b = 0
		}
	}
	return 0, nil, 0
}

// place is where a key sits, or would go, in the index. Writer only.
type place struct {
	h      uint64
	tag    uint16
	found  bool
	slot   uint64 // offset of the slot word: the key's, or the first empty one
	word   uint64 // the slot's current word (0 if empty)
	b      block  // the entry it names, checked (liveBlock)
	tbl    *itable
	home   uint64 // the key's home bucket in tbl
	probed uint64 // buckets between the home bucket and slot's bucket
	// deleted: the key's slot is vacated by a delete planned in this
	// batch; a re-insert of the key reuses it.
	deleted bool
}

// find locates key for a writer, as it will be once the transaction's
// planned intents are published. With no free slot in reach, slot is 0.
func (t *txn) find(key []byte) (place, error) { return t.findHashed(key, hashKey(key)) }

// findHashed is find for a key whose hash h the caller has at hand.
func (t *txn) findHashed(key []byte, h uint64) (place, error) {
	b := t.batch
	if b == nil {
		return t.s.find(key, h, nil)
	}
	s := t.s
	for i := b.byHash.get(h); i != 0; i = b.chain[i-1] {
		// NB: each word of the intent is read once: this process wrote it,
		// but another may have written over it since.
		it := s.intentRec(i - 1)
		slot, nw, ow := it.Slot, it.New, it.Old
		w := nw
		if w == 0 {
			w = ow // a delete: the key is in the entry it removes
		}
		e, err := s.liveBlock(layout.SlotOffset(w))
		if err != nil {
			return place{}, err
		}
		if !bytes.Equal(s.key(e), key) {
			continue
		}
		v, err := s.view()
		if err != nil {
			return place{}, err
		}
		tb := v.tableOf(slot)
		if tb == nil || tb.distance(tb.home(h), tb.bucketOfSlot(slot)) >= layout.MaxProbe {
			return place{}, fmt.Errorf("%w: this batch's intent %d names slot %#x", ErrCorrupt, i-1, slot)
		}
		p := place{h: h, tag: layout.Tag(h), slot: slot, tbl: tb, home: tb.home(h), probed: tb.distance(tb.home(h), tb.bucketOfSlot(slot))}
		if nw != 0 {
			p.found, p.word, p.b = true, nw, e
		} else {
			p.deleted = true
		}
		return p, nil
	}
	return s.find(key, h, &b.slots)
}

// find locates key (whose hash is h) in the region, skipping the empty
// slots in reserved. During a migration it looks in the old table first;
// a new key always goes into the current one. REQUIRES: the writer lock,
// so nothing changes underneath but what another process scribbles, which
// each load checks.
func (s *Store) find(key []byte, h uint64, reserved *table) (p place, err error) {
	v, err := s.view()
	if err != nil {
		return p, err
	}
	if v.old.n != 0 {
		if err := s.findIn(&p, &v.old, key, h, nil, false); err != nil || p.found {
			return p, err
		}
	}
	err = s.findIn(&p, &v.cur, key, h, reserved, true)
	return p, err
}

// findIn is find in table tb, into p; with free, it also looks for an
// empty slot for the key. (NB: p is the caller's, so that a place, 16
// words, is not copied on its way out.)
func (s *Store) findIn(p *place, tb *itable, key []byte, h uint64, reserved *table, free bool) error {
	*p = place{h: h, tbl: tb, home: tb.home(h)}
	p.tag = layout.Tag(p.h)
	absent := false // proven absent; still looking for a free slot
	for d := uint64(0); d < layout.MaxProbe; d++ {
		boff := tb.bucketOff(p.home + d)
		b := tb.bucket(p.home + d)
		for i := range b.Slots {
			w := b.Slots[i].Load()
			if w == 0 {
				if free && p.slot == 0 && (reserved == nil || reserved.get(slotOff(boff, i)) == 0) {
					p.slot, p.probed = slotOff(boff, i), d
				}
				continue
			}
			if absent || layout.SlotTag(w) != p.tag {
				continue
			}
			e, err := s.liveBlock(layout.SlotOffset(w))
			if err != nil {
				return fmt.Errorf("%w (index slot %#x)", err, slotOff(boff, i))
			}
			if e.kl == uint64(len(key)) && bytes.Equal(s.key(e), key) {
				p.found, p.slot, p.word, p.b, p.probed = true, slotOff(boff, i), w, e, d
				return nil
			}
		}
		if b.Overflow.Load() == 0 {
			// No key probed past this bucket: ours is absent. Go on only to
			// find a free slot for it.
			absent = true
		}
		if absent && (p.slot != 0 || !free) {
			return nil
		}
	}
	return nil
}

// key, value and kv alias a checked live block's bytes (liveBlock), with
// the lengths read when it was checked. Writer only: readers copy under
// Seq validation instead.
func (s *Store) key(b block) []byte {
	k, _ := s.r.Bytes(offsetptr.Offset(b.off+layout.EntryHeader), b.kl)
	return k
}

func (s *Store) value(b block) []byte {
	v, _ := s.r.Bytes(offsetptr.Offset(b.off+layout.EntryHeader+b.kl), b.vl)
	return v
}

func (s *Store) kv(b block) []byte {
	kv, _ := s.r.Bytes(offsetptr.Offset(b.off+layout.EntryHeader), b.kl+b.vl)
	return kv
}

// probe raises Overflow of the buckets a new key passes on its way from its
// home bucket to the one it is placed in, in table tb.
func (t *txn) probe(tb *itable, home, d uint64) {
	for i := range d {
		off := tb.bucketOff(home + i)
		t.set(off, t.s.word(off).Load()+1) // Overflow is the word's low half
		faultPoint("probe")
	}
}

// unprobe undoes probe for a deleted key.
func (t *txn) unprobe(tb *itable, home, bucket uint64) {
	d := tb.distance(home, bucket)
	for i := range d {
		off := tb.bucketOff(home + i)
		w := t.s.word(off).Load()
		if uint32(w) == 0 {
			continue // only reachable through corruption; never go below 0
		}
		t.set(off, w-1)
		faultPoint("unprobe")
	}
}
