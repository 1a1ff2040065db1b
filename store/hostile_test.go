package store

// Regression tests for issue 9 (hostile neighbours): what another process,
// or another user, can do to a store through /dev/shm must never crash
// this one, be adopted by it, or make it use unbounded resources.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/internal/shmtest"
	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/offsetptr"
)

// permOf is the permission bits of the object at path, from fstat.
func permOf(t *testing.T, path string) fs.FileMode {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return fs.FileMode(st.Mode).Perm()
}

// TestUmaskDoesNotChangeMode: Create gives the object exactly Options.Mode,
// whatever the umask (it used to pass the mode to shm_open only, which the
// umask filters: 0666 under umask 022 became 0644), and Stats reports the
// object's real mode and owner, not the mode recorded at creation.
func TestUmaskDoesNotChangeMode(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	for _, c := range []struct {
		umask int
		mode  fs.FileMode
	}{{0o022, 0o666}, {0o077, 0o660}, {0o022, 0o640}} {
		syscall.Umask(c.umask)
		s, err := Create(testName(t), &Options{Size: 1 << 20, Mode: c.mode})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if got := permOf(t, s.Path()); got != c.mode {
			t.Errorf("umask %#o, Mode %#o: the object has mode %#o", c.umask, c.mode, got)
		}
		if got := s.Stats().Mode; got != c.mode {
			t.Errorf("umask %#o, Mode %#o: Stats().Mode = %#o", c.umask, c.mode, got)
		}
	}
	syscall.Umask(old)

	s, err := Create(testName(t), &Options{Size: 1 << 20, Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := os.Chmod(s.Path(), 0o640); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Mode != 0o640 {
		t.Errorf("after chmod 0640, Stats().Mode = %#o: it must report the object's real mode", st.Mode)
	}
	if st.Owner != os.Geteuid() {
		t.Errorf("Stats().Owner = %d, want the effective uid %d", st.Owner, os.Geteuid())
	}
}

// TestOpenOrCreateRefusesWritableByOthers: OpenOrCreate must not adopt an
// object that others may write beyond the Mode asked for (a squatter could
// have made it so), and says who may write it; Open still accepts it
// (sharing is a feature), unless Options.Owners says whose it must be.
func TestOpenOrCreateRefusesWritableByOthers(t *testing.T) {
	name := testName(t)
	s, err := Create(name, &Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s.Put([]byte("k"), []byte("v"))
	path := s.Path()
	s.Close()

	for _, c := range []struct {
		mode fs.FileMode
		who  string
	}{{0o666, "everyone"}, {0o620, "group"}, {0o602, "everyone"}} {
		if err := os.Chmod(path, c.mode); err != nil {
			t.Fatal(err)
		}
		s, err := OpenOrCreate(name, nil)
		if err == nil {
			s.Close()
			t.Errorf("mode %#o: OpenOrCreate with the default Mode 0600 adopted the object", c.mode)
			continue
		}
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("mode %#o: OpenOrCreate = %v, want fs.ErrPermission", c.mode, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "write") || !strings.Contains(msg, c.who) {
			t.Errorf("mode %#o: %q does not say that %s may write it", c.mode, msg, c.who)
		}
		t.Logf("mode %#o: %v", c.mode, err)
	}

	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	// Asked for: then it is what the caller wants.
	if s, err := OpenOrCreate(name, &Options{Mode: 0o666}); err != nil {
		t.Errorf("OpenOrCreate with Mode 0666 of a 0666 object: %v", err)
	} else {
		s.Close()
	}
	// Plain Open: another's or a shared store is fine.
	s, err = Open(name, nil)
	if err != nil {
		t.Fatalf("Open of a 0666 store: %v", err)
	}
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Errorf("Get after Open: %q, %v", v, err)
	}
	s.Close()

	// A service that requires an owner.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	other := os.Geteuid() + 4242
	if s, err := Open(name, &Options{Owners: []int{other}}); err == nil {
		s.Close()
		t.Errorf("Open with Owners [%d] accepted an object owned by %d", other, os.Geteuid())
	} else if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), "owned by") {
		t.Errorf("Open with Owners [%d] = %v, want fs.ErrPermission saying whose it is", other, err)
	} else {
		t.Log(err)
	}
	if s, err := Open(name, &Options{Owners: []int{other, os.Geteuid()}}); err != nil {
		t.Errorf("Open with Owners including its owner: %v", err)
	} else {
		s.Close()
	}
}

const truncateChildEnv = "SHMKV_TEST_TRUNCATE_CHILD"

