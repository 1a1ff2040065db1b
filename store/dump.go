package store

// Dump and load: every key and value of a store, in a portable, versioned,
// streaming format that does not depend on the region's layout, so that a
// dump loads into any later version of shmkv, and into a store of another
// size. The format is binary: keys and values are arbitrary bytes, which a
// text format would have to escape (hex doubles them), and a dump must keep
// up with copying the store's memory. `shmkv keys` and `shmkv get --json`
// are the greppable views.
//
// # Format, version 1
//
// All integers little-endian. xxh64 is XXH64 with seed 0
// (github.com/cespare/xxhash/v2).
//
//	header:
//	  0   8  magic "SHMKVDMP"
//	  8   4  format version: 1
//	  12  4  header length H, a multiple of 8
//	  16  8  keys in the dump
//	  24  8  bytes of their keys and values
//	  32  8  the snapshot's instant, unix nanoseconds
//	  40  8  the source store's Size        \
//	  48  8  its MaxEntries                  | the options Load creates
//	  56  4  its Mode (permission bits)      | the store with, unless told
//	  60  4  flags: 1 NoReserve, 2 Populate, | otherwise
//	         4 Lock                          |
//	  64  4  HugePages: 0 off, 1 thp, 2 tlb /
//	  68  4  the source's store format version (layout.Version)
//	  72  8  when the source was created, unix nanoseconds
//	  80  2  length N of the source store's name
//	  82  N  the name; zeros up to H-8
//	  H-8 8  xxh64 of header bytes [0, H-8)
//	blocks, each:
//	  0   4  payload length L
//	  4   4  records in the payload
//	  8   8  block number: 0, 1, 2, ...
//	  16  L  records: uvarint key length, uvarint value length, key, value
//	  16+L 8 xxh64 of the block's bytes [0, 16+L)
//	the end: a block with L = 0 and no records, then
//	  0   8  total records
//	  8   8  xxh64 of the header, each block's checksum (8 bytes, in
//	         order, the end block's included) and the total above
//	  16  8  magic "SHMKVEND"
//
// A block holds whole records, about 1 MiB of them (one record if it is
// larger). Load checks each block's checksum and number before it applies
// any of its records, so a damaged dump never puts a damaged key or value
// into a store; truncation shows as a missing end. A reader of version 1
// refuses a dump of a later version, saying so.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/layout"
)

// DumpVersion is the dump format version this build writes; it reads
// this one and earlier ones. Version 2 records the store's MaxSize.
const DumpVersion = 2

const (
	dumpMagic = "SHMKVDMP"
	endMagic  = "SHMKVEND"
	// dumpBlock is how many payload bytes a block collects before it is
	// written.
	dumpBlock = 1 << 20
	// maxBlockPayload bounds a block's length when reading: one record of
	// the largest key and value, and its two lengths.
	maxBlockPayload = MaxKeySize + MaxValueSize + 2*binary.MaxVarintLen64
	// loadBatch is how many records Load puts per transaction, at most:
	// each is all or nothing (a SIGKILL leaves it wholly in or out).
	loadBatch = 1024
)

// Progress reports how far a dump, load, backup or restore has come.
type Progress struct {
	// Bytes is what has been read: of the store's heap (dump) or region
	// (backup), or of the input (load, restore). TotalBytes is what it
	// will reach, or 0 when unknown (an input of unknown length).
	Bytes, TotalBytes int64
	// Keys is how many keys have been written (dump) or loaded (load);
	// TotalKeys how many the snapshot or the dump holds.
	Keys, TotalKeys int64
	// Written is what a dump or backup has written so far.
	Written int64
}

// DumpHeader describes a dump: its format, its source, and what it holds.
type DumpHeader struct {
	Version uint32 // dump format version
	Keys    int64
	KVBytes int64     // bytes of keys and values
	Taken   time.Time // the snapshot's instant
	// The source store: its name, its format version, when it was
	// created, and the options it was created with (what Load creates a
	// store with unless told otherwise).
	Name         string
	StoreVersion uint32
	Created      time.Time
	Options      Options
}

