package store

// Backup and restore: the region's image, as it was at one instant (a
// snapshot, snapshot.go), byte for byte. Fast (no decoding: a copy of the
// used part of the region), but for this store format version only; dump
// and load move data between versions.
//
// # Format, version 1
//
// All integers little-endian; xxh64 is XXH64, seed 0.
//
//	header:
//	  0   8  magic "SHMKVBAK"
//	  8   4  backup format version: 1
//	  12  4  header length H, a multiple of 8
//	  16  4  the image's store format version (layout.Version)
//	  20  4  0
//	  24  8  the region's size
//	  32  8  image length L
//	  40  8  the snapshot's instant, unix nanoseconds
//	  48  8  keys
//	  56  8  bytes of their keys and values
//	  64  2  length N of the source store's name
//	  66  N  the name; zeros up to H-8
//	  H-8 8  xxh64 of header bytes [0, H-8)
//	image: L bytes, the region's bytes [0, L) at the snapshot's instant,
//	  L being Meta.Top rounded up to a page; normalised: the writer lock
//	  free, no snapshot in progress, no process attached, the journal
//	  idle and empty, zeros past Top
//	trailer:
//	  0   8  xxh64 of every byte before this field
//	  8   8  magic "SHMKVEND"
//
// Restore checks the checksums as it copies the image into a new object
// under a temporary name, then opens that store and runs Check on it, and
// only then renames it to the name asked for: a damaged backup is
// refused, and the name never leads to a half-restored store.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
	"github.com/shmkv/shmkv/shmopen"
)

// BackupVersion is the backup format version this build writes and reads.
const BackupVersion = 1

const backupMagic = "SHMKVBAK"

// BackupHeader describes a backup.
type BackupHeader struct {
	Version      uint32 // backup format version
	StoreVersion uint32 // the image's store format version
	Size         int64  // the region's size
	ImageBytes   int64
	Taken        time.Time
	Keys         int64
	KVBytes      int64
	Name         string // the source store's
}

// Backup writes the store's region, as it was at one instant during the
// call, to w in the backup format (see backup.go): what Restore recreates
// the store from. Writers in every process go on meanwhile (see
// snapshot.go). It needs a writable Store.
func (s *Store) Backup(w io.Writer) error {
	_, err := s.BackupContext(context.Background(), w, nil)
	return err
}

// BackupContext is Backup, stopping early with ctx's error when ctx is
// done, and calling fn (if not nil) as it goes. The trailer is written only
// once the snapshot is known to have held.
func (s *Store) BackupContext(ctx context.Context, w io.Writer, fn func(Progress)) (p Progress, err error) {
	err = s.withSnapshot(ctx, "backup", func(sn *snap, done func() error) error {
		img := min(sn.pages*snapPage, sn.size)
		p.TotalBytes, p.TotalKeys = int64(img), int64(sn.meta.count)
		total := xxhash.New()
		write := func(b []byte) error {
			total.Write(b)
			n, err := w.Write(b)
			p.Written += int64(n)
			if err != nil {
				return fmt.Errorf("backup: writing: %w", err)
			}
			return nil
		}
		if err := write(encodeBackupHeader(BackupHeader{
			Version: BackupVersion, StoreVersion: layout.Version, Size: int64(sn.size), ImageBytes: int64(img),
			Taken: sn.taken, Keys: int64(sn.meta.count), KVBytes: int64(sn.meta.kvBytes), Name: s.name,
		})); err != nil {
			return err
		}
		err := sn.eachChunk(ctx, 0, func(pg uint64, buf []byte) error {
			base := pg * snapPage
			sn.normalize(buf, base)
			buf = buf[:min(uint64(len(buf)), img-base)]
			if err := write(buf); err != nil {
				return err
			}
			p.Bytes = int64(base) + int64(len(buf))
			return nil
		}, progress(fn, &p))
		if err != nil {
			return err
		}
		if err := done(); err != nil {
			return err
		}
		var t [16]byte
		binary.LittleEndian.PutUint64(t[:], total.Sum64())
		copy(t[8:], endMagic)
		n, err := w.Write(t[:])
		p.Written += int64(n)
		if err != nil {
			return fmt.Errorf("backup: writing: %w", err)
		}
		return nil
	})
	if err != nil {
		return p, err
	}
	p.Keys = p.TotalKeys
	if fn != nil {
		fn(p)
	}
	return p, nil
}