// TestTruncatedDuringOpen: a process truncates the object over and over
// while this one opens it and reads. Every operation may fail but none may
// crash: before Open was fault-guarded, a truncation between mapping and
// attaching killed the opener with "fatal error: fault" (SIGBUS). A crash
// kills the whole test binary, so the attempt runs in a child process.
func TestTruncatedDuringOpen(t *testing.T) {
	if name := os.Getenv(truncateChildEnv); name != "" {
		truncatedDuringOpenChild(t, name)
		return
	}
	if raceEnabled() {
		// Under -race, sync/atomic runs in the race runtime's C code on the
		// system stack: a page truncated after its early probe faults there,
		// where Go cannot turn the fault into a panic (the runtime dies with
		// "traceback did not unwind completely", or hangs in "panic during
		// panic"). Not shmkv's to fix; the build without -race is the test.
		t.Skip("a fault inside the race runtime's atomics cannot be recovered: run without -race")
	}
	name := testName(t) // the parent removes it, whatever the child does
	s, err := Create(name, &Options{Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		s.Put([]byte(fmt.Sprint("key", i)), bytes.Repeat([]byte{byte(i)}, 300))
	}
	s.Close()

	cmd := shmtest.Self("TestTruncatedDuringOpen", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), truncateChildEnv+"="+name)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if err = shmtest.WaitWithin(cmd, 2*time.Minute); err != nil {
		t.Fatalf("the child, opening and reading a store being truncated, died or hung: %v\n%s", err, tail(out.String(), 3000))
	}
	for _, l := range strings.Split(out.String(), "\n") {
		if strings.Contains(l, "attempts:") {
			t.Log(strings.TrimSpace(l))
		}
	}
}

// raceEnabled reports whether the test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// tail is the end of a child's output, or, if it crashed, the crash and
// the start of its traceback.
func tail(s string, n int) string {
	for _, m := range []string{"fatal error:", "panic:", "SIGBUS", "signal "} {
		if i := strings.Index(s, m); i >= 0 {
			return s[i:min(len(s), i+n)] + "..."
		}
	}
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

func truncatedDuringOpenChild(t *testing.T, name string) {
	path := ShmDir + "/" + name
	snapshot, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	full := int64(len(snapshot))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())

	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the hostile neighbour
		defer wg.Done()
		rng := rand.New(rand.NewPCG(uint64(os.Getpid()), 9))
		small := []int64{2048, layout.HeaderSize, layout.HeaderSize + 16<<10, full / 2}
		for round := 0; !stop.Load(); round++ {
			unix.Ftruncate(fd, small[rng.IntN(len(small))])
			time.Sleep(time.Duration(rng.IntN(200)) * time.Microsecond)
			unix.Ftruncate(fd, full)
			if round%4 == 0 { // make it a whole store again now and then
				unix.Pwrite(fd, snapshot, 0)
			}
			time.Sleep(time.Duration(rng.IntN(300)) * time.Microsecond)
		}
		unix.Ftruncate(fd, full)
		unix.Pwrite(fd, snapshot, 0)
	}()

	var opened, failed, readErrs int
	deadline := time.Now().Add(2 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		o := &Options{InitTimeout: 100 * time.Millisecond, LockTimeout: 20 * time.Millisecond, ReadOnly: i%3 == 2}
		s, err := Open(name, o)
		if err != nil {
			failed++
			continue
		}
		opened++
		if _, err := s.Get([]byte(fmt.Sprint("key", i%500))); err != nil {
			readErrs++
		}
		if err := s.Range(func(k, v []byte) bool { return true }); err != nil {
			readErrs++
		}
		if i%4 == 0 {
			if err := s.Check(); err != nil {
				readErrs++
			}
		}
		if i%5 == 0 && !o.ReadOnly {
			s.Put([]byte("new"), []byte("v"))
		}
		s.Len()
		s.Stats()
		s.Close()
	}
	stop.Store(true)
	wg.Wait()
	fmt.Printf("attempts: %d opened, %d opens failed, %d reads or checks failed\n", opened, failed, readErrs)
}

// heapBlocks walks the heap and returns the first live and the first free
// block it finds.
func heapBlocks(t *testing.T, s *Store) (live, free block) {
	t.Helper()
	top := s.hdr.Meta.Top.Load()
	for off := s.geo.HeapOff; off < top; {
		b, err := s.blockAt(off, top)
		if err != nil {
			t.Fatal(err)
		}
		if b.flags&layout.SizeFree != 0 {
			if free.size == 0 {
				free = b
			}
		} else if live.size == 0 {
			live = b
		}
		off += b.size
	}
	if live.size == 0 || free.size == 0 {
		t.Fatalf("want a live and a free block in the heap: %+v, %+v", live, free)
	}
	return live, free
}

