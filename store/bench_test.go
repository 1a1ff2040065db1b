package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/shmkv/shmkv/internal/units"
)

// The workload of the performance targets: 100,000 keys of 16 bytes,
// values of 100 bytes (and 1 KiB), uniform random keys. The baseline is a
// map[string][]byte behind a sync.RWMutex with the same semantics: a get
// copies the value out, a put copies it in.

const benchKeys = 100_000

func benchKey(i int) []byte {
	k := make([]byte, 16)
	binary.LittleEndian.PutUint64(k, uint64(i)*0x9E3779B97F4A7C15)
	binary.LittleEndian.PutUint64(k[8:], uint64(i))
	return k
}

type mapBaseline struct {
	mu sync.RWMutex
	m  map[string][]byte
}

func (b *mapBaseline) get(dst, k []byte) ([]byte, bool) {
	b.mu.RLock()
	v, ok := b.m[string(k)]
	dst = append(dst, v...)
	b.mu.RUnlock()
	return dst, ok
}

// put is the plain way to copy a value in: a fresh copy replaces the old
// one, as shmkv's copy-on-write put does.
func (b *mapBaseline) put(k, v []byte) {
	b.mu.Lock()
	b.m[string(k)] = bytes.Clone(v)
	b.mu.Unlock()
}

// putInPlace is the fastest way: an overwrite of the same length copies
// over the old value, allocating nothing. It is the harder baseline; it is
// only safe because get copies out under the lock.
func (b *mapBaseline) putInPlace(k, v []byte) {
	b.mu.Lock()
	if old, ok := b.m[string(k)]; ok && len(old) == len(v) {
		copy(old, v)
	} else {
		b.m[string(k)] = bytes.Clone(v)
	}
	b.mu.Unlock()
}

// settle ends a benchmark's setup: it finishes the garbage collection
// that filling 100,000 keys started, so that no GC worker runs beside the
// timed loop (neither side allocates in it), then resets the timer.
func settle(b *testing.B) {
	runtime.GC()
	b.ResetTimer()
}

