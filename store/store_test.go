package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"testing"
)

func TestPutGetDelete(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	if _, err := s.Get([]byte("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of absent key: %v", err)
	}
	if err := s.Put([]byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("a")); err != nil || string(v) != "1" {
		t.Fatalf("Get = %q, %v", v, err)
	}
	if err := s.Put([]byte("a"), []byte("22")); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("a")); err != nil || string(v) != "22" {
		t.Fatalf("Get after overwrite = %q, %v", v, err)
	}
	if err := s.Put([]byte(""), nil); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get(nil); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("empty key: %q, %v", v, err)
	}
	if s.Len() != 2 {
		t.Fatalf("Len = %d, want 2", s.Len())
	}
	if err := s.Delete([]byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete([]byte("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second Delete: %v", err)
	}
	if _, err := s.Get([]byte("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestRandomAgainstMap runs random operations against the store and a map,
// checking every result, then checks the region.
func TestRandomAgainstMap(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	s := newStore(t, &Options{Size: 4 << 20})
	model := map[string][]byte{}
	for i := range 20000 {
		k := []byte(fmt.Sprintf("k%d", rng.IntN(500)))
		switch op := rng.IntN(10); {
		case op < 5:
			v := bytes.Repeat([]byte{byte(i)}, rng.IntN(300))
			if err := s.Put(k, v); err != nil {
				t.Fatalf("op %d Put: %v", i, err)
			}
			model[string(k)] = v
		case op < 7:
			err := s.Delete(k)
			_, had := model[string(k)]
			if had != (err == nil) || (!had && !errors.Is(err, ErrNotFound)) {
				t.Fatalf("op %d Delete(%s): %v, model had it: %v", i, k, err, had)
			}
			delete(model, string(k))
		case op < 8:
			cur, had := model[string(k)]
			var old []byte
			if had && rng.IntN(2) == 0 {
				old = cur
			} else if rng.IntN(2) == 0 {
				old = []byte("nope")
			}
			nv := []byte(fmt.Sprintf("cas%d", i))
			ok, err := s.CompareAndSwap(k, old, nv)
			want := (old == nil && !had) || (old != nil && had && bytes.Equal(old, cur))
			if err != nil || ok != want {
				t.Fatalf("op %d CAS(%s, %q): %v, %v; want %v", i, k, old, ok, err, want)
			}
			if ok {
				model[string(k)] = nv
			}
		default:
			v, err := s.Get(k)
			want, had := model[string(k)]
			if had != (err == nil) || !bytes.Equal(v, want) {
				t.Fatalf("op %d Get(%s) = %q, %v; model %q, %v", i, k, v, err, want, had)
			}
		}
	}
	if s.Len() != len(model) {
		t.Fatalf("Len %d, model %d", s.Len(), len(model))
	}
	seen := 0
	if err := s.Range(func(k, v []byte) bool {
		seen++
		if want, ok := model[string(k)]; !ok || !bytes.Equal(v, want) {
			t.Errorf("Range: %s=%q, model %q", k, v, want)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if seen != len(model) {
		t.Fatalf("Range saw %d keys, model has %d", seen, len(model))
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestCreateOpenErrors(t *testing.T) {
	name := testName(t)
	if _, err := Open(name, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Open of absent store: %v", err)
	}
	s, err := Create(name, &Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Create(name, nil); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("Create of existing store: %v", err)
	}
	for _, bad := range []string{"", "a/b", "/a/b", string(make([]byte, 300))} {
		if _, err := Create(bad, nil); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Create(%q): %v, want ErrInvalidName", bad, err)
		}
	}
}

// TestZeroAllocs pins the allocation-free paths: GetAppend into a buffer
// with room, and Put of an existing key.
func TestZeroAllocs(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	k, v := []byte("key"), bytes.Repeat([]byte("v"), 100)
	s.Put(k, v)
	buf := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(100, func() { buf, _ = s.GetAppend(buf[:0], k) }); n != 0 {
		t.Errorf("GetAppend: %v allocations per call", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.Put(k, v) }); n != 0 {
		t.Errorf("Put: %v allocations per call", n)
	}
	big := []byte("big")
	s.Put(big, bytes.Repeat([]byte("b"), 4096))
	if n := testing.AllocsPerRun(100, func() {
		if ok, err := s.Has(big); !ok || err != nil {
			t.Fatalf("Has(big) = %v, %v", ok, err)
		}
	}); n != 0 {
		t.Errorf("Has of a 4 KiB value: %v allocations per call (it must not copy the value)", n)
	}
	update := func(b *Batch) error { return b.Put(k, v) }
	if n := testing.AllocsPerRun(100, func() { s.Update(update) }); n != 0 {
		t.Errorf("Update: %v allocations per call", n)
	}
}
