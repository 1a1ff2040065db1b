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
)

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