// Dump writes every key and value of the store to w, as they all were at
// one instant during the call, in the dump format (see the package's
// dump.go). Writers in every process go on meanwhile: the store's
// writer lock is held for microseconds, twice (see snapshot.go). It needs a
// writable Store.
func (s *Store) Dump(w io.Writer) error {
	_, err := s.DumpContext(context.Background(), w, nil)
	return err
}

// DumpContext is Dump, stopping early with ctx's error when ctx is done,
// and calling fn (if not nil) as it goes. Writes to w come in blocks of
// about 1 MiB; the end of the dump is written last, only once the
// snapshot is known to have held, so an output cut short for any reason
// is refused by every reader.
func (s *Store) DumpContext(ctx context.Context, w io.Writer, fn func(Progress)) (p Progress, err error) {
	err = s.withSnapshot(ctx, "dump", func(sn *snap, done func() error) error {
		p.TotalBytes = int64(sn.top - s.geo.HeapOff)
		p.TotalKeys = int64(sn.meta.count)
		enc := newDumpEncoder(w)
		if err := enc.header(sn.dumpHeader(s.name)); err != nil {
			return err
		}
		walk := heapWalker{off: s.geo.HeapOff, top: sn.top, emit: func(k, v []byte) error {
			p.Keys++
			return enc.record(k, v)
		}}
		err := sn.eachChunk(ctx, s.geo.HeapOff/snapPage, func(pg uint64, buf []byte) error {
			if err := walk.feed(buf); err != nil {
				return err
			}
			p.Bytes = int64(min((pg+uint64(len(buf))/snapPage)*snapPage, sn.top) - s.geo.HeapOff)
			p.Written = enc.written
			return nil
		}, progress(fn, &p))
		if err != nil {
			return err
		}
		if err := walk.finish(sn); err != nil {
			return err
		}
		if err := enc.flush(); err != nil {
			return err
		}
		// The end goes out only if the snapshot held.
		if err := done(); err != nil {
			return err
		}
		if err := enc.end(); err != nil {
			return err
		}
		p.Written = enc.written
		return nil
	})
	if err != nil {
		return p, err
	}
	if fn != nil {
		fn(p)
	}
	return p, nil
}

// dumpHeader is the header of a dump of this snapshot.
func (sn *snap) dumpHeader(name string) DumpHeader {
	le := binary.LittleEndian
	hd := sn.header
	flags := le.Uint32(hd[24:])
	return DumpHeader{
		Version: DumpVersion, Keys: int64(sn.meta.count), KVBytes: int64(sn.meta.kvBytes),
		Taken: sn.taken, Name: name, StoreVersion: le.Uint32(hd[8:]),
		Created: time.Unix(0, int64(le.Uint64(hd[104:]))),
		Options: Options{
			Size: int64(le.Uint64(hd[16:])), MaxSize: int64(le.Uint64(hd[120:])), MaxEntries: int64(le.Uint64(hd[80:])),
			Mode: fs.FileMode(le.Uint32(hd[32:])), HugePages: HugePages(le.Uint32(hd[28:])),
			NoReserve: flags&layout.FlagNoReserve != 0, Populate: flags&layout.FlagPopulate != 0,
			Lock: flags&layout.FlagLock != 0,
		},
	}
}

// heapWalker reads the heap's blocks from the image as it streams past, in
// pages, and emits each live entry's key and value. A block that spans
// pieces is gathered (a live one) or skipped (a free one).
type heapWalker struct {
	off, top uint64 // region offset of the next byte; the heap's end at T
	part     []byte // the block begun and not finished: its bytes so far
	skip     uint64 // bytes of a free block still to pass
	emit     func(k, v []byte) error

	count, blockBytes, kvBytes, freeBytes uint64
}

func (w *heapWalker) bad(format string, args ...any) error {
	return fmt.Errorf("%w: snapshot: heap block at %#x: %s", ErrCorrupt, w.off, fmt.Sprintf(format, args...))
}

