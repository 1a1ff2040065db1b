package store

// The object behind a store and its mapping: /dev/shm through shm_open, or
// a file on a hugetlbfs mount; reserved with fallocate unless NoReserve;
// mapped with mmap-go, or with x/sys/unix where mmap-go cannot say what is
// needed (MAP_NORESERVE); then madvise, populate and mlock as asked.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	mmap "github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/shmopen"
)

// ShmDir is where the kernel shows POSIX shared-memory objects.
const ShmDir = "/dev/shm"

// object is an open shared-memory object. The *os.File owns the
// descriptor: it must stay reachable for as long as the store is open,
// since closing it drops this process's OFD locks.
type object struct {
	file *os.File
	path string // /dev/shm/NAME or MOUNT/NAME on hugetlbfs
	tlb  bool   // on hugetlbfs
}

func (o *object) fd() int { return int(o.file.Fd()) }

// hugetlbMount is one hugetlbfs mount from /proc/mounts.
type hugetlbMount struct {
	dir      string
	pageSize int64
}

// hugetlbMounts lists the hugetlbfs mounts, with their page size.
func hugetlbMounts() []hugetlbMount {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var ms []hugetlbMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[2] != "hugetlbfs" {
			continue
		}
		m := hugetlbMount{dir: unescapeMount(fields[1]), pageSize: defaultHugePageSize()}
		for _, opt := range strings.Split(fields[3], ",") {
			if v, ok := strings.CutPrefix(opt, "pagesize="); ok {
				if n, err := units.ParseSize(v); err == nil {
					m.pageSize = n
				}
			}
		}
		ms = append(ms, m)
	}
	return ms
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	if u, err := strconv.Unquote(`"` + strings.ReplaceAll(s, `"`, `\"`) + `"`); err == nil {
		return u
	}
	return s
}

// meminfo reads one "Name: N [kB]" line of /proc/meminfo (kB converted).
func meminfo(name string) int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.ParseInt(f[0], 10, 64)
			if len(f) > 1 && f[1] == "kB" {
				n <<= 10
			}
			return n
		}
	}
	return 0
}

func defaultHugePageSize() int64 {
	if n := meminfo("Hugepagesize"); n > 0 {
		return n
	}
	return 2 << 20
}

// objectSize is the size the object for o will have: o.Size, rounded up
// to whole huge pages on hugetlbfs, where it also checks there is a mount
// and, unless NoReserve, enough free pages.
func objectSize(o *Options) (int64, error) {
	if o.HugePages != HugeTLB {
		return o.Size, nil
	}
	mounts := hugetlbMounts()
	if len(mounts) == 0 {
		return 0, fmt.Errorf("%w: no hugetlbfs is mounted; mount one (mount -t hugetlbfs none /dev/hugepages) and reserve pages (echo N > /proc/sys/vm/nr_hugepages)", ErrHugePages)
	}
	m := mounts[0]
	size := (o.Size + m.pageSize - 1) / m.pageSize * m.pageSize
	if !o.NoReserve && m.pageSize == defaultHugePageSize() {
		free := meminfo("HugePages_Free") - meminfo("HugePages_Rsvd")
		if need := size / m.pageSize; free < need {
			return 0, fmt.Errorf("%w: need %d huge pages of %d KiB, %d free; reserve more with: echo %d > /proc/sys/vm/nr_hugepages",
				ErrHugePages, need, m.pageSize>>10, max(free, 0), meminfo("HugePages_Total")+need-max(free, 0))
		}
	}
	return size, nil
}

// createObject creates the object exclusively, empty: in /dev/shm, or on
// the first hugetlbfs mount for HugeTLB.
func createObject(name string, o *Options) (*object, error) {
	n, err := shmopen.Normalize(name)
	if err != nil {
		return nil, err
	}
	var obj *object
	if o.HugePages == HugeTLB {
		path := filepath.Join(hugetlbMounts()[0].dir, n[1:])
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, o.Mode)
		if err != nil {
			return nil, err
		}
		obj = &object{file: f, path: path, tlb: true}
	} else {
		fd, err := shmopen.Open(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, o.Mode)
		if err != nil {
			return nil, err
		}
		obj = &object{file: os.NewFile(uintptr(fd), ShmDir+n), path: ShmDir + n}
	}
	// The umask filtered the mode open gave it: set the one asked for.
	if err := unix.Fchmod(obj.fd(), uint32(o.Mode.Perm())); err != nil {
		obj.file.Close()
		removeObject(name)
		return nil, &os.PathError{Op: "fchmod", Path: obj.path, Err: err}
	}
	return obj, nil
}

