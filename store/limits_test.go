package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSameStoreMappedTwice(t *testing.T) {
	a := newStore(t, &Options{Size: 1 << 20})
	b, err := Open(a.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if &a.Mapping()[0] == &b.Mapping()[0] {
		t.Fatal("both Stores share one mapping; want two mappings at different addresses")
	}
	for i := range 100 {
		k := []byte(fmt.Sprintf("k%d", i))
		w, r := a, b
		if i%2 == 1 {
			w, r = b, a
		}
		if err := w.Put(k, k); err != nil {
			t.Fatal(err)
		}
		if v, err := r.Get(k); err != nil || !bytes.Equal(v, k) {
			t.Fatalf("put through one mapping, get through the other: %q, %v", v, err)
		}
	}
	if a.Len() != 100 || b.Len() != 100 {
		t.Fatalf("Len %d and %d, want 100", a.Len(), b.Len())
	}
	if st := a.Stats(); st.Attached != 2 {
		t.Fatalf("Attached = %d, want 2", st.Attached)
	}
	if err := b.Check(); err != nil {
		t.Fatal(err)
	}
}

// snapshot reads every pair through Range.
func snapshot(t *testing.T, s *Store) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := s.Range(func(k, v []byte) bool { m[string(k)] = string(v); return true }); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFullLeavesStoreIntact(t *testing.T) {
	s := newStore(t, &Options{Size: 512 << 10})
	val := bytes.Repeat([]byte("v"), 1000)
	n := 0
	var err error
	for ; ; n++ {
		if err = s.Put([]byte(fmt.Sprintf("key%05d", n)), val); err != nil {
			break
		}
	}
	if !errors.Is(err, ErrFull) {
		t.Fatalf("filling the store ended with %v, want ErrFull", err)
	}
	before := snapshot(t, s)
	st := s.Stats()
	if len(before) != n || s.Len() != n {
		t.Fatalf("%d puts acknowledged, store holds %d (Len %d)", n, len(before), s.Len())
	}
	// Failed puts of new keys and overwrites with bigger values change nothing.
	if err := s.Put([]byte("another"), val); !errors.Is(err, ErrFull) {
		t.Fatalf("put into a full store: %v", err)
	}
	if err := s.Put([]byte("key00000"), bytes.Repeat([]byte("w"), 4000)); !errors.Is(err, ErrFull) {
		t.Fatalf("growing overwrite in a full store: %v", err)
	}
	if ok, err := s.CompareAndSwap([]byte("new"), nil, val); ok || !errors.Is(err, ErrFull) {
		t.Fatalf("CAS into a full store: %v, %v", ok, err)
	}
	after := snapshot(t, s)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatal("a failed put changed the store")
	}
	if st2 := s.Stats(); st2.BlockBytes != st.BlockBytes || st2.FreeListBytes != st.FreeListBytes || st2.TailBytes != st.TailBytes {
		t.Fatalf("a failed put changed the heap: %+v then %+v", st, st2)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	// Space freed by Delete is reused: delete ten, put ten new ones.
	for i := range 10 {
		if err := s.Delete([]byte(fmt.Sprintf("key%05d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if err := s.Put([]byte(fmt.Sprintf("new%05d", i)), val); err != nil {
			t.Fatalf("put %d after freeing space: %v", i, err)
		}
	}
	// And space freed by overwriting with a smaller value serves smaller
	// ones. (An overwrite writes the new entry before it frees the old one,
	// so it needs room for the new one: delete one entry to make it.)
	if err := s.Delete([]byte("key00010")); err != nil {
		t.Fatal(err)
	}
	small := []byte("s")
	for i := 11; i < 20; i++ {
		if err := s.Put([]byte(fmt.Sprintf("key%05d", i)), small); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 100 {
		if err := s.Put([]byte(fmt.Sprintf("tiny%03d", i)), small); err != nil {
			t.Fatalf("tiny put %d into space freed by shrinking overwrites: %v", i, err)
		}
	}
}

func TestMaxEntries(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20, MaxEntries: 50})
	for i := range 50 {
		if err := s.Put([]byte(fmt.Sprint(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put([]byte("one more"), nil); !errors.Is(err, ErrFull) {
		t.Fatalf("put past MaxEntries: %v", err)
	}
	if err := s.Put([]byte("7"), []byte("overwrite is fine")); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.MaxEntries != 50 || st.Entries != 50 {
		t.Fatalf("Stats entries %d/%d", st.Entries, st.MaxEntries)
	}
}

func TestTooLarge(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	if err := s.Put(make([]byte, MaxKeySize+1), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized key: %v", err)
	}
	if err := s.Put([]byte("k"), make([]byte, 2<<20)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("value bigger than the store: %v", err)
	}
	if _, err := Create(testName(t), &Options{Size: 1000}); err == nil || !strings.Contains(err.Error(), "minimum") {
		t.Fatalf("tiny store: %v", err)
	}
	if _, err := Create(testName(t), &Options{Size: 1 << 41}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("huge store: %v", err)
	}
	if s.Len() != 0 {
		t.Fatal("a rejected put left an entry")
	}
}

func TestReadOnly(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	s.Put([]byte("k"), []byte("v"))
	r, err := Open(s.Name(), &Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if v, err := r.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("read-only Get: %q, %v", v, err)
	}
	for name, err := range map[string]error{
		"Put":    r.Put([]byte("k"), []byte("w")),
		"Delete": r.Delete([]byte("k")),
	} {
		if !errors.Is(err, ErrReadOnly) {
			t.Errorf("%s on a read-only store: %v", name, err)
		}
	}
	if _, err := r.CompareAndSwap([]byte("k"), nil, nil); !errors.Is(err, ErrReadOnly) {
		t.Errorf("CAS on a read-only store: %v", err)
	}
	s.Put([]byte("k"), []byte("w"))
	if v, _ := r.Get([]byte("k")); string(v) != "w" {
		t.Fatalf("read-only Store does not see a write: %q", v)
	}
}

func TestRemoveWhileAttached(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	s.Put([]byte("k"), []byte("old"))
	if err := Remove(s.Name()); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(s.Name(), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open after Remove: %v", err)
	}
	if err := s.Put([]byte("k2"), []byte("still works")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "old" {
		t.Fatalf("Get on the unlinked store: %q, %v", v, err)
	}
	fresh, err := Create(s.Name(), &Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if fresh.Len() != 0 {
		t.Fatalf("Create after Remove gives a store of %d entries, want a fresh one", fresh.Len())
	}
}

func TestClose(t *testing.T) {
	s, err := Create(testName(t), &Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s.Put([]byte("k"), []byte("v"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get([]byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v", err)
	}
	if err := s.Put([]byte("k"), nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Put after Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	// Reopening finds the data.
	r, err := Open(s.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if v, err := r.Get([]byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("after reopen: %q, %v", v, err)
	}
}

func TestOversizeCreateFailsCleanly(t *testing.T) {
	name := testName(t)
	// Larger than the whole of /dev/shm: fallocate refuses at once.
	_, err := Create(name, &Options{Size: 1 << 40})
	if !errors.Is(err, ErrFull) {
		t.Fatalf("Create larger than /dev/shm: %v, want ErrFull", err)
	}
	t.Log(err)
	if _, err := os.Stat(ShmDir + "/" + name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("failed Create left the object behind: %v", err)
	}
}

func TestNoReserveIsSparse(t *testing.T) {
	s := newStore(t, &Options{Size: 64 << 20, NoReserve: true})
	var st1 = s.Stats()
	if !st1.NoReserve {
		t.Fatal("Stats does not report NoReserve")
	}
	fi, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	used := blocksOf(fi)
	if used > 8<<20 {
		t.Fatalf("sparse 64 MiB store uses %d bytes of /dev/shm", used)
	}
	r := newStore(t, &Options{Size: 16 << 20})
	fi, _ = os.Stat(r.Path())
	if blocksOf(fi) < 16<<20 {
		t.Fatalf("reserved 16 MiB store uses only %d bytes", blocksOf(fi))
	}
	o, err := Open(s.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if !o.Stats().NoReserve {
		t.Fatal("NoReserve not recorded in the store for openers")
	}
}

func TestPopulateAndLock(t *testing.T) {
	s := newStore(t, &Options{Size: 4 << 20, Populate: true, Lock: true})
	st := s.Stats()
	if !st.Populate || !st.Lock {
		t.Fatalf("Stats: populate %v lock %v", st.Populate, st.Lock)
	}
	o, err := Open(s.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if st := o.Stats(); !st.Populate || !st.Lock {
		t.Fatal("an opener does not apply the creator's Populate and Lock")
	}
}

func TestTransparentHugePages(t *testing.T) {
	s := newStore(t, &Options{Size: 8 << 20, HugePages: HugeTransparent})
	st := s.Stats()
	if st.HugePages != HugeTransparent || st.THPShmem == "" {
		t.Fatalf("Stats: %v %q", st.HugePages, st.THPShmem)
	}
	t.Logf("backing: %s", st.Backing)
	if st.THPShmem == "never" || st.THPShmem == "deny" {
		if st.HugePageBytes != 0 {
			t.Fatalf("shmem_enabled=%s yet %d bytes in huge pages", st.THPShmem, st.HugePageBytes)
		}
	}
}

// TestIndexFillsToMaxEntries fills the index to its capacity: every put
// must find a slot, including those whose home bucket is full while no key
// has yet probed past it.
func TestIndexFillsToMaxEntries(t *testing.T) {
	const n = 20000
	s := newStore(t, &Options{Size: 8 << 20, MaxEntries: n})
	for i := range n {
		if err := s.Put([]byte(fmt.Sprintf("key-%d", i)), []byte("v")); err != nil {
			t.Fatalf("put %d of %d: %v", i, n, err)
		}
	}
	for i := range n {
		if _, err := s.Get([]byte(fmt.Sprintf("key-%d", i))); err != nil {
			t.Fatalf("get %d: %v", i, err)
		}
	}
	// Delete half and put them back: probe counts go down and up again.
	for i := 0; i < n; i += 2 {
		if err := s.Delete([]byte(fmt.Sprintf("key-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 2 {
		if err := s.Put([]byte(fmt.Sprintf("key-%d", i)), []byte("again")); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCloseWhileReading closes a Store while goroutines read and write it:
// every call returns a value, ErrNotFound or ErrClosed; none crashes.
func TestCloseWhileReading(t *testing.T) {
	for round := range 20 {
		s, err := Create(testName(t), &Options{Size: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 100 {
			s.Put([]byte(fmt.Sprint(i)), []byte("value"))
		}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for g := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				buf := make([]byte, 0, 16)
				for i := 0; ; i++ {
					var err error
					switch g {
					case 0:
						err = s.Put([]byte(fmt.Sprint(i%100)), []byte("v2"))
					case 1:
						err = s.Range(func(k, v []byte) bool { return true })
					default:
						_, err = s.GetAppend(buf[:0], []byte(fmt.Sprint(i%120)))
						s.Len()
					}
					if errors.Is(err, ErrClosed) {
						return
					}
					if err != nil && !errors.Is(err, ErrNotFound) {
						errs <- fmt.Errorf("round %d goroutine %d: %w", round, g, err)
						return
					}
				}
			}()
		}
		time.Sleep(time.Millisecond)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

func TestList(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	foreign := testName(t)
	os.WriteFile(ShmDir+"/"+foreign, []byte("not a store at all"), 0o600)
	infos, err := List()
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, in := range infos {
		if in.Name == foreign {
			t.Fatalf("List includes a foreign object %s", foreign)
		}
		if in.Name == s.Name() {
			found = in.Path == s.Path() && in.Size == 1<<20
		}
	}
	if !found {
		t.Fatalf("List does not show %s (1 MiB at %s): %+v", s.Name(), s.Path(), infos)
	}
}