// feed passes the next len(b) bytes of the image to the walker.
func (w *heapWalker) feed(b []byte) error {
	if rest := w.top - min(w.off, w.top); uint64(len(b)) > rest {
		b = b[:rest] // past Top: not heap
	}
	for len(b) > 0 {
		if w.skip > 0 {
			n := min(w.skip, uint64(len(b)))
			b, w.off, w.skip = b[n:], w.off+n, w.skip-n
			continue
		}
		if len(w.part) == 0 && len(b) >= layout.EntryHeader {
			// The common case: the block starts here, its header whole.
			size, free, need, err := w.head(b)
			if err != nil {
				return err
			}
			if need > uint64(len(b)) { // a big free block's size is in the next piece
				w.part = append(w.part[:0], b...)
				w.off += uint64(len(b))
				return nil
			}
			if free || b[11]&layout.EntryIndex != 0 { // free, or an index table
				n := min(size, uint64(len(b)))
				b, w.off, w.skip = b[n:], w.off+n, size-n
				continue
			}
			if size <= uint64(len(b)) {
				if err := w.entry(b[:size]); err != nil {
					return err
				}
				b, w.off = b[size:], w.off+size
				continue
			}
			w.part = append(w.part[:0], b...)
			w.off += uint64(len(b))
			return nil
		}
		// Gathering a block that began in an earlier piece: first its
		// header (8 bytes, or 32 for a big free block), then, if live,
		// its flags and its whole.
		need, whole := uint64(8), false
		if len(w.part) >= 8 {
			size, free, hn, err := w.head(w.part)
			switch {
			case err != nil:
				return err
			case hn > uint64(len(w.part)):
				need = hn
			case free || (len(w.part) >= layout.EntryHeader && w.part[11]&layout.EntryIndex != 0):
				w.skip = size - uint64(len(w.part))
				w.part = w.part[:0]
				continue
			case len(w.part) < layout.EntryHeader:
				need = layout.EntryHeader // its flags first: an index table is not gathered
			default:
				need, whole = size, true
			}
		}
		n := min(need-uint64(len(w.part)), uint64(len(b)))
		w.part = append(w.part, b[:n]...)
		b, w.off = b[n:], w.off+n
		if !whole {
			if uint64(len(w.part)) == need {
				// The header is whole: a free block passes now, even an
				// 8-byte fragment that ends the heap, after which no byte
				// comes.
				size, free, hn, err := w.head(w.part)
				if err != nil {
					return err
				}
				if free && hn <= need {
					w.skip, w.part = size-need, w.part[:0]
				}
			}
			continue
		}
		if uint64(len(w.part)) == need {
			if err := w.entry(w.part); err != nil {
				return err
			}
			w.part = w.part[:0]
		}
	}
	return nil
}

// head reads a block's size and whether it is free from its first 8
// bytes, or 32 for a big free block (layout.BigFree), and checks them. For
// a free block it also counts it. need is how many of the block's bytes it
// needs: when b is shorter, it returns only need.
func (w *heapWalker) head(b []byte) (size uint64, free bool, need uint64, err error) {
	start := w.off - uint64(len(w.part)) // the block's offset
	hw := binary.LittleEndian.Uint64(b)
	size = entrySize(hw)
	raw := uint32(hw >> 32)
	free = raw&layout.SizeFree != 0
	if size == 0 && raw&(layout.SizeFree|layout.SizeLazy) == layout.SizeFree {
		const n = layout.BigSizeOff + 8
		if len(b) < n {
			return 0, true, n, nil
		}
		size = binary.LittleEndian.Uint64(b[layout.BigSizeOff:])
		if size < layout.EntrySize {
			return 0, false, n, w.bad("big free block of %d bytes", size)
		}
	}
	if size < layout.EntryAlign || size%layout.EntryAlign != 0 || size > w.top-start || (!free && size < layout.EntrySize) {
		return 0, false, 8, w.bad("size %d", size)
	}
	if free {
		w.freeBytes += size
	}
	return size, free, 8, nil
}

// entry emits the live block b.
func (w *heapWalker) entry(b []byte) error {
	seq := binary.LittleEndian.Uint32(b)
	kl, slack := uint64(binary.LittleEndian.Uint16(b[8:])), uint64(b[10])
	size := uint64(len(b))
	if seq&1 != 0 {
		return w.bad("an allocated block with an odd Seq at the snapshot's instant")
	}
	if b[11]&layout.EntryIndex != 0 {
		return nil // an index table, not an entry
	}
	if layout.EntryHeader+kl+slack > size {
		return w.bad("key of %d bytes and slack of %d in a block of %d", kl, slack, size)
	}
	w.count++
	w.blockBytes += size
	w.kvBytes += size - layout.EntryHeader - slack
	return w.emit(b[layout.EntryHeader:layout.EntryHeader+kl], b[layout.EntryHeader+kl:size-slack])
}