// owner is who owns an object, and its permission bits, from fstat.
func (obj *object) owner() (uid int, perm fs.FileMode, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(obj.fd(), &st); err != nil {
		return 0, 0, &os.PathError{Op: "fstat", Path: obj.path, Err: err}
	}
	return int(st.Uid), fs.FileMode(st.Mode).Perm(), nil
}

// checkOwner refuses an object that o does not trust: owned by a user not
// in o.Owners (by default, for OpenOrCreate, other than this process's
// effective uid), or writable by group or others beyond o.Mode.
func checkOwner(obj *object, o *Options, adopting bool) error {
	owners := o.Owners
	if len(owners) == 0 {
		if !adopting {
			return nil
		}
		owners = []int{os.Geteuid()}
	}
	uid, perm, err := obj.owner()
	if err != nil {
		return err
	}
	if !slices.Contains(owners, uid) {
		return &os.PathError{Op: "open", Path: obj.path, Err: fmt.Errorf("%w: owned by %s, not by %s (the name may have been taken first by another user; Open, or Options.Owners, accepts another owner on purpose)",
			fs.ErrPermission, userName(uid), ownersString(owners))}
	}
	if extra := perm &^ o.Mode.Perm() & 0o022; extra != 0 {
		return &os.PathError{Op: "open", Path: obj.path, Err: fmt.Errorf("%w: mode %#o lets %s write it, beyond the %#o asked for",
			fs.ErrPermission, uint32(perm), writers(extra), uint32(o.Mode.Perm()))}
	}
	return nil
}

func writers(bits fs.FileMode) string {
	switch {
	case bits&0o020 != 0 && bits&0o002 != 0:
		return "its group and everyone"
	case bits&0o020 != 0:
		return "its group"
	}
	return "everyone"
}

// userName is "name (uid N)", or "uid N" when the name is unknown.
func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("%s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

func ownersString(uids []int) string {
	names := make([]string, len(uids))
	for i, u := range uids {
		names[i] = userName(u)
	}
	return strings.Join(names, " or ")
}

// sizeObject sets the object's length and, unless noReserve, allocates its
// memory now, so that no later write can meet a full /dev/shm (SIGBUS).
func sizeObject(obj *object, size int64, noReserve bool) error {
	if err := unix.Ftruncate(obj.fd(), size); err != nil {
		return &os.PathError{Op: "ftruncate", Path: obj.path, Err: err}
	}
	if noReserve {
		return nil
	}
	if err := unix.Fallocate(obj.fd(), 0, 0, size); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			where := ShmDir
			if obj.tlb {
				where = "the huge page pool"
			}
			return fmt.Errorf("%w: %d bytes do not fit in %s (%s free); choose a smaller size or use NoReserve",
				ErrFull, size, where, freeSpace(filepath.Dir(obj.path)))
		}
		return &os.PathError{Op: "fallocate", Path: obj.path, Err: err}
	}
	return nil
}

func freeSpace(dir string) string {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return "unknown"
	}
	return units.FormatBytes(int64(st.Bavail) * st.Bsize)
}

