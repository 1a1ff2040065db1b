package store

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestHugeTLB reserves a few huge pages and mounts a hugetlbfs for the
// test, puts both back afterwards, and checks a HugeTLB store lives there,
// works, and is reported as such. Without a mount it checks the error says
// what to set up.
func TestHugeTLB(t *testing.T) {
	if len(hugetlbMounts()) == 0 {
		_, err := Create(testName(t), &Options{Size: 4 << 20, HugePages: HugeTLB})
		if !errors.Is(err, ErrHugePages) || !strings.Contains(err.Error(), "nr_hugepages") {
			t.Fatalf("HugeTLB with no hugetlbfs mounted: %v, want ErrHugePages saying what to do", err)
		}
		t.Log(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("reserving huge pages and mounting hugetlbfs needs root")
	}
	const nr = "/proc/sys/vm/nr_hugepages"
	b, err := os.ReadFile(nr)
	if err != nil {
		t.Skipf("no %s: %v", nr, err)
	}
	orig, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	want := orig + 4
	if err := os.WriteFile(nr, []byte(strconv.Itoa(want)), 0); err != nil {
		t.Skipf("cannot reserve huge pages: %v", err)
	}
	t.Cleanup(func() { os.WriteFile(nr, []byte(strconv.Itoa(orig)), 0) })
	if got := meminfo("HugePages_Free"); got < 4 {
		t.Skipf("the kernel reserved only %d free huge pages (memory too fragmented?)", got)
	}
	dir := t.TempDir()
	if err := syscall.Mount("none", dir, "hugetlbfs", 0, ""); err != nil {
		t.Skipf("cannot mount hugetlbfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, 0) })

	name := testName(t)
	if _, err := Create(name, &Options{Size: 64 << 20, HugePages: HugeTLB}); !errors.Is(err, ErrHugePages) {
		t.Fatalf("HugeTLB store larger than the free pages: %v, want ErrHugePages", err)
	} else {
		t.Log(err)
	}
	s, err := Create(name, &Options{Size: 3 << 20, HugePages: HugeTLB})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.Path(), dir) {
		t.Fatalf("store at %s, want on the hugetlbfs at %s", s.Path(), dir)
	}
	if err := s.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Size != 4<<20 {
		t.Fatalf("size %d, want 3 MiB rounded up to 4 MiB of 2 MiB pages", st.Size)
	}
	if !strings.Contains(st.Backing, "hugetlbfs") || st.HugePageBytes == 0 {
		t.Fatalf("backing %q with %d bytes in huge pages", st.Backing, st.HugePageBytes)
	}
	t.Log(st.Backing)
	o, err := Open(name, nil)
	if err != nil {
		t.Fatalf("Open by name of a hugetlbfs store: %v", err)
	}
	if v, err := o.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("Get through the second Store: %q, %v", v, err)
	}
	o.Close()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