// finish checks that the walk ended on Top and found what Meta counted at
// the snapshot's instant.
func (w *heapWalker) finish(sn *snap) error {
	if w.off != w.top || len(w.part) != 0 || w.skip != 0 {
		return fmt.Errorf("%w: snapshot: the heap's blocks do not end at its top %#x (walk at %#x, %d bytes of a free block to pass, %d of a block gathered)", ErrCorrupt, w.top, w.off, w.skip, len(w.part))
	}
	m := sn.meta
	if w.count != m.count || w.blockBytes != m.blockUsed || w.kvBytes != m.kvBytes || w.freeBytes != m.freeBytes {
		return fmt.Errorf("%w: snapshot: found %d entries (%d block bytes, %d key and value bytes, %d free), the store counted %d (%d, %d, %d) at the snapshot's instant",
			ErrCorrupt, w.count, w.blockBytes, w.kvBytes, w.freeBytes, m.count, m.blockUsed, m.kvBytes, m.freeBytes)
	}
	return nil
}

// dumpEncoder writes the dump format.
type dumpEncoder struct {
	w       io.Writer
	total   *xxhash.Digest // the header, each block's checksum, the count
	block   []byte         // 16 bytes of block header, then the payload
	records uint32
	seq     uint64
	count   uint64
	written int64
}

func newDumpEncoder(w io.Writer) *dumpEncoder {
	return &dumpEncoder{w: w, total: xxhash.New(), block: make([]byte, 16, 16+dumpBlock+4096)}
}

// put writes b to the output as is.
func (e *dumpEncoder) put(b []byte) error {
	n, err := e.w.Write(b)
	e.written += int64(n)
	if err != nil {
		return fmt.Errorf("dump: writing: %w", err)
	}
	return nil
}

// header writes the header. REQUIRES: before any record.
func (e *dumpEncoder) header(h DumpHeader) error {
	b := encodeDumpHeader(h)
	e.total.Write(b)
	return e.put(b)
}

func encodeDumpHeader(h DumpHeader) []byte {
	le := binary.LittleEndian
	b := headerFrame(dumpMagic, h.Version, 90, h.Name)
	le.PutUint64(b[16:], uint64(h.Keys))
	le.PutUint64(b[24:], uint64(h.KVBytes))
	le.PutUint64(b[32:], uint64(h.Taken.UnixNano()))
	o := h.Options
	le.PutUint64(b[40:], uint64(o.Size))
	le.PutUint64(b[48:], uint64(o.MaxEntries))
	le.PutUint32(b[56:], uint32(o.Mode.Perm()))
	var flags uint32
	if o.NoReserve {
		flags |= layout.FlagNoReserve
	}
	if o.Populate {
		flags |= layout.FlagPopulate
	}
	if o.Lock {
		flags |= layout.FlagLock
	}
	le.PutUint32(b[60:], flags)
	le.PutUint32(b[64:], uint32(o.HugePages))
	le.PutUint32(b[68:], h.StoreVersion)
	le.PutUint64(b[72:], uint64(h.Created.UnixNano()))
	le.PutUint64(b[80:], uint64(o.MaxSize))
	return sealHeader(b)
}

// headerFrame lays out a dump's or a backup's header: magic, version and
// total length at 0, 8 and 12; the caller's fields up to fixed-2; the
// store's name (cut to 64 KiB) as a 16-bit length and its bytes; padding to
// 8 bytes; and 8 bytes for the checksum, which sealHeader writes.
func headerFrame(magic string, version uint32, fixed int, name string) []byte {
	le := binary.LittleEndian
	name = name[:min(len(name), 1<<16-1)]
	n := (fixed + len(name) + 7) &^ 7
	b := make([]byte, n+8)
	copy(b, magic)
	le.PutUint32(b[8:], version)
	le.PutUint32(b[12:], uint32(n+8))
	le.PutUint16(b[fixed-2:], uint16(len(name)))
	copy(b[fixed:], name)
	return b
}