// checkNoPanic runs Check and turns a panic into a test failure (a panic
// out of Check is this process's death in real use).
func checkNoPanic(t *testing.T, s *Store) (err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Check panicked: %v", r)
		}
	}()
	return s.Check()
}

// damagedStore is a store with live and free blocks, removed and closed
// when the test ends (not checked: the test damages it).
func damagedStore(t *testing.T) (s *Store, live, free block) {
	s, err := Create(testName(t), &Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	for i := range 60 {
		s.Put([]byte(fmt.Sprint("key", i)), bytes.Repeat([]byte("v"), 40+i))
	}
	for i := 5; i < 60; i += 7 {
		s.Delete([]byte(fmt.Sprint("key", i)))
	}
	if err := s.Check(); err != nil {
		t.Fatalf("before the damage: %v", err)
	}
	live, free = heapBlocks(t, s)
	return s, live, free
}

// TestCheckNeverFollowsWhatItFailedToValidate: Check walks the heap, then
// follows the free lists and the index to the blocks the walk found. A
// block another process damages in between must be reported, not
// dereferenced: before the fix, Check ignored the error of entryAt and
// dereferenced the nil entry it returned.
func TestCheckNeverFollowsWhatItFailedToValidate(t *testing.T) {
	t.Run("size flips under Check", func(t *testing.T) {
		s, live, free := damagedStore(t)
		// Another process's writes: through the file, not the mapping, so
		// the race detector does not count them as this process's race.
		f, err := os.OpenFile(s.Path(), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		fd := int(f.Fd())
		word := func(b block, v uint32) {
			var w [4]byte
			binary.LittleEndian.PutUint32(w[:], v)
			unix.Pwrite(fd, w[:], int64(b.off+4)) // Entry.Size
		}
		liveSize, freeSize := live.e.Size, free.e.Size
		start := time.Now()
		if err := checkNoPanic(t, s); err != nil {
			t.Fatal(err)
		}
		period := max(time.Since(start), 20*time.Microsecond)

		var stop atomic.Bool
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(1, 2))
			for !stop.Load() {
				word(live, liveSize)
				word(free, freeSize)
				time.Sleep(time.Duration(rng.Int64N(int64(period))))
				word(live, 0)
				word(free, 0)
				time.Sleep(time.Duration(rng.Int64N(int64(period))))
			}
			word(live, liveSize)
			word(free, freeSize)
		}()
		defer func() { // before f.Close, even when the test fails
			stop.Store(true)
			wg.Wait()
		}()
		var checks, slotHits, listHits int
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && (slotHits < 5 || listHits < 5 || checks < 200) {
			checks++
			err := checkNoPanic(t, s)
			if err == nil {
				continue
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("Check = %v, want nil or ErrCorrupt", err)
			}
			for _, l := range strings.Split(err.Error(), "\n") {
				switch {
				case strings.Contains(l, "index slot") && strings.Contains(l, "has size 0"):
					slotHits++
				case strings.Contains(l, "free list") && strings.Contains(l, "has size 0"):
					listHits++
				}
			}
		}
		stop.Store(true)
		wg.Wait()
		t.Logf("%d checks; the size changed between the heap walk and the index pass %d times, and the free list pass %d times", checks, slotHits, listHits)
		if slotHits == 0 {
			t.Errorf("in %d checks the entry's size never changed between the heap walk and the index pass: the test did not test", checks)
		}
		if err := checkNoPanic(t, s); err != nil {
			t.Errorf("after the sizes are put back: %v", err)
		}
	})
	for _, c := range []struct {
		what   string
		damage func(s *Store, live, free block)
		want   string
	}{
		{"key longer than its block", func(s *Store, live, free block) { live.e.KeyLen = 60000 }, "index slot"},
		{"free link to a live entry", func(s *Store, live, free block) { s.word(free.off + 8).Store(live.off) }, "free list"},
		{"free link outside the heap", func(s *Store, live, free block) { s.word(free.off + 8).Store(s.geo.Size + 4096) }, "free list"},
		{"free link into a block", func(s *Store, live, free block) { s.word(free.off + 8).Store(live.off + 16) }, "free list"},
	} {
		t.Run(c.what, func(t *testing.T) {
			s, live, free := damagedStore(t)
			c.damage(s, live, free)
			err := checkNoPanic(t, s)
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check = %v, want ErrCorrupt mentioning %q", err, c.want)
			}
			t.Log(err)
		})
	}
}

