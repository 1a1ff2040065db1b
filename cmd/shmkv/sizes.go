package main

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/store"
)

// parseStoreSize reads a --size flag's value ("64M", "1G", "1048576") and
// says what is wrong with one no store can have: 0, negative, unparsable,
// below layout.MinSize or above layout.MaxSize.
func parseStoreSize(v string) (int64, error) { return parseSizeFlag("size", v) }

// parseSizeFlag is parseStoreSize for the flag --name (size, max-size):
// every size flag uses it, and its hints name the flag.
func parseSizeFlag(name, v string) (int64, error) {
	t := strings.TrimSpace(v)
	const min, max = "256 KiB", "1 TiB" // layout.MinSize, layout.MaxSize
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("size %s is negative; want %s to %s, such as 64M", v, min, max)
	}
	n, err := units.ParseSize(t)
	if err != nil {
		digits := strings.TrimRight(t, "KMGTkmgtIiBb")
		if digits != "" && strings.Trim(digits, "0123456789") == "" {
			// Only digits and a known suffix: too many digits to count.
			return 0, fmt.Errorf("size %s is above the maximum %s", v, max)
		}
		return 0, fmt.Errorf("bad size %q: want a whole number of bytes, or of K, M, G or T (KiB, MiB, GiB, TiB), such as 256K, 64M or 1G", v)
	}
	switch {
	case n == 0:
		return 0, fmt.Errorf("size 0: a store needs at least %s (--%s 256K)", min, name)
	case n < layout.MinSize:
		return 0, fmt.Errorf("size %s (%d bytes) is below the minimum %s (--%s 256K)", v, n, min, name)
	case n > layout.MaxSize:
		return 0, fmt.Errorf("size %s (%s) is above the maximum %s", v, units.FormatBytes(n), max)
	}
	return n, nil
}

// shmFull is create's message when the object's memory did not fit in
// /dev/shm (store.ErrFull from Create): how big /dev/shm is, how much is
// free, what was asked, and how to make room.
func (c *cli) shmFull(asked int64, err error) error {
	var st unix.Statfs_t
	if serr := unix.Statfs(store.ShmDir, &st); serr != nil {
		return fmt.Errorf("create: %w (statfs %s: %v)", err, store.ShmDir, serr)
	}
	total := int64(st.Blocks) * st.Bsize
	free := int64(st.Bavail) * st.Bsize
	return &codeError{code: exitError, msg: fmt.Sprintf("shmkv: store %q: %s", c.name, shmFullText(asked, total, free))}
}

// shmFullText is the body of shmFull's message, for a /dev/shm of total
// bytes with free bytes free.
func shmFullText(asked, total, free int64) string {
	dir := strings.TrimSuffix(store.ShmDir, "/")
	// A /dev/shm that holds what it holds now and the new store, in whole
	// GiB (whole 64 MiB below 1 GiB), for the commands to copy.
	need := total - free + asked
	var mount, docker string
	if need >= 1<<30 {
		g := (need + 1<<30 - 1) >> 30
		mount, docker = fmt.Sprintf("%dG", g), fmt.Sprintf("%dg", g)
	} else {
		m := (need + 64<<20 - 1) / (64 << 20) * 64
		mount, docker = fmt.Sprintf("%dM", m), fmt.Sprintf("%dm", m)
	}
	return fmt.Sprintf("create: asked for %s, which does not fit in %s: it is %s with %s free; "+
		"ask for less (--size), remove unused stores (shmkv ls, shmkv rm), "+
		"or enlarge %s: as root, mount -o remount,size=%s %s; for a Docker container, docker run --shm-size=%s",
		units.FormatBytes(asked), dir, units.FormatBytes(total), units.FormatBytes(free),
		dir, mount, dir, docker)
}

// isShmFull reports whether Create failed because /dev/shm (not the huge
// page pool) had no room.
func isShmFull(err error, o *store.Options) bool {
	return errors.Is(err, store.ErrFull) && o.HugePages != store.HugeTLB
}

// thpShmemSetting is the kernel's shmem_enabled setting as the store saw
// it; tests replace it.
var thpShmemSetting = func(st *store.Stats) string { return st.THPShmem }

// thpWarning is the warning for a store created with --hugepages thp on a
// kernel that gives shared memory no transparent huge pages, or "".
func thpWarning(name, setting string) string {
	if setting != "never" && setting != "deny" {
		return ""
	}
	return fmt.Sprintf("shmkv: warning: store %q: --hugepages thp, but /sys/kernel/mm/transparent_hugepage/shmem_enabled is %q: "+
		"the kernel gives shared memory no huge pages, so the store uses 4 KiB pages; "+
		"to allow them, as root: echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled", name, setting)
}

// The messages above spell the limits out; keep them in step.
var _ = [1]struct{}{}[layout.MinSize-256<<10+layout.MaxSize-1<<40]

// initialSize is the size a store created with o starts at: o.Size, or
// when it is 0 the library's default (store.Options: DefaultSize, or
// less when MaxSize is smaller). The messages about a create that did not
// fit in /dev/shm give it. NB: it mirrors store's withDefaults, which the
// library does not export.
func initialSize(o *store.Options) int64 {
	if o.Size != 0 {
		return o.Size
	}
	if o.MaxSize != 0 {
		return min(store.DefaultSize, max(o.MaxSize, layout.MinSize))
	}
	return store.DefaultSize
}

// maxBelowSize is the usage error of create and load for a --max-size
// below --size.
func maxBelowSize(maxSize, size int64) error {
	return usagef("--max-size %s is below --size %s: a store cannot start above its maximum size",
		units.FormatBytes(maxSize), units.FormatBytes(size))
}