// normalize makes the image bytes buf, at region offset base, what a store
// nobody has open looks like: no process slots, an idle empty journal,
// zeros past Top. (The header page's lock word and epoch were cleared when
// it was copied.)
func (sn *snap) normalize(buf []byte, base uint64) {
	zero := func(from, to uint64) {
		from, to = max(from, base), min(to, base+uint64(len(buf)))
		if from < to {
			clear(buf[from-base : to-base])
		}
	}
	g := &sn.s.geo
	zero(g.SlotsOff, g.IndexOff)
	zero(sn.top, sn.size)
}

func encodeBackupHeader(h BackupHeader) []byte {
	le := binary.LittleEndian
	b := headerFrame(backupMagic, h.Version, 66, h.Name)
	le.PutUint32(b[16:], h.StoreVersion)
	le.PutUint64(b[24:], uint64(h.Size))
	le.PutUint64(b[32:], uint64(h.ImageBytes))
	le.PutUint64(b[40:], uint64(h.Taken.UnixNano()))
	le.PutUint64(b[48:], uint64(h.Keys))
	le.PutUint64(b[56:], uint64(h.KVBytes))
	return sealHeader(b)
}

// readBackupHeader reads and checks a backup's header, feeding total.
func readBackupHeader(r io.Reader, total *xxhash.Digest) (BackupHeader, error) {
	le := binary.LittleEndian
	var fixed [16]byte
	if _, err := io.ReadFull(r, fixed[:]); err != nil {
		return BackupHeader{}, readErr(err, "header")
	}
	switch magic := string(fixed[:8]); {
	case magic == dumpMagic:
		return BackupHeader{}, fmt.Errorf("%w: this is a dump, not a backup: load it (shmkv load)", ErrIncompatible)
	case magic != backupMagic:
		return BackupHeader{}, fmt.Errorf("%w: not a shmkv backup (it starts with %q)", ErrIncompatible, fixed[:8])
	}
	if v := le.Uint32(fixed[8:]); v > BackupVersion || v == 0 {
		return BackupHeader{}, fmt.Errorf("%w: backup format version %d; this shmkv reads version %d: restore it with a newer shmkv", ErrIncompatible, v, BackupVersion)
	}
	hl := le.Uint32(fixed[12:])
	if hl < 74 || hl%8 != 0 || hl > 66+1<<16+16 {
		return BackupHeader{}, damaged("backup header length %d", hl)
	}
	b := make([]byte, hl)
	copy(b, fixed[:])
	if _, err := io.ReadFull(r, b[16:]); err != nil {
		return BackupHeader{}, readErr(err, "header")
	}
	if sum := le.Uint64(b[hl-8:]); sum != xxhash.Sum64(b[:hl-8]) {
		return BackupHeader{}, damaged("backup header checksum %#x does not match its bytes", sum)
	}
	total.Write(b)
	nl := int(le.Uint16(b[64:]))
	if 66+nl > int(hl)-8 {
		return BackupHeader{}, damaged("backup header: name of %d bytes in a header of %d", nl, hl)
	}
	h := BackupHeader{
		Version: le.Uint32(b[8:]), StoreVersion: le.Uint32(b[16:]), Size: int64(le.Uint64(b[24:])),
		ImageBytes: int64(le.Uint64(b[32:])), Taken: time.Unix(0, int64(le.Uint64(b[40:]))),
		Keys: int64(le.Uint64(b[48:])), KVBytes: int64(le.Uint64(b[56:])), Name: string(b[66 : 66+nl]),
	}
	if h.StoreVersion != layout.Version {
		return h, fmt.Errorf("%w: a backup of store format version %d; this shmkv restores version %d only: restore it with the shmkv that made it, dump it there, and load the dump here", ErrIncompatible, h.StoreVersion, layout.Version)
	}
	if h.Size < layout.MinSize || h.Size > layout.MaxSize || h.ImageBytes < layout.HeaderSize || h.ImageBytes > h.Size {
		return h, damaged("backup header: a region of %d bytes with an image of %d", h.Size, h.ImageBytes)
	}
	return h, nil
}

// readErr names a short read as truncation.
func readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return damaged("truncated: the input ends in the %s", what)
	}
	return fmt.Errorf("reading: %w", err)
}

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Replace renames the restored store over an existing one of the
	// name; without it, Restore fails with fs.ErrExist if there is one.
	// Processes that have the old store open keep it until they open the
	// name again, as after Remove.
	Replace bool
	// Progress, if not nil, is called as the restore goes.
	Progress func(Progress)
}

