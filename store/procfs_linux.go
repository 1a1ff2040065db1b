package store

// What the kernel says about the host, read from /proc and /sys: hugetlbfs
// mounts and their page size, huge page counts, the transparent huge page
// setting for shared memory, how much of a mapping huge pages back, and a
// process's start time. Each reader answers none, zero, a default or
// "unavailable" when its file cannot be read: these are facts to report
// and to size by, never a reason to fail by themselves.

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	"github.com/shmkv/shmkv/internal/units"
)

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

// startTime is field 22 of /proc/PID/stat: clock ticks since boot when the
// process started. 0 if the process does not exist.
func startTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s) // f[0] is field 3
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}
