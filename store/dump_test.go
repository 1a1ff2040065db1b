package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/shmkv/shmkv/layout"
)

// contents is every key and value of s.
func contents(t testing.TB, s *Store) map[string]string {
	t.Helper()
	m := map[string]string{}
	if err := s.ForEach(func(k, v []byte) error { m[string(k)] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	return m
}

func sameContents(t testing.TB, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d keys, want %d", len(got), len(want))
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Fatalf("key %s: got %d bytes (present %v), want %d bytes", QuoteKey([]byte(k)), len(g), ok, len(v))
		}
	}
}

// fillOddities puts binary keys and values, empty values, the largest key,
// a large value and many small entries, with frees between them.
func fillOddities(t testing.TB, s *Store, seed uint64) map[string]string {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	want := map[string]string{}
	put := func(k, v []byte) {
		if err := s.Put(k, v); err != nil {
			t.Fatalf("put %s: %v", QuoteKey(k), err)
		}
		want[string(k)] = string(v)
	}
	put([]byte{0}, []byte{})
	put([]byte{0xff, 0, 0xfe, '\n'}, []byte{0, 0, 0, 1, 0xff})
	put([]byte("empty"), nil)
	put(bytes.Repeat([]byte{0xab}, MaxKeySize), []byte("the largest key"))
	big := make([]byte, 100<<10)
	for i := range big {
		big[i] = byte(r.Uint32())
	}
	put([]byte("big"), big)
	for i := range 3000 {
		k := make([]byte, 1+r.IntN(40))
		for j := range k {
			k[j] = byte(r.Uint32())
		}
		k = append(k, fmt.Sprint(i)...)
		v := make([]byte, r.IntN(300))
		for j := range v {
			v[j] = byte(r.Uint32())
		}
		put(k, v)
		if i%3 == 0 { // free blocks between live ones
			if err := s.Delete(k); err != nil {
				t.Fatal(err)
			}
			delete(want, string(k))
		}
	}
	return want
}

func dumpOf(t testing.TB, s *Store) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := s.Dump(&b); err != nil {
		t.Fatalf("dump: %v", err)
	}
	return b.Bytes()
}

