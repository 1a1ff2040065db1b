// Command putprofile runs batched overwrites against a scratch store, for
// counting a put's instructions under callgrind, which (unlike cycles on
// this VM) gives the same count every run:
//
//	go build -o /tmp/putprofile ./scripts/putprofile
//	valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.0 /tmp/putprofile -batches 0
//	valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.1 /tmp/putprofile -batches 1000
//
// The difference of the two "I refs" totals over 100,000 is the cost of one
// batched put (with -single, of one Put, lock included) of a 16-byte key and a 100-byte value, 1,024 keys in the
// store (so the count is of work, not of cache misses); callgrind_annotate
// /tmp/cg.1 splits it by function. The store is removed on exit. With
// -impl map or -impl map-inplace it counts the benchmarks' baselines
// (store/bench_test.go) the same way, one lock per put; run those with
// GOMAXPROCS=1, or valgrind crashes in the concurrent garbage collector.
package main

import (
	"bytes"
	"encoding/binary"
	"flag"
	"fmt"
	"os"
	"sync"

	"github.com/shmkv/shmkv/store"
)

func main() {
	batches := flag.Int("batches", 1000, "Update calls, each of 100 puts")
	single := flag.Bool("single", false, "Put 100 keys one at a time per \"batch\" instead of one Update")
	nkeys := flag.Int("keys", 1024, "keys in the store, a power of two; 131072 makes most puts miss the cache, as the benchmarks' 100,000 do")
	impl := flag.String("impl", "shmkv", "shmkv, or the benchmarks' baselines: map (a fresh copy per put) or map-inplace")
	flag.Parse()
	var err error
	switch *impl {
	case "shmkv":
		err = run(*batches, *single, *nkeys)
	case "map", "map-inplace":
		runMap(*batches, *impl == "map-inplace", *nkeys)
	default:
		err = fmt.Errorf("-impl %q: want shmkv, map or map-inplace", *impl)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "putprofile:", err)
		os.Exit(1)
	}
}

func run(batches int, single bool, nkeys int) error {
	name := fmt.Sprintf("shmkv-putprofile-%d", os.Getpid())
	s, err := store.Create(name, &store.Options{Size: int64(nkeys)*164*2 + 8<<20})
	if err != nil {
		return err
	}
	defer store.Remove(name)
	defer s.Close()
	v := make([]byte, 100)
	keys := make([][]byte, nkeys)
	for i := range keys {
		keys[i] = make([]byte, 16)
		binary.LittleEndian.PutUint64(keys[i], uint64(i)*0x9E3779B97F4A7C15)
		if err := s.Put(keys[i], v); err != nil {
			return err
		}
	}
	for r := range batches {
		if single {
			for j := range 100 {
				if err := s.Put(keys[(r*100+j)*0x9E3779B1&(nkeys-1)], v); err != nil {
					return err
				}
			}
			continue
		}
		err := s.Update(func(b *store.Batch) error {
			for j := range 100 {
				if err := b.Put(keys[(r*100+j)*0x9E3779B1&(nkeys-1)], v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func runMap(batches int, inPlace bool, nkeys int) {
	var mu sync.RWMutex
	m := map[string][]byte{}
	v := make([]byte, 100)
	keys := make([][]byte, nkeys)
	for i := range keys {
		keys[i] = make([]byte, 16)
		binary.LittleEndian.PutUint64(keys[i], uint64(i)*0x9E3779B97F4A7C15)
		m[string(keys[i])] = bytes.Clone(v)
	}
	for r := range batches {
		for j := range 100 {
			k := keys[(r*100+j)*0x9E3779B1&(nkeys-1)]
			mu.Lock()
			if old, ok := m[string(k)]; inPlace && ok && len(old) == len(v) {
				copy(old, v)
			} else {
				m[string(k)] = bytes.Clone(v)
			}
			mu.Unlock()
		}
	}
}