// sealHeader writes the checksum of header b into its last 8 bytes.
func sealHeader(b []byte) []byte {
	n := len(b) - 8
	binary.LittleEndian.PutUint64(b[n:], xxhash.Sum64(b[:n]))
	return b
}

func (e *dumpEncoder) record(k, v []byte) error {
	if e.records > 0 && len(e.block)-16+len(k)+len(v)+2*binary.MaxVarintLen64 > dumpBlock {
		if err := e.flush(); err != nil {
			return err
		}
	}
	e.block = binary.AppendUvarint(e.block, uint64(len(k)))
	e.block = binary.AppendUvarint(e.block, uint64(len(v)))
	e.block = append(e.block, k...)
	e.block = append(e.block, v...)
	e.records++
	e.count++
	return nil
}

// flush writes the block collected, if any.
func (e *dumpEncoder) flush() error {
	if e.records == 0 {
		return nil
	}
	return e.writeBlock()
}

func (e *dumpEncoder) writeBlock() error {
	le := binary.LittleEndian
	le.PutUint32(e.block[0:], uint32(len(e.block)-16))
	le.PutUint32(e.block[4:], e.records)
	le.PutUint64(e.block[8:], e.seq)
	e.block = le.AppendUint64(e.block, xxhash.Sum64(e.block))
	e.total.Write(e.block[len(e.block)-8:])
	err := e.put(e.block)
	e.block, e.records = e.block[:16], 0
	e.seq++
	return err
}

// end writes the end block and the trailer.
func (e *dumpEncoder) end() error {
	if err := e.flush(); err != nil {
		return err
	}
	if err := e.writeBlock(); err != nil { // empty: the end
		return err
	}
	var t [24]byte
	binary.LittleEndian.PutUint64(t[0:], e.count)
	e.total.Write(t[:8])
	binary.LittleEndian.PutUint64(t[8:], e.total.Sum64())
	copy(t[16:], endMagic)
	return e.put(t[:])
}

// DumpReader reads a dump: its header at once, then its records, each
// block of them checked before any of its records is handed out.
type DumpReader struct {
	r     *bufio.Reader
	h     DumpHeader
	total *xxhash.Digest
	read  int64 // bytes consumed

	block   []byte
	recs    []dumpRecord
	next    int // the next record of recs for Next
	seq     uint64
	records uint64
	done    bool
	err     error
}

type dumpRecord struct{ k, v []byte }

func damaged(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrDamaged, fmt.Sprintf(format, args...))
}

// NewDumpReader reads and checks a dump's header. A dump of a later format
// version is refused with ErrIncompatible; a damaged one with ErrDamaged.
func NewDumpReader(r io.Reader) (*DumpReader, error) {
	d := &DumpReader{r: bufio.NewReaderSize(r, 1<<20), total: xxhash.New()}
	var fixed [82]byte
	if err := d.full(fixed[:16], "header"); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	switch magic := string(fixed[:8]); {
	case magic == backupMagic:
		return nil, fmt.Errorf("%w: this is a backup (a region image), not a dump: restore it (shmkv restore)", ErrIncompatible)
	case magic != dumpMagic:
		return nil, fmt.Errorf("%w: not a shmkv dump (it starts with %q)", ErrIncompatible, fixed[:8])
	}
	if v := le.Uint32(fixed[8:]); v > DumpVersion || v == 0 {
		return nil, fmt.Errorf("%w: dump format version %d; this shmkv reads versions 1 to %d: load it with a newer shmkv", ErrIncompatible, v, DumpVersion)
	}
	hl := le.Uint32(fixed[12:])
	if hl < 90 || hl%8 != 0 || hl > 90+1<<16+16 {
		return nil, damaged("dump header length %d", hl)
	}
	hb := make([]byte, hl)
	copy(hb, fixed[:16])
	if err := d.full(hb[16:], "header"); err != nil {
		return nil, err
	}
	if sum := le.Uint64(hb[hl-8:]); sum != xxhash.Sum64(hb[:hl-8]) {
		return nil, damaged("dump header checksum %#x does not match its bytes", sum)
	}
	d.total.Write(hb)
	// Version 2 added MaxSize at 80 (growth); the name follows it.
	fixedLen, maxSize := 82, int64(0)
	if le.Uint32(hb[8:]) >= 2 {
		fixedLen, maxSize = 90, int64(le.Uint64(hb[80:]))
	}
	nl := int(le.Uint16(hb[fixedLen-2:]))
	if fixedLen+nl > int(hl)-8 {
		return nil, damaged("dump header: name of %d bytes in a header of %d", nl, hl)
	}
	flags := le.Uint32(hb[60:])
	d.h = DumpHeader{
		Version: le.Uint32(hb[8:]), Keys: int64(le.Uint64(hb[16:])), KVBytes: int64(le.Uint64(hb[24:])),
		Taken: time.Unix(0, int64(le.Uint64(hb[32:]))), StoreVersion: le.Uint32(hb[68:]),
		Created: time.Unix(0, int64(le.Uint64(hb[72:]))), Name: string(hb[fixedLen : fixedLen+nl]),
		Options: Options{
			Size: int64(le.Uint64(hb[40:])), MaxSize: maxSize, MaxEntries: int64(le.Uint64(hb[48:])),
			Mode: fs.FileMode(le.Uint32(hb[56:]) & 0o777), HugePages: HugePages(le.Uint32(hb[64:])),
			NoReserve: flags&layout.FlagNoReserve != 0, Populate: flags&layout.FlagPopulate != 0, Lock: flags&layout.FlagLock != 0,
		},
	}
	return d, nil
}

