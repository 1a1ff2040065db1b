package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAddCounts(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	k := []byte("hits")
	for i, want := range []int64{5, 2, -10} {
		n, err := s.Add(k, []int64{5, -3, -12}[i])
		if err != nil || n != want {
			t.Fatalf("Add #%d = %d, %v; want %d", i, n, err, want)
		}
	}
	if v, err := s.Get(k); err != nil || string(v) != "-10" {
		t.Fatalf("the counter's value is %q, %v; want the text -10", v, err)
	}
	s.Put([]byte("text"), []byte("not a number"))
	if _, err := s.Add([]byte("text"), 1); !errors.Is(err, ErrNotCounter) || !strings.Contains(err.Error(), `"text"`) {
		t.Fatalf("Add on a non-counter: %v; want ErrNotCounter naming the key", err)
	}
	s.Put([]byte("max"), []byte(fmt.Sprint(int64(math.MaxInt64))))
	if _, err := s.Add([]byte("max"), 1); !errors.Is(err, ErrNotCounter) {
		t.Fatalf("Add past MaxInt64: %v; want ErrNotCounter (overflow)", err)
	}
	err := s.Update(func(b *Batch) error {
		n, err := b.Add([]byte("b"), 7)
		if err != nil || n != 7 {
			return fmt.Errorf("first Batch.Add = %d, %v", n, err)
		}
		if n, err = b.Add([]byte("b"), 7); err != nil || n != 14 {
			return fmt.Errorf("second Batch.Add = %d, %v (must see the first)", n, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestStoreMethodInsideUpdate: calling the Store's own methods from fn
// fails at once with ErrInUpdate (it used to wait forever for the writer
// lock its own goroutine held), while other goroutines still wait.
func TestStoreMethodInsideUpdate(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	done := make(chan error, 1)
	go func() {
		done <- s.Update(func(b *Batch) error {
			if err := s.Put([]byte("k"), []byte("v")); !errors.Is(err, ErrInUpdate) {
				return fmt.Errorf("Put inside Update: %v, want ErrInUpdate", err)
			}
			if _, err := s.Add([]byte("n"), 1); !errors.Is(err, ErrInUpdate) {
				return fmt.Errorf("Add inside Update: %v, want ErrInUpdate", err)
			}
			if err := s.Update(func(*Batch) error { return nil }); !errors.Is(err, ErrInUpdate) {
				return fmt.Errorf("Update inside Update: %v, want ErrInUpdate", err)
			}
			return b.Put([]byte("k"), []byte("from the batch"))
		})
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a Store method called inside Update deadlocked")
	}
	// Another goroutine's write during an Update waits, then succeeds.
	release := make(chan struct{})
	go s.Update(func(*Batch) error { <-release; return nil })
	time.Sleep(20 * time.Millisecond)
	go func() { time.Sleep(50 * time.Millisecond); close(release) }()
	if err := s.Put([]byte("other"), []byte("goroutine")); err != nil {
		t.Fatalf("Put from another goroutine during an Update: %v", err)
	}
}

// TestWriteDeadline: a write behind a writer that does not let go fails
// at its deadline with ErrLockTimeout, wrapping the context's error; with
// no deadline it waits. (Across processes, where the message names the
// holder's pid: tests.TestWriteDeadlineNamesHolder.)
func TestWriteDeadline(t *testing.T) {
	name := testName(t)
	holder, err := Create(name, &Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	other, err := Open(name, &Options{WriteTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	release, held := make(chan struct{}), make(chan struct{})
	go holder.Update(func(*Batch) error { close(held); <-release; return nil })
	<-held
	start := time.Now()
	err = other.Put([]byte("k"), []byte("v"))
	if !errors.Is(err, ErrLockTimeout) || !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("Put behind a live holder with WriteTimeout: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("WriteTimeout of 50ms waited %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(30 * time.Millisecond); cancel() }()
	if err := other.UpdateContext(ctx, func(*Batch) error { return nil }); !errors.Is(err, context.Canceled) || !errors.Is(err, ErrLockTimeout) {
		t.Fatalf("UpdateContext cancelled while waiting: %v", err)
	}
	close(release)
	if err := other.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatalf("Put once the holder let go: %v", err)
	}
}

func TestIterators(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	want := map[string]string{}
	for i := range 50 {
		k := fmt.Sprintf("%s%02d", []string{"a/", "b/"}[i%2], i)
		want[k] = strings.Repeat("v", i)
		s.Put([]byte(k), []byte(want[k]))
	}
	got := map[string]string{}
	for k, v := range s.All() {
		got[string(k)] = string(v)
	}
	if len(got) != len(want) {
		t.Fatalf("All yielded %d pairs, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("All: %s = %q, want %q", k, got[k], v)
		}
	}
	var keys []string
	for k, v := range s.Prefix([]byte("a/")) {
		if !strings.HasPrefix(string(k), "a/") || string(v) != want[string(k)] {
			t.Fatalf("Prefix(a/) yielded %s=%q", k, v)
		}
		keys = append(keys, string(k))
	}
	if len(keys) != 25 {
		t.Fatalf("Prefix(a/) yielded %d keys, want 25", len(keys))
	}
	n := 0
	for k := range s.Keys() {
		if _, ok := want[string(k)]; !ok {
			t.Fatalf("Keys yielded %q", k)
		}
		n++
		if n == 10 {
			break // stopping early is fine
		}
	}
	stop := errors.New("enough")
	seen := 0
	if err := s.ForEach(func(k, v []byte) error {
		if seen++; seen == 3 {
			return stop
		}
		return nil
	}); err != stop || seen != 3 {
		t.Fatalf("ForEach = %v after %d pairs; want fn's error after 3", err, seen)
	}
	sorted := slices.Sorted(func(yield func(string) bool) {
		for k := range s.Keys() {
			if !yield(string(k)) {
				return
			}
		}
	})
	if len(sorted) != 50 {
		t.Fatalf("%d keys", len(sorted))
	}
}

func TestBatchErgonomics(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	s.Put([]byte("present"), []byte("v"))
	err := s.Update(func(b *Batch) error {
		if ok, err := b.DeleteIfExists([]byte("stale")); ok || err != nil {
			return fmt.Errorf("DeleteIfExists of an absent key = %v, %v", ok, err)
		}
		if ok, err := b.DeleteIfExists([]byte("present")); !ok || err != nil {
			return fmt.Errorf("DeleteIfExists of a present key = %v, %v", ok, err)
		}
		if ok, err := b.Has([]byte("present")); ok || err != nil {
			return fmt.Errorf("Has after the batch deleted it = %v, %v", ok, err)
		}
		if err := b.Put([]byte("new"), []byte("x")); err != nil {
			return err
		}
		if ok, err := b.Has([]byte("new")); !ok || err != nil {
			return fmt.Errorf("Has of the batch's own put = %v, %v", ok, err)
		}
		err := b.Delete([]byte("missing\x00key"))
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"missing\x00key"`) {
			return fmt.Errorf("Delete of a missing key: %v; want ErrNotFound naming the key, escaped", err)
		}
		long := bytes.Repeat([]byte("k"), 70000)
		if err := b.Put(long, nil); !errors.Is(err, ErrTooLarge) || len(err.Error()) > 300 || !strings.Contains(err.Error(), "70000 bytes") {
			return fmt.Errorf("Put of a 70,000-byte key: %.300v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s.DeleteIfExists([]byte("nothing")); ok || err != nil {
		t.Fatalf("Store.DeleteIfExists of an absent key = %v, %v", ok, err)
	}
	if v, err := s.Get([]byte("new")); err != nil || string(v) != "x" {
		t.Fatalf("new = %q, %v", v, err)
	}
}

// TestErrorNamesOpAndStore pins store.Error: a failed operation says what
// failed and on which store, and errors.Is still sees its cause; a Get
// miss is ErrNotFound itself, and an Update returns fn's error as it is.
func TestErrorNamesOpAndStore(t *testing.T) {
	s := newStore(t, &Options{Size: 1 << 20})
	name := s.Name()
	wantErr := func(what string, err error, op string, cause error) {
		t.Helper()
		var se *Error
		if !errors.As(err, &se) || se.Op != op || se.Name != name || !errors.Is(err, cause) {
			t.Errorf("%s: %v (%T); want a *store.Error of op %q on %q wrapping %v", what, err, err, op, name, cause)
		}
	}
	if _, err := s.Get([]byte("absent")); err != ErrNotFound {
		t.Errorf("Get of an absent key: %v; want ErrNotFound itself", err)
	}
	wantErr("Delete", s.Delete([]byte("absent")), "delete", ErrNotFound)
	wantErr("Put", s.Put(make([]byte, MaxKeySize+1), nil), "put", ErrTooLarge)
	_, err := Create(name, nil)
	wantErr("Create", err, "create", fs.ErrExist)
	mine := errors.New("fn's own")
	if err := s.Update(func(*Batch) error { return mine }); err != mine {
		t.Errorf("Update: %v; want fn's error as it is", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wantErr("Get after Close", func() error { _, err := s.Get([]byte("k")); return err }(), "get", ErrClosed)
	wantErr("Close again", s.Close(), "close", ErrClosed)
	_, err = Open(name+"-absent", nil)
	var se *Error
	if !errors.As(err, &se) || se.Op != "open" || se.Name != name+"-absent" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of an absent store: %v", err)
	}
}
