package store_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/shmkv/shmkv/store"
)

// Dump writes every key as they all were at one instant, while other
// processes keep writing; Load makes a new store of it, with the dumped
// store's options unless told otherwise.
func ExampleStore_Dump() {
	name, copyName := exampleName("dump"), exampleName("dump-copy")
	s, err := store.Create(name, &store.Options{Size: 1 << 20})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Remove(name)
	defer s.Close()
	s.Put([]byte("user:42"), []byte(`{"name":"ada"}`))

	path := filepath.Join(os.TempDir(), copyName+".dump")
	defer os.Remove(path)
	f, err := os.Create(path)
	if err != nil {
		log.Fatal(err)
	}
	if err := s.Dump(f); err != nil { // a snapshot: writers go on meanwhile
		log.Fatal(err)
	}
	f.Close()

	f, err = os.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	d, err := store.NewDumpReader(f) // checks the header: format version, checksum
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(d.Header().Keys, "key from", d.Header().Name == name)
	_, err = store.Load(context.Background(), copyName, d, &store.LoadOptions{Replace: true})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Remove(copyName)

	c, _ := store.Open(copyName, nil)
	defer c.Close()
	v, _ := c.Get([]byte("user:42"))
	fmt.Printf("%s\n", v)
	// Output:
	// 1 key from true
	// {"name":"ada"}
}
