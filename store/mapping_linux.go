package store

// The memory behind a store and this process's mapping of it: the
// object's size (whole huge pages on hugetlbfs), reserved with fallocate
// unless NoReserve; mapped with mmap-go, or with x/sys/unix where mmap-go
// cannot say what is needed (MAP_NORESERVE); then madvise, populate and
// mlock as asked. Retiring a mapping at Close is in unsafe_linux.go.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	mmap "github.com/edsrzf/mmap-go"
	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/layout"
)

// objectSize is the size the object for o will have: o.Size, rounded up
// to whole huge pages on hugetlbfs, where it also checks there is a mount
// and, unless NoReserve, enough free pages. maxSize is o.MaxSize rounded
// the same way.
func objectSize(o *Options) (size, maxSize int64, err error) {
	if o.HugePages != HugeTLB {
		return o.Size, o.MaxSize, nil
	}
	mounts := hugetlbMounts()
	if len(mounts) == 0 {
		return 0, 0, fmt.Errorf("%w: no hugetlbfs is mounted; mount one (mount -t hugetlbfs none /dev/hugepages) and reserve pages (echo N > /proc/sys/vm/nr_hugepages)", ErrHugePages)
	}
	m := mounts[0]
	size = (o.Size + m.pageSize - 1) / m.pageSize * m.pageSize
	maxSize = max((o.MaxSize+m.pageSize-1)/m.pageSize*m.pageSize, size)
	if !o.NoReserve && m.pageSize == defaultHugePageSize() {
		free := meminfo("HugePages_Free") - meminfo("HugePages_Rsvd")
		if need := size / m.pageSize; free < need {
			return 0, 0, fmt.Errorf("%w: need %d huge pages of %d KiB, %d free; reserve more with: echo %d > /proc/sys/vm/nr_hugepages",
				ErrHugePages, need, m.pageSize>>10, max(free, 0), meminfo("HugePages_Total")+need-max(free, 0))
		}
	}
	return size, maxSize, nil
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

// shmCapacity is the size of the file system under ShmDir (0 if unknown),
// rounded down to 2 MiB and at most layout.MaxSize: the default MaxSize.
func shmCapacity() int64 {
	var st unix.Statfs_t
	if unix.Statfs(ShmDir, &st) != nil {
		return 0
	}
	return min(int64(st.Blocks)*st.Bsize, layout.MaxSize) &^ (2<<20 - 1)
}

// extendObject makes the object at least size bytes long, from its first
// cur bytes, and unless noReserve allocates the memory of [cur, size), so
// that growth never sets up a later SIGBUS. It never shortens the object.
// Growth calls it before it publishes the new size: an object left longer
// by a writer that died in between is simply reused.
func extendObject(obj *object, cur, size int64, noReserve bool) error {
	if noReserve {
		var st unix.Stat_t
		if err := unix.Fstat(obj.fd(), &st); err != nil {
			return &os.PathError{Op: "fstat", Path: obj.path, Err: err}
		}
		if st.Size >= size {
			return nil
		}
		if err := unix.Ftruncate(obj.fd(), size); err != nil {
			return &os.PathError{Op: "ftruncate", Path: obj.path, Err: err}
		}
		return nil
	}
	if err := unix.Fallocate(obj.fd(), 0, cur, size-cur); err != nil {
		if errors.Is(err, unix.ENOSPC) {
			where := filepath.Dir(obj.path) // /dev/shm
			if obj.tlb {
				where = "the huge page pool"
			}
			return fmt.Errorf("%w: growing to %s: %s is full (%s free of %s); raise its size (mount -o remount,size=N %s) or lower MaxSize",
				ErrFull, units.FormatBytes(size), where, freeSpace(filepath.Dir(obj.path)), totalSpace(filepath.Dir(obj.path)), filepath.Dir(obj.path))
		}
		return &os.PathError{Op: "fallocate", Path: obj.path, Err: err}
	}
	return nil
}

func totalSpace(dir string) string {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return "unknown"
	}
	return units.FormatBytes(int64(st.Blocks) * st.Bsize)
}

func freeSpace(dir string) string {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil {
		return "unknown"
	}
	return units.FormatBytes(int64(st.Bavail) * st.Bsize)
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

// populate prefaults every page of the first n bytes (the object's part
// of the mapping), so no later access there takes a page fault.
func (m *mapping) populate(n uint64, readOnly bool) error {
	advice := unix.MADV_POPULATE_WRITE
	if readOnly {
		advice = unix.MADV_POPULATE_READ
	}
	data := m.data[:min(n, uint64(len(m.data)))]
	if err := unix.Madvise(data, advice); err == nil {
		return nil
	} else if !errors.Is(err, unix.EINVAL) {
		return os.NewSyscallError("madvise(MADV_POPULATE)", err)
	}
	// Kernels before 5.14: touch a byte of each page.
	var sink byte
	for i := 0; i < len(data); i += os.Getpagesize() {
		sink += data[i]
	}
	_ = sink
	return nil
}

// lock mlocks the mapping, pages as they are faulted in (MLOCK_ONFAULT):
// the mapping reaches past the object, up to MaxSize, and pages the store
// grows into are locked when first touched.
func (m *mapping) lock() error {
	if err := mlockOnFault(m.data); err != nil {
		return fmt.Errorf("shmkv: mlock of %s: %w (needs CAP_IPC_LOCK or a larger RLIMIT_MEMLOCK: ulimit -l)",
			units.FormatBytes(int64(len(m.data))), os.NewSyscallError("mlock2", err))
	}
	return nil
}