// Header is the dump's header.
func (d *DumpReader) Header() DumpHeader { return d.h }

// BytesRead is how much of the input has been consumed.
func (d *DumpReader) BytesRead() int64 { return d.read }

// full reads exactly len(b) bytes into b, feeding the file's checksum;
// running out is a truncated dump.
func (d *DumpReader) full(b []byte, what string) error {
	n, err := io.ReadFull(d.r, b)
	d.read += int64(n)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return damaged("truncated: the input ends in the %s, after %d bytes", what, d.read)
	}
	if err != nil {
		return fmt.Errorf("reading the dump: %w", err)
	}
	return nil
}

// Next returns the next key and value, or io.EOF once the dump has ended
// and every checksum, its count and its end have been verified. key and
// value alias the reader's buffer: they are valid until the next call.
func (d *DumpReader) Next() (key, value []byte, err error) {
	for d.next >= len(d.recs) {
		if err := d.nextBlock(); err != nil {
			return nil, nil, err
		}
	}
	r := d.recs[d.next]
	d.next++
	return r.k, r.v, nil
}

// nextBlock reads, checks and parses the next block into d.recs; io.EOF at
// the verified end.
func (d *DumpReader) nextBlock() error {
	if d.err != nil {
		return d.err
	}
	d.err = d.readBlock()
	return d.err
}

func (d *DumpReader) readBlock() error {
	d.recs, d.next = d.recs[:0], 0
	if d.done {
		return io.EOF
	}
	le := binary.LittleEndian
	d.block = d.grow(d.block[:0], 16)
	if err := d.full(d.block, "the header of a block"); err != nil {
		return err
	}
	l, n, seq := le.Uint32(d.block[0:]), le.Uint32(d.block[4:]), le.Uint64(d.block[8:])
	if seq != d.seq {
		return damaged("block %d carries number %d: a block is missing or out of place", d.seq, seq)
	}
	if uint64(l) > maxBlockPayload || uint64(n) > uint64(l) {
		return damaged("block %d: %d records in %d bytes", d.seq, n, l)
	}
	// Read the payload as it arrives, never allocating more than the
	// input has given: a damaged length must not cost a huge buffer.
	for left := int(l) + 8; left > 0; {
		step := min(left, 1<<20)
		start := len(d.block)
		d.block = d.grow(d.block, step)
		if err := d.full(d.block[start:], "a block"); err != nil {
			return err
		}
		left -= step
	}
	body := d.block[:16+l]
	if sum := le.Uint64(d.block[16+l:]); sum != xxhash.Sum64(body) {
		return damaged("block %d (%d records, %d bytes, at input offset %d) fails its checksum", d.seq, n, l, d.read-int64(l)-24)
	}
	d.total.Write(d.block[16+l:])
	d.seq++
	if l == 0 {
		if n != 0 {
			return damaged("end block with %d records", n)
		}
		return d.readEnd()
	}
	p := body[16:]
	for i := uint32(0); i < n; i++ {
		kl, a := binary.Uvarint(p)
		if a <= 0 {
			return damaged("block %d record %d: bad key length", d.seq-1, i)
		}
		vl, b := binary.Uvarint(p[a:])
		if b <= 0 || kl > MaxKeySize || vl > MaxValueSize || kl+vl > uint64(len(p)-a-b) {
			return damaged("block %d record %d: bad lengths (key %d, value %d, %d bytes left)", d.seq-1, i, kl, vl, len(p)-a-b)
		}
		p = p[a+b:]
		d.recs = append(d.recs, dumpRecord{k: p[:kl:kl], v: p[kl : kl+vl : kl+vl]})
		p = p[kl+vl:]
	}
	if len(p) != 0 {
		return damaged("block %d: %d bytes after its %d records", d.seq-1, len(p), n)
	}
	d.records += uint64(n)
	return nil
}