// Restore recreates the store name from a backup read from r: the image is
// copied into a new object under a temporary name while its checksums are
// checked, opened and checked with Check, and only then renamed to name.
// A damaged backup (ErrDamaged), one of another store format version
// (ErrIncompatible), or an image that fails Check (ErrDamaged wrapping the
// violations) leaves nothing behind. With the same options as the source
// (size, huge pages, reservation, mode).
func Restore(ctx context.Context, name string, r io.Reader, opts *RestoreOptions) (p Progress, err error) {
	var ro RestoreOptions
	if opts != nil {
		ro = *opts
	}
	if _, err := shmopen.Normalize(name); err != nil {
		return p, err
	}
	total := xxhash.New()
	bh, err := readBackupHeader(r, total)
	if err != nil {
		return p, wrapErr("restore", name, err)
	}
	p.TotalBytes, p.TotalKeys = bh.ImageBytes, bh.Keys
	// The options live in the image's header page.
	first := make([]byte, layout.HeaderSize)
	if _, err := io.ReadFull(r, first); err != nil {
		return p, wrapErr("restore", name, readErr(err, "image"))
	}
	total.Write(first)
	le := binary.LittleEndian
	flags := le.Uint32(first[24:])
	// The object is made as big as the store was at the snapshot (its
	// published size); it may grow on from there to the same MaxSize.
	o := Options{
		Size: bh.Size, MaxSize: int64(le.Uint64(first[120:])), Mode: fs.FileMode(le.Uint32(first[32:]) & 0o777),
		HugePages: HugePages(le.Uint32(first[28:])), NoReserve: flags&layout.FlagNoReserve != 0,
		MaxEntries: int64(le.Uint64(first[80:])),
	}
	if le.Uint64(first) != layout.Magic || le.Uint32(first[8:]) != layout.Version || le.Uint64(first[layout.GrowSizeOff:]) != uint64(bh.Size) {
		return p, wrapErr("restore", name, damaged("the image's header is not a store of format version %d and size %d", layout.Version, bh.Size))
	}
	if err := checkCreate(name, &o); err != nil {
		return p, wrapErr("restore", name, err)
	}
	tmp, err := tempName(name, "restoring")
	if err != nil {
		return p, err
	}
	obj, err := createObject(tmp, &o)
	if err != nil {
		return p, wrapErr("restore", name, err)
	}
	path := obj.path
	ok := false
	defer func() {
		if !ok {
			os.Remove(path)
		}
	}()
	// Openers of the temporary name wait, as for a store being created.
	ofdLock(obj.fd(), layout.InitLockByte, unix.F_WRLCK)
	err = restoreImage(ctx, obj, &o, bh, first, r, total, &p, ro.Progress)
	obj.file.Close()
	if err != nil {
		return p, wrapErr("restore", name, err)
	}
	s, err := Open(tmp, nil)
	if err != nil {
		return p, wrapErr("restore", name, fmt.Errorf("%w: the restored image does not open: %w", ErrDamaged, err))
	}
	cerr := s.Check()
	s.Close()
	if cerr != nil {
		return p, wrapErr("restore", name, fmt.Errorf("%w: the restored image fails Check: %w", ErrDamaged, cerr))
	}
	if err := publish(path, name, ro.Replace); err != nil {
		return p, wrapErr("restore", name, err)
	}
	ok = true
	return p, nil
}

