package tests

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// growthValue is the value of key i in the growth test: its number, then
// bytes that depend on it, 160 bytes in all.
func growthValue(buf []byte, i int) []byte {
	buf = fmt.Appendf(buf[:0], "%08d:", i)
	for len(buf) < 160 {
		buf = append(buf, byte('a'+(i+len(buf))%26))
	}
	return buf
}

func growthKey(buf []byte, i int) []byte { return fmt.Appendf(buf[:0], "g%08d", i) }

// TestGrowthUnderReaders starts a store at 1 MiB whose first index table
// holds about 1,000 keys, and puts 1,000,000 keys into it (SHMKV_GROWTH_KEYS
// sets another count), so that it grows past 256 MiB and its index migrates
// ten times. A reader process, which opened the store at 1 MiB and never
// reopens it, reads the count of keys written so far and checks that every
// key below it is present with its value, pass after pass, throughout.
func TestGrowthUnderReaders(t *testing.T) {
	keys := 1_000_000
	if v := os.Getenv("SHMKV_GROWTH_KEYS"); v != "" {
		keys, _ = strconv.Atoi(v)
	}
	if testing.Short() {
		keys = 100_000
	}
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20, MaxSize: 64 << 30})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if st := s.Stats(); st.IndexCapacity > 1100 {
		t.Fatalf("first index table holds %d keys, want about 1,000", st.IndexCapacity)
	}
	r := spawn(t, "growth-reader", []string{name})
	r.Expect(t, "ready", 10*time.Second)
	start := time.Now()
	var kb, vb, nb []byte
	for i := range keys {
		if err := s.Put(growthKey(kb, i), growthValue(vb, i)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
		if (i+1)%5000 == 0 || i+1 == keys {
			nb = binary.LittleEndian.AppendUint64(nb[:0], uint64(i+1))
			if err := s.Put([]byte("n"), nb); err != nil {
				t.Fatal(err)
			}
		}
	}
	elapsed := time.Since(start)
	if err := s.Put([]byte("done"), nil); err != nil {
		t.Fatal(err)
	}
	line := r.Expect(t, "passes", 10*time.Minute)
	if err := r.Wait(t, time.Minute); err != nil {
		t.Fatalf("reader: %v", err)
	}
	st := s.Stats()
	t.Logf("%d keys in %v; store %d MiB after %d growths, index of %d entries after %d migrations; reader: %s",
		keys, elapsed.Round(time.Millisecond), st.Size>>20, st.Growths, st.IndexCapacity, st.IndexMigrations, line)
	if keys >= 1_000_000 && (st.Size < 256<<20 || st.IndexMigrations < 8) {
		t.Fatalf("grew to %d bytes with %d index migrations; want at least 256 MiB and 8", st.Size, st.IndexMigrations)
	}
	if st.Entries != keys+2 {
		t.Fatalf("%d entries, want %d", st.Entries, keys+2)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// growthReader is the reader of TestGrowthUnderReaders: it checks every
// key below the published count, pass after pass, until "done" is there
// and a whole pass has followed it, then prints "passes N keys M".
func growthReader(name string) error {
	s, err := store.Open(name, &store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Println("ready")
	var kb, vb, want, nb []byte
	passes, checked := 0, 0
	for last := false; ; passes++ {
		done, err := s.Has([]byte("done"))
		if err != nil {
			return err
		}
		nb, err = s.GetAppend(nb[:0], []byte("n"))
		n := 0
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		case len(nb) == 8:
			n = int(binary.LittleEndian.Uint64(nb))
		default:
			return fmt.Errorf("count of %d bytes", len(nb))
		}
		for i := range n {
			kb = growthKey(kb, i)
			vb, err = s.GetAppend(vb[:0], kb)
			if err != nil {
				return fmt.Errorf("pass %d: key %d of %d written: %w", passes, i, n, err)
			}
			if want = growthValue(want, i); !bytes.Equal(vb, want) {
				return fmt.Errorf("pass %d: key %d: %q, want %q", passes, i, vb, want)
			}
			checked++
		}
		if last {
			break
		}
		last = done
	}
	fmt.Printf("passes %d keys %d\n", passes, checked)
	return nil
}