// openObject opens an existing store's object by name: /dev/shm first, then
// each hugetlbfs mount.
func openObject(name string, readOnly bool) (*object, error) {
	flag := os.O_RDWR
	if readOnly {
		flag = os.O_RDONLY
	}
	fd, err := shmopen.Open(name, flag, 0)
	if err == nil {
		n, _ := shmopen.Normalize(name)
		return &object{file: os.NewFile(uintptr(fd), ShmDir+n), path: ShmDir + n}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	n, _ := shmopen.Normalize(name)
	for _, m := range hugetlbMounts() {
		// NB: O_NOFOLLOW, as shm_open has: a symlink there is not a store.
		f, ferr := os.OpenFile(filepath.Join(m.dir, n[1:]), flag|unix.O_NOFOLLOW, 0)
		if ferr == nil {
			return &object{file: f, path: f.Name(), tlb: true}, nil
		}
	}
	return nil, err
}

// removeStore unlinks a store's object by name, after checking that it is
// one: its first word is shmkv's magic (or the mark of a creation in
// progress). Anything else in /dev/shm is left alone.
func removeStore(name string) error {
	obj, err := openObject(name, true)
	if err != nil {
		return err
	}
	var b [8]byte
	n, _ := unix.Pread(obj.fd(), b[:], 0)
	obj.file.Close()
	if m := binary.LittleEndian.Uint64(b[:]); n != 8 || (m != layout.Magic && m != layout.MagicInit) {
		return fmt.Errorf("%w: %s is not a shmkv store (first bytes %x); not removed", ErrIncompatible, obj.path, b[:n])
	}
	return removeObject(name)
}

// removeObject unlinks a store's object by name.
func removeObject(name string) error {
	err := shmopen.Unlink(name)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	n, _ := shmopen.Normalize(name)
	for _, m := range hugetlbMounts() {
		if os.Remove(filepath.Join(m.dir, n[1:])) == nil {
			return nil
		}
	}
	return err
}

// mapping is a mapped object. Exactly one of mm and raw is set.
type mapping struct {
	data []byte
	mm   mmap.MMap // mapped by mmap-go
	raw  bool      // mapped by unix.Mmap (MAP_NORESERVE)
}

func mapObject(obj *object, length int64, readOnly, noReserve bool) (*mapping, error) {
	if noReserve {
		prot := unix.PROT_READ
		if !readOnly {
			prot |= unix.PROT_WRITE
		}
		b, err := unix.Mmap(obj.fd(), 0, int(length), prot, unix.MAP_SHARED|unix.MAP_NORESERVE)
		if err != nil {
			return nil, &os.PathError{Op: "mmap", Path: obj.path, Err: err}
		}
		return &mapping{data: b, raw: true}, nil
	}
	prot := mmap.RDWR
	if readOnly {
		prot = mmap.RDONLY
	}
	mm, err := mmap.MapRegion(obj.file, int(length), prot, 0, 0)
	if err != nil {
		return nil, &os.PathError{Op: "mmap", Path: obj.path, Err: err}
	}
	return &mapping{data: mm, mm: mm}, nil
}

func (m *mapping) unmap() error {
	if m.raw {
		return unix.Munmap(m.data)
	}
	return m.mm.Unmap()
}

// populate prefaults every page, so no later access takes a page fault.
func (m *mapping) populate(readOnly bool) error {
	advice := unix.MADV_POPULATE_WRITE
	if readOnly {
		advice = unix.MADV_POPULATE_READ
	}
	if err := unix.Madvise(m.data, advice); err == nil {
		return nil
	} else if !errors.Is(err, unix.EINVAL) {
		return os.NewSyscallError("madvise(MADV_POPULATE)", err)
	}
	// Kernels before 5.14: touch a byte of each page.
	var sink byte
	for i := 0; i < len(m.data); i += os.Getpagesize() {
		sink += m.data[i]
	}
	_ = sink
	return nil
}

func (m *mapping) lock() error {
	if err := unix.Mlock(m.data); err != nil {
		return fmt.Errorf("shmkv: mlock of %s: %w (needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK: ulimit -l)",
			units.FormatBytes(int64(len(m.data))), os.NewSyscallError("mlock", err))
	}
	return nil
}

// thpShmemSetting is the bracketed word of
// /sys/kernel/mm/transparent_hugepage/shmem_enabled, or "unavailable".
func thpShmemSetting() string {
	b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/shmem_enabled")
	if err != nil {
		return "unavailable"
	}
	if i := bytes.IndexByte(b, '['); i >= 0 {
		if j := bytes.IndexByte(b[i:], ']'); j > 0 {
			return string(b[i+1 : i+j])
		}
	}
	return strings.TrimSpace(string(b))
}

// hugeMapped reports how many bytes of the mapping starting at addr the
// kernel backs with huge pages (ShmemPmdMapped/FilePmdMapped in smaps).
func hugeMapped(addr uintptr) int64 {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0
	}
	defer f.Close()
	prefix := strconv.FormatUint(uint64(addr), 16) + "-"
	sc := bufio.NewScanner(f)
	in := false
	var total int64
	for sc.Scan() {
		line := sc.Text()
		first, _, _ := strings.Cut(line, " ")
		if !strings.HasSuffix(first, ":") { // a mapping's first line: "start-end perms ..."
			in = strings.HasPrefix(line, prefix)
			continue
		}
		if !in {
			continue
		}
		for _, k := range []string{"ShmemPmdMapped:", "FilePmdMapped:", "Private_Hugetlb:", "Shared_Hugetlb:"} {
			if v, ok := strings.CutPrefix(line, k); ok {
				f := strings.Fields(v)
				if len(f) > 0 {
					n, _ := strconv.ParseInt(f[0], 10, 64)
					total += n << 10
				}
			}
		}
	}
	return total
}
