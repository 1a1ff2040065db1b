package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestBatchSeesItsOwnWrites(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	s.Put([]byte("gone"), []byte("x"))
	s.Put([]byte("counter"), []byte("1"))
	err := s.Update(func(b *Batch) error {
		for _, step := range []error{
			b.Put([]byte("a"), []byte("1")),
			b.Put([]byte("a"), []byte("2")), // overwrite of a planned insert
			b.Delete([]byte("gone")),
			b.Put([]byte("gone"), []byte("back")), // re-insert in the vacated slot
			b.Put([]byte("tmp"), []byte("t")),
			b.Delete([]byte("tmp")), // insert then delete: nothing
		} {
			if step != nil {
				return step
			}
		}
		if err := b.Delete([]byte("tmp")); !errors.Is(err, ErrNotFound) {
			return fmt.Errorf("second delete of tmp: %v", err)
		}
		v, err := b.Get([]byte("counter"))
		if err != nil {
			return err
		}
		if ok, err := b.CompareAndSwap([]byte("counter"), v, []byte("2")); !ok || err != nil {
			return fmt.Errorf("CAS in batch: %v %v", ok, err)
		}
		if v, _ := b.Get([]byte("a")); string(v) != "2" {
			return fmt.Errorf("batch Get of its own put: %q", v)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "2", "gone": "back", "counter": "2"}
	if got := snapshot(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after the batch: %v, want %v", got, want)
	}
}

func TestBatchAllOrNothing(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	s.Put([]byte("k"), []byte("old"))
	boom := errors.New("boom")
	err := s.Update(func(b *Batch) error {
		b.Put([]byte("k"), []byte("new"))
		b.Put([]byte("other"), []byte("x"))
		b.Delete([]byte("k"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update returned %v", err)
	}
	if got := snapshot(t, s); fmt.Sprint(got) != "map[k:old]" {
		t.Fatalf("a failed batch changed the store: %v", got)
	}
	// Too many mutations for the journal: ErrTooLarge, nothing applied.
	err = s.Update(func(b *Batch) error {
		for i := 0; ; i++ {
			if err := b.Put([]byte(fmt.Sprint(i)), []byte("v")); err != nil {
				return err
			}
		}
	})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized batch: %v", err)
	}
	if s.Len() != 1 {
		t.Fatalf("oversized batch left %d keys", s.Len())
	}
}

// TestRandomBatchesAgainstMap applies random batches to the store and a
// model and compares, then checks the region.
func TestRandomBatchesAgainstMap(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 3))
	s := newStore(t, &Options{Size: 2 << 20})
	model := map[string][]byte{}
	for round := range 500 {
		next := map[string][]byte{}
		for k, v := range model {
			next[k] = v
		}
		abort := rng.IntN(5) == 0
		err := s.Update(func(b *Batch) error {
			for range 1 + rng.IntN(8) {
				k := fmt.Sprintf("k%d", rng.IntN(40))
				if rng.IntN(3) == 0 {
					err := b.Delete([]byte(k))
					if _, had := next[k]; had != (err == nil) {
						return fmt.Errorf("round %d delete %s: %v, model had it %v", round, k, err, had)
					}
					delete(next, k)
				} else {
					v := bytes.Repeat([]byte{byte(round)}, rng.IntN(200))
					if err := b.Put([]byte(k), v); err != nil {
						return err
					}
					next[k] = v
				}
			}
			if abort {
				return errors.New("abort")
			}
			return nil
		})
		if abort {
			if err == nil {
				t.Fatal("aborted batch returned nil")
			}
		} else if err != nil {
			t.Fatal(err)
		} else {
			model = next
		}
		if got := snapshot(t, s); len(got) != len(model) {
			t.Fatalf("round %d: %d keys, model %d", round, len(got), len(model))
		}
		for k, v := range model {
			if got, err := s.Get([]byte(k)); err != nil || !bytes.Equal(got, v) {
				t.Fatalf("round %d: %s = %q, %v; model %q", round, k, got, err, v)
			}
		}
		if round%50 == 0 {
			if err := s.Check(); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
	}
}

// TestBatchFilledToTheLastUndoRecord builds a batch whose budget is used to
// the last undo record: inserts that take a block from a free list (so
// FreeBytes changes before the commit), then one delete of a key that had
// probed exactly as far as the remaining budget allows. The batch must
// commit and leave the store writable. (The FreeBytes record written at the
// commit was once budgeted by nobody: apply then overflowed the log after
// publishing, and recovery refused the journal for good.)
func TestBatchFilledToTheLastUndoRecord(t *testing.T) {
	s := newStore(t, &Options{Size: 256 << 10})
	g := s.geo
	const home = 5
	var keys [][]byte
	for i := 0; len(keys) < 910; i++ {
		k := []byte(fmt.Sprintf("k%d", i))
		if s.cur().home(hashKey(k)) == home {
			keys = append(keys, k)
		}
	}
	cluster, fresh := keys[:900], keys[900:907]
	for _, k := range cluster {
		if err := s.Put(k, []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	val := make([]byte, 40)
	x := bytes.Repeat([]byte("x"), len(fresh[0]))
	if err := s.Put(x, val); err != nil { // leaves a free block for the batch to pop
		t.Fatal(err)
	}
	if err := s.Put([]byte("pin"), []byte("keeps x's block from the never-used space")); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(x); err != nil {
		t.Fatal(err)
	}
	var maxProbed uint64
	for _, k := range cluster {
		p, err := s.find(k, hashKey(k), nil)
		if err != nil {
			t.Fatal(err)
		}
		maxProbed = max(maxProbed, p.probed)
	}
	var deleted []byte
	err := s.Update(func(b *Batch) error {
		_, freePost := undoBudget(mutDelete, 0)
		tx := &s.tx
		left := uint64(0)
		for i, k := range fresh {
			v := []byte("w")
			if i == 0 {
				v = val
			}
			if err := b.Put(k, v); err != nil {
				return err
			}
			if left = uint64(g.MaxUndo) - uint64(tx.nUndo) - tx.post - freePost; left <= maxProbed {
				break
			}
		}
		if tx.freeDelta == 0 {
			return errors.New("setup: the batch took no block from a free list")
		}
		for _, k := range cluster {
			p, err := s.find(k, hashKey(k), nil)
			if err != nil {
				return err
			}
			if p.probed == left {
				deleted = k
				if err := b.Delete(k); err != nil {
					return err
				}
				// Recovery must accept this journal if the writer dies right
				// after its commit: the commit writes no record (its
				// counters go into the journal header), and the replay must
				// fit what is left.
				its, err := s.loadIntents(tx.nIntents)
				if err != nil {
					return err
				}
				if c := uint64(tx.nUndo); c+s.replayBudget(its) > uint64(g.MaxUndo) {
					return fmt.Errorf("recovery would refuse this journal: %d records at the commit and %d to replay, capacity %d",
						c, s.replayBudget(its), g.MaxUndo)
				}
				return nil
			}
		}
		return fmt.Errorf("setup: no key of the cluster probed exactly %d buckets", left)
	})
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if ok, err := s.Has(deleted); ok || err != nil {
		t.Fatalf("Has(deleted key) = %v, %v", ok, err)
	}
	if err := s.Put([]byte("after"), []byte("v")); err != nil {
		t.Fatalf("Put after the batch: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