// grow extends b by n bytes, reusing its capacity.
func (d *DumpReader) grow(b []byte, n int) []byte {
	if len(b)+n <= cap(b) {
		return b[:len(b)+n]
	}
	return append(b, make([]byte, n)...)
}

// readEnd checks the trailer after the end block.
func (d *DumpReader) readEnd() error {
	var t [24]byte
	if err := d.full(t[:], "trailer"); err != nil {
		return err
	}
	d.total.Write(t[:8])
	want := d.total.Sum64()
	le := binary.LittleEndian
	switch {
	case string(t[16:]) != endMagic:
		return damaged("trailer: bad end mark %q", t[16:])
	case le.Uint64(t[8:]) != want:
		return damaged("the dump's checksum %#x does not match its bytes (%#x)", le.Uint64(t[8:]), want)
	case le.Uint64(t[0:]) != d.records || int64(d.records) != d.h.Keys:
		return damaged("the dump holds %d records; its end says %d, its header %d", d.records, le.Uint64(t[0:]), d.h.Keys)
	}
	d.done = true
	return io.EOF
}

// Load puts every key and value of the dump read from r into the store,
// in transactions of up to 1024 keys, each all or nothing: keys already
// there are overwritten, others are left alone. A dump is checked block
// by block before its keys are applied, so a damaged dump stops Load at
// the damage, never putting a damaged key or value; the keys of the blocks
// before it stay loaded.
func (s *Store) Load(r io.Reader) error {
	d, err := NewDumpReader(r)
	if err != nil {
		return wrapErr("load", s.name, err)
	}
	_, err = s.LoadContext(context.Background(), d, nil)
	if err != nil {
		return wrapErr("load", s.name, err)
	}
	return nil
}

// LoadContext is Load from a DumpReader whose header the caller has read,
// stopping between two transactions when ctx is done, and calling fn (if
// not nil) after each block.
func (s *Store) LoadContext(ctx context.Context, d *DumpReader, fn func(Progress)) (Progress, error) {
	p := Progress{TotalKeys: d.h.Keys}
	batch := min(loadBatch, int(s.geo.MaxIntents))
	last := time.Now()
	for {
		err := d.nextBlock()
		if err == io.EOF {
			break
		}
		if err != nil {
			return p, s.loadError(p, err)
		}
		recs := d.recs
		for len(recs) > 0 {
			if err := ctx.Err(); err != nil {
				return p, s.loadError(p, err)
			}
			n, err := s.loadBatch(ctx, recs[:min(batch, len(recs))])
			p.Keys += int64(n)
			if err != nil {
				return p, s.loadError(p, err)
			}
			recs = recs[n:]
		}
		p.Bytes = d.read
		if fn != nil && time.Since(last) >= 50*time.Millisecond {
			fn(p)
			last = time.Now()
		}
	}
	p.Bytes = d.read
	if fn != nil {
		fn(p)
	}
	return p, nil
}

// prefault maps, in one system call, the pages of a new store that a load
// of the dump h will write: the index and the heap the entries will take.
// First touches of fresh memory cost 20 us a page on some virtual
// machines, and one call is cheaper than a fault per page.
func (s *Store) prefault(h DumpHeader) {
	heap := uint64(h.KVBytes) + uint64(h.Keys)*(layout.EntryHeader+layout.EntryAlign)
	end := min(s.geo.HeapOff+heap, s.limit())
	if s.readOnly || end <= s.geo.IndexOff {
		return
	}
	unix.Madvise(s.m.data[s.geo.IndexOff&^(snapPage-1):end], unix.MADV_POPULATE_WRITE)
}

