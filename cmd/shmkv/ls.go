package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/store"
)

// found is a shmkv store seen in a directory.
type found struct {
	name, path string
	size       int64
}

func (c *cli) ls(args []string) error {
	if _, err := c.parse(c.flags("ls"), args, 0, 0); err != nil {
		return err
	}
	dirs := append([]string{store.ShmDir}, hugetlbDirs()...)
	var stores []found
	for i, dir := range dirs {
		got, err := scanStores(dir)
		if err != nil && i == 0 {
			return &codeError{code: exitError, msg: fmt.Sprintf("shmkv ls: %v", err)}
		}
		stores = append(stores, got...)
	}
	if len(stores) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSIZE\tENTRIES\tPATH")
	for _, f := range stores {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.name, formatBytes(f.size), entryCount(f.name), f.path)
	}
	return tw.Flush()
}

// scanStores lists the regular files in dir whose first 8 bytes are
// layout.Magic, sorted by name. Files it cannot read are skipped.
func scanStores(dir string) ([]found, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []found
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if size, ok := isStore(path); ok {
			out = append(out, found{name: e.Name(), path: path, size: size})
		}
	}
	slices.SortFunc(out, func(a, b found) int { return strings.Compare(a.name, b.name) })
	return out, nil
}

// isStore reports whether the file at path starts with layout.Magic, and
// its size.
func isStore(path string) (int64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	var b [8]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return 0, false
	}
	if binary.LittleEndian.Uint64(b[:]) != layout.Magic {
		return 0, false
	}
	st, err := f.Stat()
	if err != nil {
		return 0, false
	}
	return st.Size(), true
}

// entryCount opens the store read-only for its entry count; "?" if it
// cannot (another format version, no permission).
func entryCount(name string) string {
	s, err := store.Open(name, &store.Options{ReadOnly: true})
	if err != nil {
		return "?"
	}
	defer s.Close()
	return strconv.Itoa(s.Len())
}

// hugetlbDirs lists the hugetlbfs mount points from /proc/mounts, where
// stores created with --hugepages tlb live.
func hugetlbDirs() []string {
	f, err := os.Open("/proc/mounts")
	if err != nil {
		return nil
	}
	defer f.Close()
	var dirs []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 3 && fields[2] == "hugetlbfs" && !slices.Contains(dirs, fields[1]) {
			// /proc/mounts escapes spaces and such as \040: unquote them.
			dir := fields[1]
			if u, err := strconv.Unquote(`"` + strings.ReplaceAll(dir, `"`, `\"`) + `"`); err == nil {
				dir = u
			}
			dirs = append(dirs, dir)
		}
	}
	return dirs
}