func keysAndOrder(b *testing.B) ([][]byte, []int) {
	keys := make([][]byte, benchKeys)
	for i := range keys {
		keys[i] = benchKey(i)
	}
	order := make([]int, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range order {
		order[i] = rng.IntN(benchKeys)
	}
	return keys, order
}

func benchStore(b *testing.B, valSize int) (*Store, [][]byte, []int) {
	return benchStoreWith(b, valSize, &Options{Size: int64(benchKeys) * int64(valSize+64) * 2})
}

// benchStoreWith is benchStore for a store created with opts: nil for the
// defaults, which start at 8 MiB and grow, index included.
func benchStoreWith(b *testing.B, valSize int, opts *Options) (*Store, [][]byte, []int) {
	s := newStore(b, opts)
	keys, order := keysAndOrder(b)
	v := make([]byte, valSize)
	for _, k := range keys {
		if err := s.Put(k, v); err != nil {
			b.Fatal(err)
		}
	}
	return s, keys, order
}

func benchMap(valSize int) (*mapBaseline, [][]byte, []int) {
	m := &mapBaseline{m: make(map[string][]byte, benchKeys)}
	keys, order := keysAndOrder(nil)
	for _, k := range keys {
		m.put(k, make([]byte, valSize))
	}
	return m, keys, order
}

// The ratio benchmarks name the implementation in a key=value part
// (impl=map, impl=shmkv), so benchstat can set them side by side with the
// baseline as the base column: scripts/bench-ratios does that, over runs
// that interleave the two.

func BenchmarkGetHit(b *testing.B) {
	for _, vs := range []int{100, 1024} {
		b.Run(fmt.Sprintf("val=%dB/impl=map", vs), func(b *testing.B) {
			m, keys, order := benchMap(vs)
			buf := make([]byte, 0, vs)
			b.ReportAllocs()
			settle(b)
			for i := 0; i < b.N; i++ {
				buf, _ = m.get(buf[:0], keys[order[i&(len(order)-1)]])
			}
		})
		for _, impl := range []string{"shmkv", "shmkv-verify", "shmkv-default"} {
			b.Run(fmt.Sprintf("val=%dB/impl=%s", vs, impl), func(b *testing.B) {
				opts := &Options{Size: int64(benchKeys) * int64(vs+64) * 2}
				if impl == "shmkv-default" {
					opts = nil // the defaults: a store that grew to hold the keys
				}
				s, keys, order := benchStoreWith(b, vs, opts)
				s.verify = impl == "shmkv-verify" // Options.VerifyReads
				buf := make([]byte, 0, vs)
				b.ReportAllocs()
				settle(b)
				for i := 0; i < b.N; i++ {
					var err error
					if buf, err = s.GetAppend(buf[:0], keys[order[i&(len(order)-1)]]); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkGetMiss(b *testing.B) {
	miss := make([][]byte, 1024)
	for i := range miss {
		miss[i] = benchKey(benchKeys + 1 + i)
	}
	b.Run("impl=map", func(b *testing.B) {
		m, _, order := benchMap(100)
		b.ReportAllocs()
		settle(b)
		for i := 0; i < b.N; i++ {
			m.get(nil, miss[order[i&(len(order)-1)]&1023])
		}
	})
	b.Run("impl=shmkv", func(b *testing.B) {
		s, _, order := benchStore(b, 100)
		b.ReportAllocs()
		settle(b)
		for i := 0; i < b.N; i++ {
			if _, err := s.GetAppend(nil, miss[order[i&(len(order)-1)]&1023]); err != ErrNotFound {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=shmkv-default", func(b *testing.B) {
		s, _, order := benchStoreWith(b, 100, nil)
		b.ReportAllocs()
		settle(b)
		for i := 0; i < b.N; i++ {
			if _, err := s.GetAppend(nil, miss[order[i&(len(order)-1)]&1023]); err != ErrNotFound {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkPut overwrites 100-byte values: the two baselines (a fresh copy
// per put, and a copy over the old value), shmkv's Put (the writer lock
// included), and shmkv's Update with 100 puts per batch, reported per
// mutation.
func BenchmarkPut(b *testing.B) {
	v := make([]byte, 100)
	for _, base := range []struct {
		impl string
		put  func(m *mapBaseline, k, v []byte)
	}{{"map", (*mapBaseline).put}, {"map-inplace", (*mapBaseline).putInPlace}} {
		b.Run("impl="+base.impl, func(b *testing.B) {
			m, keys, order := benchMap(100)
			b.ReportAllocs()
			settle(b)
			for i := 0; i < b.N; i++ {
				base.put(m, keys[order[i&(len(order)-1)]], v)
			}
		})
	}
	b.Run("impl=shmkv", func(b *testing.B) {
		s, keys, order := benchStore(b, 100)
		b.ReportAllocs()
		settle(b)
		for i := 0; i < b.N; i++ {
			if err := s.Put(keys[order[i&(len(order)-1)]], v); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("impl=shmkv-batch100", func(b *testing.B) {
		s, keys, order := benchStore(b, 100)
		b.ReportAllocs()
		settle(b)
		for i := 0; i < b.N; i += 100 {
			err := s.Update(func(bt *Batch) error {
				for j := i; j < i+100 && j < b.N; j++ {
					if err := bt.Put(keys[order[j&(len(order)-1)]], v); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkSpace fills a store to 80% of its capacity with the benchmark
// workload (16-byte keys, 100-byte values; MaxEntries and Size chosen for
// it) and reports the bytes the region spends per entry beyond key and
// value: block header and padding plus the index's share.
func BenchmarkSpace(b *testing.B) {
	const capacity = 125_000 // 100,000 keys is 80% of it
	s := newStore(b, &Options{Size: 20 << 20, MaxEntries: capacity})
	v := make([]byte, 100)
	for i := range benchKeys {
		if err := s.Put(benchKey(i), v); err != nil {
			b.Fatal(err)
		}
	}
	st := s.Stats()
	b.ReportMetric(st.OverheadPerEntry, "B-overhead/entry")
	b.ReportMetric(100*float64(st.Entries)/float64(st.MaxEntries), "%-index-fill")
	b.ReportMetric(100*st.Fill, "%-heap-fill")
	for range b.N {
		s.Stats()
	}
}

// BenchmarkPutDrift measures put latency when value sizes drift and churn:
// 2,000 keys overwritten at random with values whose size swings between
// 100 B and 4 KiB and back every 80,000 puts, with noise (each put within
// 10% of the current size). With room=ample the heap is about five times the most
// live data, so merging freed blocks is all it takes; with room=tight the
// most live data is about 93% of the heap, so puts have to compact. It
// reports the latency of one put at the median, the 99th percentile and
// the maximum, and the most bytes one put moved.
func BenchmarkPutDrift(b *testing.B) {
	const keys, maxVal = 2000, 4096
	for _, room := range []struct {
		name string
		heap int64
	}{{"ample", 5 * keys * maxVal}, {"tight", keys * maxVal * 100 / 120}} {
		b.Run("room="+room.name, func(b *testing.B) {
			s := newStore(b, &Options{Size: room.heap + 1<<20, MaxEntries: 4 * keys})
			rng := rand.New(rand.NewPCG(3, 4))
			val := make([]byte, maxVal)
			center := 100
			size := func() int {
				return min(max(center+rng.IntN(center/5+1)-center/10, 1), maxVal-64)
			}
			k := make([]byte, 8)
			for i := range keys {
				binary.LittleEndian.PutUint64(k, uint64(i))
				if err := s.Put(k, val[:size()]); err != nil {
					b.Fatal(err)
				}
			}
			lat := make([]time.Duration, b.N)
			var maxMoved uint64
			moved0, compactions0 := s.hdr.Alloc.Moved.Load(), s.hdr.Alloc.Compactions.Load()
			settle(b)
			for i := range b.N {
				if i%1000 == 0 {
					phase := i / 1000 % 80 // 40 steps up, 40 down
					center = 100 + (maxVal-500)*min(phase, 80-phase)/40 + rng.IntN(201) - 100
				}
				binary.LittleEndian.PutUint64(k, uint64(rng.IntN(keys)))
				v := val[:size()]
				m := s.hdr.Alloc.Moved.Load()
				t0 := time.Now()
				if err := s.Put(k, v); err != nil {
					b.Fatal(err)
				}
				lat[i] = time.Since(t0)
				maxMoved = max(maxMoved, s.hdr.Alloc.Moved.Load()-m)
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "ns-p50")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "ns-p99")
			b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "ns-max")
			b.ReportMetric(float64(maxMoved), "B-moved-max/put")
			b.ReportMetric(float64(s.hdr.Alloc.Moved.Load()-moved0)/float64(b.N), "B-moved/put")
			b.ReportMetric(float64(s.hdr.Alloc.Compactions.Load()-compactions0), "compactions")
		})
	}
}

// BenchmarkPutInCache overwrites 100 keys whose entries and index stay in
// the cache: the write path's own work, lock included, without the memory
// latency that dominates BenchmarkPut.
func BenchmarkPutInCache(b *testing.B) {
	s := newStore(b, &Options{Size: 8 << 20, MaxEntries: 10000})
	keys := make([][]byte, 100)
	v := make([]byte, 100)
	for i := range keys {
		keys[i] = []byte(fmt.Sprintf("key-%012d", i))
		if err := s.Put(keys[i], v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	settle(b)
	for i := 0; i < b.N; i++ {
		if err := s.Put(keys[i%len(keys)], v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPutDuringGrowth puts keys (16 B, values of 100 B) into a store
// that starts at 1 MiB, until it has grown to 1 GiB (SHMKV_GROWTH_TO sets
// another size), and reports each put's latency: p50, p99, p99.9 and the
// worst, with how many growth steps and index migrations the puts made;
// then the same number of puts (6.3 million, what 1 GiB holds) into a
// store created at 1 GiB. Run it with -benchtime 1x: one pass is the
// measurement.
func BenchmarkPutDuringGrowth(b *testing.B) {
	to := int64(1 << 30)
	if v := os.Getenv("SHMKV_GROWTH_TO"); v != "" {
		n, err := units.ParseSize(v)
		if err != nil {
			b.Fatal(err)
		}
		to = n
	}
	for _, impl := range []string{"growing", "fixed"} {
		b.Run("impl="+impl, func(b *testing.B) { putDuringGrowth(b, to, impl == "fixed") })
	}
}

// putDuringGrowth is BenchmarkPutDuringGrowth's body; with fixed, the same
// puts into a store created at the final size, the baseline (its pages
// are first touched by the puts too, as the growing store's are).
func putDuringGrowth(b *testing.B, to int64, fixed bool) {
	for range b.N {
		b.StopTimer()
		o := &Options{Size: 1 << 20, MaxSize: to}
		if fixed {
			o = &Options{Size: to}
		}
		s := newStore(b, o)
		lat := make([]time.Duration, 0, to/150)
		val := make([]byte, 100)
		// The worst put of each kind: one that grew the store, one that
		// started or ended an index migration, one that moved buckets, and
		// the rest.
		kinds := []string{"growth", "index", "step", "put"}
		worst := make([]time.Duration, len(kinds))
		b.StartTimer()
		for i := 0; ; i++ {
			k := benchKey(i)
			g, gen, cur := s.hdr.Grow.Growths.Load(), s.hdr.Grow.IndexGen.Load(), s.hdr.Alloc.IndexCursor.Load()
			t0 := time.Now()
			err := s.Put(k, val)
			d := time.Since(t0)
			if err != nil {
				b.Fatal(err)
			}
			lat = append(lat, d)
			kind := 3
			switch {
			case s.hdr.Grow.Growths.Load() != g:
				kind = 0
			case s.hdr.Grow.IndexGen.Load() != gen:
				kind = 1
			case s.hdr.Alloc.IndexCursor.Load() != cur:
				kind = 2
			}
			worst[kind] = max(worst[kind], d)
			if fixed && i >= 6_300_000 || !fixed && int64(s.hdr.Grow.Size.Load()) >= to {
				break // grown: what follows is a full store's business
			}
		}
		b.StopTimer()
		st := s.Stats()
		slices.Sort(lat)
		q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Nanoseconds()) }
		b.ReportMetric(float64(len(lat)), "puts")
		b.ReportMetric(q(0.5), "p50-ns")
		b.ReportMetric(q(0.99), "p99-ns")
		b.ReportMetric(q(0.999), "p99.9-ns")
		b.ReportMetric(float64(lat[len(lat)-1].Nanoseconds()), "max-ns")
		for i, k := range kinds {
			b.ReportMetric(float64(worst[i].Nanoseconds()), "max-"+k+"-ns")
		}
		b.ReportMetric(float64(st.Growths), "growths")
		b.ReportMetric(float64(st.IndexMigrations), "migrations")
		b.Logf("%d puts to %s: store %d MiB, index for %d keys", len(lat), units.FormatBytes(to), st.Size>>20, st.IndexCapacity)
		s.Close()
	}
}

// BenchmarkGrownVsFixed: gets and puts (overwrites) on 100,000 keys in a
// store that grew to hold them from 1 MiB (impl=grown) and in one created
// at the size it reached (impl=fixed), so steady state after growth (no
// migration under way) can be set against a store that never grew.
func BenchmarkGrownVsFixed(b *testing.B) {
	grownSize := int64(0)
	for _, impl := range []string{"grown", "fixed"} {
		mk := func(b *testing.B) (*Store, [][]byte, []int) {
			if impl == "grown" {
				s, keys, order := benchStoreWith(b, 100, &Options{Size: 1 << 20, MaxSize: 1 << 30})
				// Steady state: no migration under way (at 100,000 keys one
				// is, begun at 98,352; its last steps would fall in the timed
				// loop). Compact finishes it and moves no entry here.
				if _, err := s.Compact(context.Background()); err != nil {
					b.Fatal(err)
				}
				grownSize = s.Stats().Size
				return s, keys, order
			}
			if grownSize == 0 {
				b.Skip("needs impl=grown first")
			}
			return benchStoreWith(b, 100, &Options{Size: grownSize})
		}
		b.Run("op=get/impl="+impl, func(b *testing.B) {
			s, keys, order := mk(b)
			buf := make([]byte, 0, 100)
			settle(b)
			for i := 0; i < b.N; i++ {
				var err error
				if buf, err = s.GetAppend(buf[:0], keys[order[i&(len(order)-1)]]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("op=put/impl="+impl, func(b *testing.B) {
			s, keys, order := mk(b)
			v := make([]byte, 100)
			settle(b)
			for i := 0; i < b.N; i++ {
				if err := s.Put(keys[order[i&(len(order)-1)]], v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
