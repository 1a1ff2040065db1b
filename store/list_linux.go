package store

import (
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shmkv/shmkv/layout"
)

// Info names a store found by List.
type Info struct {
	Name string // what Open takes
	Path string // the object in /dev/shm or on a hugetlbfs mount
	Size int64  // bytes
}

// List finds the shmkv stores present: the objects in /dev/shm and on
// hugetlbfs mounts whose first 8 bytes are the format's magic, sorted by
// name. Objects this process cannot read are left out; an error is
// returned only if /dev/shm itself cannot be read.
func List() ([]Info, error) {
	dirs := []string{ShmDir}
	for _, m := range hugetlbMounts() {
		dirs = append(dirs, m.dir)
	}
	var out []Info
	for i, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			if i == 0 {
				return nil, err
			}
			continue
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			path := filepath.Join(dir, e.Name())
			if size, ok := isStoreFile(path); ok {
				out = append(out, Info{Name: e.Name(), Path: path, Size: size})
			}
		}
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// isStoreFile reports whether the file at path starts with layout.Magic,
// and its size.
func isStoreFile(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil || binary.LittleEndian.Uint64(b[:]) != layout.Magic {
		return 0, false
	}
	st, err := f.Stat()
	if err != nil {
		return 0, false
	}
	return st.Size(), true
}