// TestRemoveOnlyRemovesStores: /dev/shm holds other programs' objects too;
// Remove must leave alone what is not a store. Unlink is the force.
func TestRemoveOnlyRemovesStores(t *testing.T) {
	name := writeObject(t, []byte("hello"))
	path := ShmDir + "/" + name
	err := Remove(name)
	if !errors.Is(err, ErrIncompatible) {
		t.Errorf("Remove of a foreign object = %v, want ErrIncompatible", err)
	} else {
		t.Log(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "hello" {
		t.Fatalf("after Remove the foreign object holds %q, %v; want it left alone", b, err)
	}
	if err := Unlink(name); err != nil {
		t.Fatalf("Unlink: %v", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after Unlink: %v, want it gone", err)
	}

	s := newStore(t, &Options{Size: 1 << 20})
	if err := Remove(s.Name()); err != nil {
		t.Fatalf("Remove of a store: %v", err)
	}
	if _, err := os.Stat(s.Path()); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after Remove of a store: %v, want it gone", err)
	}
}

// TestRangeKeysDoNotPinValues: Range's keys are their own copies, so
// keeping them does not keep the values' memory (shmkv keys used 915 MiB to
// print 2 MB), RangeKeys copies no value at all, and each value is a copy
// of its own.
func TestRangeKeysDoNotPinValues(t *testing.T) {
	const n, vlen = 48, 64 << 10
	s := newStore(t, &Options{Size: 8 << 20})
	for i := range n {
		if err := s.Put([]byte(fmt.Sprint("key", i)), bytes.Repeat([]byte{byte(i)}, vlen)); err != nil {
			t.Fatal(err)
		}
	}
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}

	var keys [][]byte
	values := map[string][]byte{}
	before := heap()
	err := s.Range(func(k, v []byte) bool {
		if cap(k) >= 1024 {
			t.Errorf("key %q has capacity %d", k, cap(k))
		}
		if len(k) > 0 && len(v) > 0 && unsafe.Add(unsafe.Pointer(unsafe.SliceData(k)), len(k)) == unsafe.Pointer(unsafe.SliceData(v)) {
			t.Errorf("key %q and its value are one allocation: keeping the key keeps the value", k)
		}
		if len(v) != vlen {
			t.Errorf("%q: value of %d bytes, want %d", k, len(v), vlen)
		}
		keys = append(keys, k)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if kept := int64(heap()) - int64(before); kept > n*vlen/4 {
		t.Errorf("keeping %d keys from Range keeps %d bytes alive; the values are %d bytes", len(keys), kept, n*vlen)
	} else {
		t.Logf("keeping %d keys from Range keeps %d bytes alive", len(keys), kept)
	}
	runtime.KeepAlive(keys)
	if len(keys) != n {
		t.Fatalf("Range saw %d keys, want %d", len(keys), n)
	}

	// RangeKeys: the same keys, no value copied.
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	var got []string
	err = s.RangeKeys(func(k []byte) bool {
		if cap(k) >= 1024 {
			t.Errorf("RangeKeys: key %q has capacity %d", k, cap(k))
		}
		got = append(got, string(k))
		return true
	})
	runtime.ReadMemStats(&m1)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != n {
		t.Fatalf("RangeKeys saw %d keys, want %d", len(got), n)
	}
	if alloc := m1.TotalAlloc - m0.TotalAlloc; alloc > n*vlen/4 {
		t.Errorf("RangeKeys allocated %d bytes: it copies values (%d bytes in all)", alloc, n*vlen)
	} else {
		t.Logf("RangeKeys allocated %d bytes", alloc)
	}

	// Values: complete copies, each its own.
	err = s.Range(func(k, v []byte) bool {
		values[string(k)] = v
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	want := func(k string) []byte {
		i := 0
		fmt.Sscan(strings.TrimPrefix(k, "key"), &i)
		return bytes.Repeat([]byte{byte(i)}, vlen)
	}
	for k, v := range values {
		if !bytes.Equal(v, want(k)) {
			t.Fatalf("%q: the value Range gave is not the stored value", k)
		}
	}
	for k, v := range values {
		for i := range v {
			v[i] ^= 0xff
		}
		for k2, v2 := range values {
			if k2 != k && !bytes.Equal(v2, want(k2)) {
				t.Fatalf("changing %q's value changed %q's", k, k2)
			}
		}
		if stored, err := s.Get([]byte(k)); err != nil || !bytes.Equal(stored, want(k)) {
			t.Fatalf("changing the copy of %q's value changed the store: %v", k, err)
		}
		delete(values, k) // the next rounds need not see it unchanged
	}
}

// TestScanSkipsHolesOfSparseStores: on a NoReserve store, the index is
// mostly holes. Range, RangeKeys and Check must not read them, or tmpfs
// allocates every page they touch (a 4 GiB store's use went from 24 KB to
// 342 MB after one `shmkv keys`).
func TestScanSkipsHolesOfSparseStores(t *testing.T) {
	var fsst unix.Statfs_t
	if err := unix.Statfs(ShmDir, &fsst); err != nil {
		t.Fatal(err)
	}
	if free := fsst.Bavail * uint64(fsst.Bsize); free < 2<<30 {
		t.Skipf("%s has %d MiB free; this test wants 2 GiB", ShmDir, free>>20)
	}
	name := testName(t)
	s, err := Create(name, &Options{Size: 1 << 30, NoReserve: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 20 {
		if err := s.Put([]byte(fmt.Sprint("key", i)), []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	allocated := func() int64 {
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		return st.Blocks * 512
	}
	const limit = 4 << 20
	base := allocated()
	t.Logf("a 1 GiB sparse store with %d keys uses %d KiB; its index is %d MiB", s.Len(), base>>10, s.geo.NumBuckets*layout.BucketSize>>20)
	step := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if grew := allocated() - base; grew > limit {
			t.Fatalf("%s made the object's memory grow by %d MiB (from %d KiB)", what, grew>>20, base>>10)
		} else {
			t.Logf("after %s: +%d KiB", what, grew>>10)
		}
	}
	n := 0
	step("Range", s.Range(func(k, v []byte) bool { n++; return true }))
	if n != 20 {
		t.Errorf("Range saw %d keys, want 20", n)
	}
	step("RangeKeys", s.RangeKeys(func(k []byte) bool { return true }))
	step("Check", s.Check())
	if s.Len() != 20 {
		t.Errorf("Len = %d", s.Len())
	}
	s.Close()
	if err := Remove(name); err != nil {
		t.Fatal(err)
	}
}

// TestBoundsPanicBecomesErrCorrupt: as a backstop behind reading each
// region word once, a bounds failure in a guarded operation is a corrupt
// store, not a crash; any other panic is this process's own bug and goes on.
func TestBoundsPanicBecomesErrCorrupt(t *testing.T) {
	recovered := func(f func()) (r any) {
		defer func() { r = recover() }()
		f()
		return nil
	}
	ix := 5
	bounds := []struct {
		what string
		r    any
	}{
		{"BoundsError", recovered(func() {
			r := offsetptr.NewRegion(make([]byte, 64))
			offsetptr.MustAt[layout.Entry](r, offsetptr.Offset(128))
		})},
		{"BoundsError value", func() any {
			var be *offsetptr.BoundsError
			errors.As(offsetptr.Check(offsetptr.Offset(4096), 16, 8, 64), &be)
			return be
		}()},
		{"index out of range", recovered(func() { _ = make([]int, 3)[ix] })},
		{"index out of range [-1]", recovered(func() { _ = make([]int, 3)[ix-6] })},
		{"slice bounds out of range", recovered(func() { _ = make([]byte, 3)[ix:] })},
	}
	for _, c := range bounds {
		if c.r == nil {
			t.Fatalf("%s: no panic to recover", c.what)
		}
		var err error
		if p := recovered(func() { err = faultError(c.r, ErrCorrupt) }); p != nil {
			t.Errorf("%s (%v): faultError panicked again with %v, want ErrCorrupt", c.what, c.r, p)
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: faultError = %v, want ErrCorrupt", c.what, err)
		}
		t.Logf("%s: %v", c.what, err)
	}

	var nilMap map[string]int
	zero := 0
	others := []struct {
		what string
		r    any
	}{
		{"string", "a plain string"},
		{"error", errors.New("an error value")},
		{"nil map", recovered(func() { nilMap["x"] = 1 })},
		{"divide by zero", recovered(func() { _ = ix / zero })},
	}
	for _, c := range others {
		if c.r == nil {
			t.Fatalf("%s: no panic to recover", c.what)
		}
		var err error
		p := recovered(func() { err = faultError(c.r, ErrCorrupt) })
		if p == nil {
			t.Errorf("%s (%v): faultError returned %v; it must panic again", c.what, c.r, err)
		} else if p != c.r {
			t.Errorf("%s: re-panicked with %v, want the same value %v", c.what, p, c.r)
		}
	}
}
