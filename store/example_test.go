package store_test

import (
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/shmkv/shmkv/store"
)

// exampleName is a store name no other run uses; the examples remove their
// store when they end.
func exampleName(what string) string { return fmt.Sprintf("shmkv-example-%s-%d", what, os.Getpid()) }

// Open a store by name, creating it the first time; other processes open
// the same name and share it.
func Example() {
	name := exampleName("sessions")
	s, err := store.OpenOrCreate(name, &store.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Remove(name)
	defer s.Close()

	if err := s.Put([]byte("user:42"), []byte(`{"name":"ada"}`)); err != nil {
		log.Fatal(err)
	}
	v, err := s.Get([]byte("user:42")) // a copy, the caller's to keep
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", v)
	// Output: {"name":"ada"}
}

// Get returns ErrNotFound for a missing key; GetAppend reuses a buffer.
func ExampleStore_Get() {
	name := exampleName("get")
	s, err := store.Create(name, &store.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Remove(name)
	defer s.Close()

	if _, err := s.Get([]byte("nobody")); errors.Is(err, store.ErrNotFound) {
		fmt.Println("not found")
	}
	s.Put([]byte("k"), []byte("value"))
	buf := make([]byte, 0, 64)
	buf, err = s.GetAppend(buf[:0], []byte("k")) // no allocation: buf has room
	fmt.Println(string(buf), err)
	// Output:
	// not found
	// value <nil>
}

// CompareAndSwap changes a value only if it is still what the caller saw;
// old == nil means "only if absent".
func ExampleStore_CompareAndSwap() {
	name := exampleName("cas")
	s, err := store.Create(name, &store.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Remove(name)
	defer s.Close()

	ok, err := s.CompareAndSwap([]byte("leader"), nil, []byte("pid 100"))
	fmt.Println(ok, err)
	ok, err = s.CompareAndSwap([]byte("leader"), nil, []byte("pid 200")) // taken
	fmt.Println(ok, err)
	ok, err = s.CompareAndSwap([]byte("leader"), []byte("pid 100"), []byte("pid 200"))
	fmt.Println(ok, err)
	// Output:
	// true <nil>
	// false <nil>
	// true <nil>
}

// Update applies many mutations under one acquisition of the writer lock,
// all or nothing even if the process dies; b.Get reads the batch's own
// writes, so a read-modify-write is atomic against every other writer.
func ExampleStore_Update() {
	name := exampleName("update")
	s, err := store.Create(name, &store.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Remove(name)
	defer s.Close()

	err = s.Update(func(b *store.Batch) error {
		v, err := b.Get([]byte("visits"))
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := b.Put([]byte("visits"), append(v, '+')); err != nil {
			return err
		}
		_, err = b.DeleteIfExists([]byte("stale")) // absent: not an error
		return err
	})
	v, _ := s.Get([]byte("visits"))
	fmt.Println(string(v), err)
	// Output: + <nil>
}

// Add keeps a counter, atomically across processes, as decimal text.
func ExampleStore_Add() {
	name := exampleName("add")
	s, err := store.Create(name, &store.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Remove(name)
	defer s.Close()

	s.Add([]byte("hits"), 40)
	n, err := s.Add([]byte("hits"), 2)
	fmt.Println(n, err)
	// Output: 42 <nil>
}

// All ranges over the store's keys and values; Prefix over those whose key
// starts with a prefix. The order is the index's, not sorted.
func ExampleStore_All() {
	name := exampleName("all")
	s, err := store.Create(name, &store.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Remove(name)
	defer s.Close()

	s.Put([]byte("user:1"), []byte("ada"))
	s.Put([]byte("job:1"), []byte("print"))
	for k, v := range s.Prefix([]byte("user:")) {
		fmt.Printf("%s=%s\n", k, v)
	}
	n := 0
	for range s.All() {
		n++
	}
	fmt.Println(n, "pairs")
	// Output:
	// user:1=ada
	// 2 pairs
}

// A full store answers ErrFull and is left as it was; the message says
// which limit was hit.
func ExampleStore_Put_full() {
	name := exampleName("full")
	s, err := store.Create(name, &store.Options{Size: 256 << 10, MaxEntries: 16})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Remove(name)
	defer s.Close()

	for i := 0; ; i++ {
		if err := s.Put([]byte(fmt.Sprint("k", i)), []byte("v")); err != nil {
			fmt.Println(errors.Is(err, store.ErrFull), s.Len())
			break
		}
	}
	// Output: true 16
}