// restoreImage sizes obj, copies the image into it and checks the
// checksum; Magic goes in last.
func restoreImage(ctx context.Context, obj *object, o *Options, bh BackupHeader, first []byte, r io.Reader, total *xxhash.Digest, p *Progress, fn func(Progress)) (err error) {
	size, _, err := objectSize(o)
	if err != nil {
		return err
	}
	if err := sizeObject(obj, size, o.NoReserve); err != nil {
		return err
	}
	m, err := mapObject(obj, size, false, o.NoReserve)
	if err != nil {
		return err
	}
	defer m.unmap()
	// A write to a page /dev/shm cannot supply (NoReserve) faults.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = faultError(r, ErrFull)
		}
	}()
	copy(m.data[8:], first[8:]) // Magic last: until then no one opens it
	buf := make([]byte, snapChunk*snapPage)
	last := time.Now()
	for off := uint64(len(first)); off < uint64(bh.ImageBytes); {
		n := min(uint64(len(buf)), uint64(bh.ImageBytes)-off)
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			return readErr(err, "image")
		}
		total.Write(buf[:n])
		if !o.NoReserve || !allZero(buf[:n]) {
			copy(m.data[off:], buf[:n]) // a sparse store keeps its holes
		}
		off += n
		p.Bytes = int64(off)
		if fn != nil && time.Since(last) >= 50*time.Millisecond {
			fn(*p)
			last = time.Now()
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	var t [16]byte
	if _, err := io.ReadFull(r, t[:]); err != nil {
		return readErr(err, "trailer")
	}
	if string(t[8:]) != endMagic {
		return damaged("trailer: bad end mark %q", t[8:])
	}
	if sum, want := binary.LittleEndian.Uint64(t[:]), total.Sum64(); sum != want {
		return damaged("the backup's checksum %#x does not match its bytes (%#x)", sum, want)
	}
	h := headerOf(offsetptr.NewRegion(m.data))
	h.Magic.Store(layout.Magic)
	if err := layout.Validate(h, uint64(size)); err != nil {
		return fmt.Errorf("%w: the image's header: %w", ErrDamaged, err)
	}
	p.Bytes = bh.ImageBytes
	if fn != nil {
		fn(*p)
	}
	return nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// objectBase is the file name an object of name has: name without its
// slash, or, when what is added to it would pass NAME_MAX, its first 200
// bytes and a hash of the rest, the same in every process.
func objectBase(name string, room int) (string, error) {
	n, err := shmopen.Normalize(name)
	if err != nil {
		return "", err
	}
	base := n[1:]
	if len(base)+room > shmopen.NameMax {
		base = base[:200] + "-" + strconv.FormatUint(xxhash.Sum64String(base), 16)
	}
	return base, nil
}

// tempName is a name for building a store to be renamed to name: name,
// what ("loading" or "restoring"), and this process's pid. Temporary
// objects of name that a dead process left, loading or restoring, are
// removed first.
func tempName(name, what string) (string, error) {
	base, err := objectBase(name, 32)
	if err != nil {
		return "", err
	}
	removeDeadTemps(name)
	return base + "." + what + "-" + strconv.Itoa(os.Getpid()), nil
}

// removeDeadTemps removes the temporary stores of loads and restores of
// name whose process is gone.
func removeDeadTemps(name string) {
	base, err := objectBase(name, 32)
	if err != nil {
		return
	}
	dirs := []string{ShmDir}
	for _, m := range hugetlbMounts() {
		dirs = append(dirs, m.dir)
	}
	for _, dir := range dirs {
		des, _ := os.ReadDir(dir)
		for _, de := range des {
			for _, w := range []string{"loading", "restoring"} {
				if rest, ok := strings.CutPrefix(de.Name(), base+"."+w+"-"); ok {
					if pid, err := strconv.Atoi(rest); err == nil && pid != os.Getpid() && unix.Kill(pid, 0) == unix.ESRCH {
						os.Remove(filepath.Join(dir, de.Name()))
					}
				}
			}
		}
	}
}

// publish renames the store object at tmpPath to name, in the same
// directory, atomically: openers of name find the old store or the new,
// never neither. Without replace an existing store of the name is an
// error (fs.ErrExist). With it, a store of the name on the other backing
// (/dev/shm or hugetlbfs), which the rename cannot replace, is removed
// after.
func publish(tmpPath, name string, replace bool) error {
	n, err := shmopen.Normalize(name)
	if err != nil {
		return err
	}
	final := filepath.Join(filepath.Dir(tmpPath), n[1:])
	var other string
	if obj, err := openObject(name, true); err == nil {
		if obj.path != final {
			other = obj.path
		}
		obj.file.Close()
		if !replace {
			return &os.PathError{Op: "rename", Path: obj.path, Err: fs.ErrExist}
		}
	}
	var flags uint = 0
	if !replace {
		flags = unix.RENAME_NOREPLACE
	}
	if err := unix.Renameat2(unix.AT_FDCWD, tmpPath, unix.AT_FDCWD, final, flags); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return &os.PathError{Op: "rename", Path: final, Err: fs.ErrExist}
		}
		return &os.PathError{Op: "rename", Path: tmpPath, Err: err}
	}
	if other != "" {
		os.Remove(other)
	}
	return nil
}

// removeObjectPath removes a temporary object by its path.
func removeObjectPath(path string) { os.Remove(path) }