// loadBatch puts recs in one transaction, or, if they outgrow the journal,
// in halves. It returns how many it put.
func (s *Store) loadBatch(ctx context.Context, recs []dumpRecord) (int, error) {
	err := s.UpdateContext(ctx, func(b *Batch) error {
		for i := range recs {
			if err := b.Put(recs[i].k, recs[i].v); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		faultPoint("load-batch")
		return len(recs), nil
	}
	if len(recs) > 1 && errors.Is(err, ErrTooLarge) {
		n, err := s.loadBatch(ctx, recs[:len(recs)/2])
		if err != nil {
			return n, err
		}
		m, err := s.loadBatch(ctx, recs[len(recs)/2:])
		return n + m, err
	}
	return 0, err
}

func (s *Store) loadError(p Progress, err error) error {
	return fmt.Errorf("after loading %d of %d keys (each transaction of up to %d is wholly in or out): %w", p.Keys, p.TotalKeys, loadBatch, err)
}

// LoadOptions configure the package-level Load.
type LoadOptions struct {
	// Options creates the store; nil means the dump's (DumpHeader.Options).
	// ReadOnly is ignored.
	Options *Options
	// Replace loads into a new store under a temporary name, and renames
	// it over name only once the whole dump is in: until then name is
	// the store it was (or nothing), and then, at once, the loaded one.
	// Processes that have the old store open keep it until they open the
	// name again, as after Remove.
	Replace bool
	// Merge loads into the store name if it exists (the dump's keys
	// overwrite its own), and creates it otherwise.
	Merge bool
	// Progress, if not nil, is called as the load goes.
	Progress func(Progress)
}

// Load creates the store name from the dump d: with the dump's options
// unless opts says otherwise, failing with fs.ErrExist if the store exists
// (see LoadOptions for Replace and Merge). A load that fails (a damaged
// dump, a full store, ctx done) removes the store it created; with Merge
// the keys loaded stay. A load that is killed leaves the store it was
// loading with the keys of the transactions it committed, each of up to
// 1024 keys wholly in or out, and it passes Check; with Replace, it leaves
// name untouched.
func Load(ctx context.Context, name string, d *DumpReader, opts *LoadOptions) (Progress, error) {
	var lo LoadOptions
	if opts != nil {
		lo = *opts
	}
	o := d.h.Options
	if lo.Options != nil {
		o = *lo.Options
	}
	o.ReadOnly = false
	if lo.Replace && lo.Merge {
		return Progress{}, fmt.Errorf("shmkv: load: Replace and Merge exclude each other")
	}
	if !lo.Replace {
		var s *Store
		var err error
		if lo.Merge {
			s, err = OpenOrCreate(name, &o)
		} else {
			s, err = Create(name, &o)
		}
		if err != nil {
			return Progress{}, err
		}
		if !lo.Merge {
			s.prefault(d.h)
		}
		p, err := s.LoadContext(ctx, d, lo.Progress)
		if cerr := s.Close(); err == nil {
			err = cerr
		}
		if err != nil && !lo.Merge {
			// The store is this load's own: a dump found damaged, or a
			// load that failed, leaves nothing half made.
			if rerr := Remove(name); rerr == nil {
				err = fmt.Errorf("%w; the store it was loading was removed", err)
			}
		}
		if err != nil {
			return p, wrapErr("load", name, err)
		}
		return p, nil
	}
	tmp, err := tempName(name, "loading")
	if err != nil {
		return Progress{}, err
	}
	s, err := Create(tmp, &o)
	if err != nil {
		return Progress{}, err
	}
	s.prefault(d.h)
	p, err := s.LoadContext(ctx, d, lo.Progress)
	path := s.Path()
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = publish(path, name, true)
	}
	if err != nil {
		removeObjectPath(path)
		return p, wrapErr("load", name, fmt.Errorf("%w; the store was not replaced", err))
	}
	return p, nil
}