func TestDumpLoadRoundTrip(t *testing.T) {
	for _, o := range []*Options{{Size: 8 << 20}, {Size: 8 << 20, NoReserve: true, Mode: 0o640, MaxEntries: 20000}} {
		src := newStore(t, o)
		want := fillOddities(t, src, 1)
		d := dumpOf(t, src)

		r, err := NewDumpReader(bytes.NewReader(d))
		if err != nil {
			t.Fatal(err)
		}
		h := r.Header()
		if h.Version != DumpVersion || h.Keys != int64(len(want)) || h.Name != src.Name() || h.StoreVersion != layout.Version ||
			h.Options.Size != o.Size || h.Options.NoReserve != o.NoReserve || h.Options.Mode != src.Stats().Mode ||
			int(h.Options.MaxEntries) != src.Stats().MaxEntries || time.Since(h.Taken) > time.Minute {
			t.Fatalf("header %+v", h)
		}
		got := map[string]string{}
		for {
			k, v, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got[string(k)] = string(v)
		}
		sameContents(t, got, want)

		// Into a new store, with the dump's options.
		name := testName(t)
		r, _ = NewDumpReader(bytes.NewReader(d))
		p, err := Load(context.Background(), name, r, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.Keys != int64(len(want)) || p.Bytes != int64(len(d)) {
			t.Fatalf("progress %+v, want %d keys from %d bytes", p, len(want), len(d))
		}
		dst, err := Open(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		st := dst.Stats()
		if st.Size != o.Size || st.NoReserve != o.NoReserve || st.MaxEntries != src.Stats().MaxEntries || st.Mode != src.Stats().Mode {
			t.Fatalf("loaded store's options %+v", st)
		}
		sameContents(t, contents(t, dst), want)
		if err := dst.Check(); err != nil {
			t.Fatal(err)
		}
		dst.Close()

		// Into an existing store (Store.Load): the dump's keys overwrite.
		other := newStore(t, &Options{Size: 16 << 20})
		other.Put([]byte("empty"), []byte("overwritten"))
		other.Put([]byte("mine"), []byte("kept"))
		if err := other.Load(bytes.NewReader(d)); err != nil {
			t.Fatal(err)
		}
		want2 := map[string]string{"mine": "kept"}
		for k, v := range want {
			want2[k] = v
		}
		sameContents(t, contents(t, other), want2)
	}
}

func TestBackupRestoreRoundTrip(t *testing.T) {
	for _, o := range []*Options{{Size: 8 << 20}, {Size: 8 << 20, NoReserve: true, MaxEntries: 20000, Mode: 0o640}} {
		src := newStore(t, o)
		want := fillOddities(t, src, 2)
		var b bytes.Buffer
		if err := src.Backup(&b); err != nil {
			t.Fatal(err)
		}
		if top := src.Header().Meta.Top.Load(); uint64(b.Len()) > top+8192 {
			t.Fatalf("backup of %d bytes for a heap top of %d", b.Len(), top)
		}
		name := testName(t)
		p, err := Restore(context.Background(), name, bytes.NewReader(b.Bytes()), nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.TotalKeys != int64(len(want)) {
			t.Fatalf("progress %+v", p)
		}
		dst, err := Open(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		st, sst := dst.Stats(), src.Stats()
		if st.Size != sst.Size || st.NoReserve != sst.NoReserve || st.MaxEntries != sst.MaxEntries || st.Mode != sst.Mode || st.Attached != 1 {
			t.Fatalf("restored %+v\nsource %+v", st, sst)
		}
		sameContents(t, contents(t, dst), want)
		if err := dst.Check(); err != nil {
			t.Fatal(err)
		}
		// It works as a store: writes, deletes.
		for k := range want {
			if err := dst.Delete([]byte(k)); err != nil {
				t.Fatal(err)
			}
			break
		}
		if err := dst.Put([]byte("after"), []byte("restore")); err != nil {
			t.Fatal(err)
		}
		if err := dst.Check(); err != nil {
			t.Fatal(err)
		}
		dst.Close()
		// Not over an existing store, unless Replace.
		if _, err := Restore(context.Background(), name, bytes.NewReader(b.Bytes()), nil); !errors.Is(err, fs.ErrExist) {
			t.Fatalf("restore over an existing store: %v", err)
		}
		if _, err := Restore(context.Background(), name, bytes.NewReader(b.Bytes()), &RestoreOptions{Replace: true}); err != nil {
			t.Fatal(err)
		}
		noLeftovers(t, name)
	}
}

// noLeftovers fails if anything but the store name itself is in /dev/shm
// under its name: temporary objects, snapshot buffers.
func noLeftovers(t testing.TB, name string) {
	t.Helper()
	des, _ := os.ReadDir(ShmDir)
	for _, de := range des {
		if strings.HasPrefix(de.Name(), name+".") {
			t.Errorf("left in %s: %s", ShmDir, de.Name())
		}
	}
}

func TestDumpDamageIsRefused(t *testing.T) {
	src := newStore(t, &Options{Size: 8 << 20})
	want := map[string]string{}
	for i := range 5000 { // several blocks
		k, v := fmt.Sprintf("k%05d", i), strings.Repeat("v", i%1000)
		src.Put([]byte(k), []byte(v))
		want[k] = v
	}
	d := dumpOf(t, src)
	blocks := 0
	r, _ := NewDumpReader(bytes.NewReader(d))
	for r.nextBlock() == nil {
		blocks++
	}
	if blocks < 3 {
		t.Fatalf("%d blocks: the test wants several", blocks)
	}
	load := func(b []byte) (int, error) {
		s := newStore(t, &Options{Size: 8 << 20})
		err := s.Load(bytes.NewReader(b))
		n := s.Len()
		// What is there is whole: exactly the dump's values.
		for k, v := range contents(t, s) {
			if want[k] != v {
				t.Fatalf("loaded %s = %.20q, which the dump does not hold", k, v)
			}
		}
		s.Close()
		Remove(s.Name())
		return n, err
	}
	// Truncated anywhere: refused.
	cuts := []int{0, 1, 7, 8, 15, 16, 100, len(d) / 3, len(d) / 2, len(d) - 25, len(d) - 24, len(d) - 17, len(d) - 8, len(d) - 1}
	for i := 0; i < 20; i++ {
		cuts = append(cuts, rand.IntN(len(d)))
	}
	for _, c := range cuts {
		if _, err := load(d[:c]); !errors.Is(err, ErrDamaged) && !(c < 16 && errors.Is(err, ErrIncompatible)) {
			t.Fatalf("dump cut at %d of %d: %v", c, len(d), err)
		}
	}
	// A byte changed anywhere: refused.
	for i := 0; i < 60; i++ {
		at := rand.IntN(len(d))
		if i == 0 {
			at = len(d) - 9 // the file's checksum
		}
		b := bytes.Clone(d)
		b[at] ^= 1 << rand.IntN(8)
		if _, err := load(b); err == nil {
			t.Fatalf("a dump with byte %d of %d changed loaded", at, len(d))
		}
	}
	// A block left out: refused at that block, the ones before it loaded.
	r, _ = NewDumpReader(bytes.NewReader(d))
	hl := int(binary.LittleEndian.Uint32(d[12:]))
	l0 := int(binary.LittleEndian.Uint32(d[hl:]))
	first := 24 + l0
	cut := append(bytes.Clone(d[:hl]), d[hl+first:]...)
	n, err := load(cut)
	if !errors.Is(err, ErrDamaged) || n != 0 || !strings.Contains(err.Error(), "missing or out of place") {
		t.Fatalf("a dump without its first block: %d keys, %v", n, err)
	}
	// Whole: loads.
	if n, err := load(d); err != nil || n != len(want) {
		t.Fatalf("whole dump: %d keys, %v", n, err)
	}
}

func TestDumpOfNewerVersionIsRefused(t *testing.T) {
	src := newStore(t, &Options{Size: 1 << 20})
	src.Put([]byte("k"), []byte("v"))
	d := dumpOf(t, src)
	binary.LittleEndian.PutUint32(d[8:], DumpVersion+1)
	hl := binary.LittleEndian.Uint32(d[12:])
	binary.LittleEndian.PutUint64(d[hl-8:], xxhash.Sum64(d[:hl-8]))
	_, err := NewDumpReader(bytes.NewReader(d))
	if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "newer shmkv") {
		t.Fatalf("a dump of version %d: %v", DumpVersion+1, err)
	}
	t.Log(err)
	// A backup is not a dump, nor a dump a backup.
	var b bytes.Buffer
	src.Backup(&b)
	if _, err := NewDumpReader(&b); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "restore") {
		t.Fatalf("a backup read as a dump: %v", err)
	}
	if _, err := Restore(context.Background(), testName(t), bytes.NewReader(dumpOf(t, src)), nil); !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "load") {
		t.Fatalf("a dump restored: %v", err)
	}
}

func TestRestoreRefusesDamage(t *testing.T) {
	src := newStore(t, &Options{Size: 2 << 20})
	fillOddities(t, src, 3)
	var b bytes.Buffer
	if err := src.Backup(&b); err != nil {
		t.Fatal(err)
	}
	good := b.Bytes()
	hl := int(binary.LittleEndian.Uint32(good[12:]))
	name := testName(t)
	try := func(what string, bk []byte) {
		t.Helper()
		_, err := Restore(context.Background(), name, bytes.NewReader(bk), nil)
		if !errors.Is(err, ErrDamaged) && !errors.Is(err, ErrIncompatible) {
			t.Fatalf("%s: restore: %v", what, err)
		}
		if _, err := os.Stat(filepath.Join(ShmDir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("%s: a refused restore left the store", what)
		}
		noLeftovers(t, name)
	}
	for _, c := range []int{10, hl, hl + 100, hl + 5000, len(good) - 16, len(good) - 1} {
		try(fmt.Sprintf("cut at %d", c), good[:c])
	}
	for i := 0; i < 20; i++ {
		bk := bytes.Clone(good)
		at := hl + rand.IntN(len(good)-hl)
		bk[at] ^= 0x10
		try(fmt.Sprintf("byte %d changed", at), bk)
	}
	// Damage that the checksums cannot see (they were computed over it):
	// Check refuses the image.
	bk := bytes.Clone(good)
	g := src.Geometry()
	img := bk[hl : len(bk)-16]
	binary.LittleEndian.PutUint64(img[layout.CountOff:], 7) // Meta.Count
	binary.LittleEndian.PutUint64(bk[len(bk)-16:], xxhash.Sum64(bk[:len(bk)-16]))
	_, err := Restore(context.Background(), name, bytes.NewReader(bk), nil)
	if !errors.Is(err, ErrDamaged) || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "Check") {
		t.Fatalf("an image with a wrong count: %v", err)
	}
	t.Log(err)
	_ = g
	noLeftovers(t, name)
	if _, err := Restore(context.Background(), name, bytes.NewReader(good), nil); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotWithWriters dumps and backs up while goroutines, each with
// its own Store, update pairs of keys in one Update: every dump must show
// each pair equal, and each restored backup must pass Check.
func TestSnapshotWithWriters(t *testing.T) {
	src := newStore(t, &Options{Size: 4 << 20})
	const pairs = 300
	for i := range pairs {
		v := []byte("0")
		src.Put(fmt.Appendf(nil, "a%d", i), v)
		src.Put(fmt.Appendf(nil, "b%d", i), v)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var writes atomic.Int64
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(src.Name(), nil)
			if err != nil {
				t.Error(err)
				return
			}
			defer s.Close()
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for n := 0; !stop.Load(); n++ {
				i := r.IntN(pairs)
				// Values of drifting sizes, so blocks are freed, merged, split.
				v := bytes.Repeat([]byte{byte('a' + n%26)}, 1+r.IntN(400))
				err := s.Update(func(b *Batch) error {
					if err := b.Put(fmt.Appendf(nil, "a%d", i), v); err != nil {
						return err
					}
					return b.Put(fmt.Appendf(nil, "b%d", i), v)
				})
				if err != nil {
					t.Error(err)
					return
				}
				writes.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	dumps := 0
	for ; time.Now().Before(deadline) || dumps < 5; dumps++ {
		d := dumpOf(t, src)
		r, err := NewDumpReader(bytes.NewReader(d))
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for {
			k, v, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			got[string(k)] = string(v)
		}
		if len(got) != 2*pairs {
			t.Fatalf("dump %d: %d keys", dumps, len(got))
		}
		for i := range pairs {
			if a, b := got[fmt.Sprintf("a%d", i)], got[fmt.Sprintf("b%d", i)]; a != b {
				t.Fatalf("dump %d: pair %d differs: %.10q (%d bytes), %.10q (%d bytes): not one instant", dumps, i, a, len(a), b, len(b))
			}
		}
		if dumps%2 == 0 {
			var b bytes.Buffer
			if err := src.Backup(&b); err != nil {
				t.Fatal(err)
			}
			name := testName(t)
			if _, err := Restore(context.Background(), name, &b, nil); err != nil {
				t.Fatalf("restore of a backup taken under writers: %v", err)
			}
			Remove(name)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d dumps and backups during %d writes", dumps, writes.Load())
	noLeftovers(t, src.Name())
}

// A heap that ends with a free block (a lazy one, which may sit just
// below Top) dumps and loads back. The snapshot's heap walk used to stop
// on such a block when it was an 8-byte fragment (before version 8 a lazy
// block could be split), holding its header, and refused every dump of
// such a store.
func TestDumpOfHeapEndingInFreeBlock(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	put := func(k string, n int) {
		t.Helper()
		if err := s.Put([]byte(k), bytes.Repeat([]byte{'v'}, n)); err != nil {
			t.Fatal(err)
		}
	}
	put("a", 10)
	put("z", 100) // a block of 120 bytes: 16 + 1 + 100, rounded up
	put("z", 100) // same size: the old block is lazy, the new one at Top
	if err := s.Delete([]byte("z")); err != nil {
		t.Fatal(err) // back to the never-used space: the lazy block is below Top
	}
	put("y", 92) // 112 bytes: not the lazy block's size, so at Top
	if err := s.Delete([]byte("y")); err != nil {
		t.Fatal(err)
	}
	top := s.hdr.Meta.Top.Load()
	if w := s.word(top - 120).Load(); uint32(w>>32)&(layout.SizeFree|layout.SizeLazy) != layout.SizeFree|layout.SizeLazy || entrySize(w) != 120 {
		t.Fatalf("setup: the block below Top is %#x, want a 120-byte lazy block", w)
	}
	var buf bytes.Buffer
	if err := s.Dump(&buf); err != nil {
		t.Fatalf("Dump: %v", err)
	}
	l := newStore(t, &Options{Size: 1 << 20})
	if err := l.Load(&buf); err != nil {
		t.Fatalf("Load: %v", err)
	}
	if _, err := l.Get([]byte("y")); !errors.Is(err, ErrNotFound) {
		t.Errorf("after load, y: %v, want not found", err)
	}
	for k, n := range map[string]int{"a": 10} {
		if v, err := l.Get([]byte(k)); err != nil || len(v) != n {
			t.Errorf("after load, %s: %d bytes, %v", k, len(v), err)
		}
	}
}
