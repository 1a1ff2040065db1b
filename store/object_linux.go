package store

// The shared-memory object behind a store: /dev/shm/NAME through
// shm_open, or a file on a hugetlbfs mount for HugeTLB. Created
// exclusively, opened by name, checked for a trusted owner and mode, and
// removed only when it is a store.

import (
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

	"golang.org/x/sys/unix"

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

// pageSize is the object's page size: the huge page size on hugetlbfs,
// which reports it as its block size.
func (o *object) pageSize() uint64 {
	var st unix.Statfs_t
	if o.tlb && unix.Fstatfs(o.fd(), &st) == nil && st.Bsize > 4096 {
		return uint64(st.Bsize)
	}
	return 4096
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
