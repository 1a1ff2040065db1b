package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shmkv/shmkv/layout"
)

// integrityValue is the value of key i in the integrity tests: its length
// and bytes both depend on i, so a value read for the wrong key, cut or
// shifted, never equals it.
func integrityValue(i int) []byte {
	v := make([]byte, (i*37)%300)
	for j := range v {
		v[j] = byte(i*131 + j*7)
	}
	return v
}

// A byte flipped inside a value: a default Store returns it, a Store with
// VerifyReads refuses it and names the key, and Check names it too.
func TestVerifyReadsNamesDamagedEntry(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	for i := range 100 {
		if err := s.Put([]byte(fmt.Sprintf("key%03d", i)), integrityValue(i)); err != nil {
			t.Fatal(err)
		}
	}
	key := []byte("key042")
	p, err := s.withTxnFind(key)
	if err != nil || !p.found || p.b.vl == 0 {
		t.Fatalf("find key042: %+v, %v", p, err)
	}
	s.Mapping()[p.b.off+layout.EntryHeader+p.b.kl] ^= 0x20 // the value's first byte

	if v, err := s.Get(key); err != nil || bytes.Equal(v, integrityValue(42)) {
		t.Fatalf("without VerifyReads: %q, %v; want the damaged bytes, no error", v, err)
	}
	vs, err := Open(s.name, &Options{VerifyReads: true})
	if err != nil {
		t.Fatal(err)
	}
	defer vs.Close()
	for what, err := range map[string]error{
		"Get":       func() error { _, err := vs.Get(key); return err }(),
		"Has":       func() error { _, err := vs.Has(key); return err }(),
		"Range":     vs.Range(func(k, v []byte) bool { return true }),
		"RangeKeys": vs.RangeKeys(func(k []byte) bool { return true }),
		"ForEach":   vs.ForEach(func(k, v []byte) error { return nil }),
	} {
		if !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), key) {
			t.Errorf("%s with VerifyReads: %v; want ErrCorrupt naming %s", what, err, key)
		}
	}
	// The other entries still read back.
	if v, err := vs.Get([]byte("key041")); err != nil || !bytes.Equal(v, integrityValue(41)) {
		t.Errorf("key041 with VerifyReads: %q, %v", v, err)
	}
	err = s.Check()
	if !errors.Is(err, ErrCorrupt) || !bytes.Contains([]byte(err.Error()), key) {
		t.Fatalf("Check: %v; want ErrCorrupt naming %s", err, key)
	}
	// Repair by hand: the test's cleanup checks the store.
	s.Mapping()[p.b.off+layout.EntryHeader+p.b.kl] ^= 0x20
}

// withTxnFind is find under the writer lock, for tests that need a key's
// block.
func (s *Store) withTxnFind(key []byte) (p place, err error) {
	err = s.withLock(context.Background(), func(*txn) error {
		p, err = s.find(key, hashKey(key), nil)
		return err
	}, false)
	return p, err
}

// TestDamagedImages copies a filled store's image many times with a few
// random bytes changed in the parts in use (header counters, index, heap),
// opens each copy read-only with and without VerifyReads, and reads every
// key. No copy may crash or hang the reader; with VerifyReads, none may
// return bytes that are not the key's value without an error. It reports
// how the reads ended. SHMKV_DAMAGE_IMAGES sets the number of images
// (default 400; the README quotes a run of 100,000).
func TestDamagedImages(t *testing.T) {
	images := 400
	if v := os.Getenv("SHMKV_DAMAGE_IMAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		images = n
	}
	const keys = 300
	name := testName(t)
	s, err := Create(name, &Options{Size: 256 << 10, MaxEntries: 600})
	if err != nil {
		t.Fatal(err)
	}
	for i := range keys {
		if err := s.Put([]byte(strconv.Itoa(i)), integrityValue(i)); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < keys; i += 7 { // free blocks between the live ones
		s.Delete([]byte(strconv.Itoa(i)))
	}
	g, top, path := s.geo, s.hdr.Meta.Top.Load(), s.obj.path
	s.Close()
	pristine, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	seed := rand.Uint64()
	t.Logf("seed %d (SHMKV_SEED replays)", seed)
	if v := os.Getenv("SHMKV_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	rng := rand.New(rand.NewPCG(seed, 11))
	type tally struct{ refused, right, absent, errs, wrong int }
	var got [2]tally // [0] without VerifyReads, [1] with
	img := make([]byte, len(pristine))
	for n := range images {
		copy(img, pristine)
		for range 1 + rng.IntN(3) {
			var at uint64
			switch r := rng.IntN(10); {
			case r == 0: // counters, free lists, allocator state
				at = layout.MetaOff + rng.Uint64N(layout.HeaderSize-layout.MetaOff)
			case r < 3: // index
				at = g.IndexOff + rng.Uint64N(g.NumBuckets*layout.BucketSize)
			default: // heap in use
				at = g.HeapOff + rng.Uint64N(top-g.HeapOff)
			}
			img[at] ^= byte(1 + rng.IntN(255))
		}
		if err := os.WriteFile(path, img, 0o600); err != nil {
			t.Fatal(err)
		}
		for v := range 2 {
			done := make(chan tally, 1)
			go func() {
				var c tally
				r, err := Open(name, &Options{ReadOnly: true, VerifyReads: v == 1, InitTimeout: 20 * time.Millisecond})
				if err != nil {
					c.refused++
					done <- c
					return
				}
				defer r.Close()
				for i := range keys {
					val, err := r.Get([]byte(strconv.Itoa(i)))
					switch {
					case errors.Is(err, ErrNotFound) && i%7 == 0:
						c.right++ // deleted
					case errors.Is(err, ErrNotFound):
						c.absent++
					case err != nil:
						c.errs++
					case i%7 != 0 && bytes.Equal(val, integrityValue(i)):
						c.right++
					default:
						c.wrong++
					}
				}
				done <- c
			}()
			select {
			case c := <-done:
				got[v].refused += c.refused
				got[v].right += c.right
				got[v].absent += c.absent
				got[v].errs += c.errs
				got[v].wrong += c.wrong
			case <-time.After(10 * time.Second):
				t.Fatalf("image %d (seed %d): reads took over 10s (hang)", n, seed)
			}
		}
	}
	for v, c := range got {
		t.Logf("VerifyReads %v, %d images x %d keys: %d refused at open; reads: %d right, %d absent, %d errors, %d wrong values without an error",
			v == 1, images, keys, c.refused, c.right, c.absent, c.errs, c.wrong)
	}
	if got[1].wrong != 0 {
		t.Fatalf("with VerifyReads, %d reads returned a wrong value without an error (seed %d)", got[1].wrong, seed)
	}
}
