//go:build ignore

// Command putab (built by the putab script beside it, which supplies the
// old version of the store package under the module path
// github.com/shmkvold/shmkv) times puts of two shmkv versions and of the
// in-place map baseline in one process. Each round times one block of puts
// of each, in an order that rotates by round; it prints the median time
// per put and, for each pair, the median over rounds of the ratio within
// a round, with its quartiles.
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	newstore "github.com/shmkv/shmkv/store"
	oldstore "github.com/shmkvold/shmkv/store"
)

var nkeys = 100_000

type putter interface {
	Put(k, v []byte) error
}

func main() {
	rounds := flag.Int("rounds", 30, "rounds: each times one block of each kind of put")
	block := flag.Int("block", 100_000, "puts per timed block (a tenth more run first, untimed)")
	flag.IntVar(&nkeys, "keys", 100_000, "keys in each store, overwritten at random")
	flag.Parse()
	keys := make([][]byte, nkeys)
	for i := range keys {
		k := make([]byte, 16)
		binary.LittleEndian.PutUint64(k, uint64(i)*0x9E3779B97F4A7C15)
		binary.LittleEndian.PutUint64(k[8:], uint64(i))
		keys[i] = k
	}
	order := make([]int, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range order {
		order[i] = rng.IntN(nkeys)
	}
	v := make([]byte, 100)
	size := max(int64(nkeys)*(100+64)*2, 8<<20)
	pid := os.Getpid()
	nn, on := fmt.Sprintf("abh-new-%d", pid), fmt.Sprintf("abh-old-%d", pid)
	ns, err := newstore.Create(nn, &newstore.Options{Size: size})
	must(err)
	defer newstore.Remove(nn)
	os_, err := oldstore.Create(on, &oldstore.Options{Size: size})
	must(err)
	defer oldstore.Remove(on)
	var mu sync.RWMutex
	m := make(map[string][]byte, nkeys)
	for _, k := range keys {
		must(ns.Put(k, v))
		must(os_.Put(k, v))
		m[string(k)] = make([]byte, 100)
	}
	runtime.GC()
	pos := 0
	next := func() []byte { k := keys[order[pos&(len(order)-1)]]; pos++; return k }
	type impl struct {
		name string
		run  func(n int)
	}
	single := func(p putter) func(int) {
		return func(n int) {
			for range n {
				must(p.Put(next(), v))
			}
		}
	}
	impls := []impl{
		{"map-inplace", func(n int) {
			for range n {
				k := next()
				mu.Lock()
				if old, ok := m[string(k)]; ok && len(old) == len(v) {
					copy(old, v)
				} else {
					m[string(k)] = slices.Clone(v)
				}
				mu.Unlock()
			}
		}},
		{"old", single(os_)},
		{"new", single(ns)},
		{"old-batch", batched(os_.Update, next, v)},
		{"new-batch", batched(ns.Update, next, v)},
	}
	res := map[string][]float64{}
	for r := range *rounds {
		for j := range impls {
			im := impls[(j+r)%len(impls)]
			im.run(*block / 10) // warm
			t := time.Now()
			im.run(*block)
			res[im.name] = append(res[im.name], float64(time.Since(t).Nanoseconds())/float64(*block))
		}
	}
	med := func(x []float64) float64 { y := slices.Clone(x); slices.Sort(y); return y[len(y)/2] }
	ratio := func(a, b string) []float64 {
		var out []float64
		for i := range res[a] {
			out = append(out, res[a][i]/res[b][i])
		}
		return out
	}
	for _, im := range impls {
		fmt.Printf("%-12s %7.1f ns/op (median of %d)\n", im.name, med(res[im.name]), *rounds)
	}
	for _, p := range [][2]string{{"new", "old"}, {"new-batch", "old-batch"}, {"old", "map-inplace"}, {"new", "map-inplace"}, {"old-batch", "map-inplace"}, {"new-batch", "map-inplace"}} {
		x := ratio(p[0], p[1])
		y := slices.Clone(x)
		slices.Sort(y)
		fmt.Printf("%-10s / %-12s %.3f  (q1 %.3f q3 %.3f)\n", p[0], p[1], med(x), y[len(y)/4], y[3*len(y)/4])
	}
}

// batched times puts in batches of 100, through a version's Update.
func batched[B putter](update func(func(B) error) error, next func() []byte, v []byte) func(int) {
	return func(n int) {
		for i := 0; i < n; i += 100 {
			must(update(func(b B) error {
				for range 100 {
					if err := b.Put(next(), v); err != nil {
						return err
					}
				}
				return nil
			}))
		}
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
