package tests

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/store"
)

// Torture values describe themselves, so a reader can tell a whole value
// of the right key from anything else: KEY|VID|FILL|N where FILL is N
// letters drawn from a generator seeded by VID, so that two versions of
// a key differ all along, not only in their heads.
func tortureValue(key, vid string, n int) []byte {
	h := uint32(2166136261) // FNV-1a of vid, the generator's seed
	for _, b := range []byte(vid) {
		h = (h ^ uint32(b)) * 16777619
	}
	h |= 1
	v := make([]byte, 0, len(key)+len(vid)+n+16)
	v = append(append(append(append(v, key...), '|'), vid...), '|')
	for range n {
		h ^= h << 13 // xorshift32
		h ^= h >> 17
		h ^= h << 5
		v = append(v, 'a'+byte(h%26))
	}
	return strconv.AppendInt(append(v, '|'), int64(n), 10)
}

// checkTortureValue reports why v cannot be a value written for key.
func checkTortureValue(key string, v []byte) error {
	parts := strings.Split(string(v), "|")
	if len(parts) != 4 || parts[0] != key {
		return fmt.Errorf("value %.60q is not one written for key %q", v, key)
	}
	n, err := strconv.Atoi(parts[3])
	if err != nil || len(parts[2]) != n {
		return fmt.Errorf("value %.60q for %q is torn (fill %d bytes, says %s)", v, key, len(parts[2]), parts[3])
	}
	if want := tortureValue(key, parts[1], n); string(want) != string(v) {
		return fmt.Errorf("value %.60q for %q is torn", v, key)
	}
	return nil
}

// tortureKeys is how many keys each torture writer owns: enough to fill
// its share of the heap once values are a few hundred bytes.
const tortureKeys = 1024

// blockOf is the heap block an entry of key and value takes
// (layout.BlockSize), the unit of the store's room guarantee.
func blockOf(key string, v []byte) int64 {
	return int64(layout.BlockSize(uint64(len(key)), uint64(len(v))))
}

// sizeDrift is the centre of the value sizes at phase ph (0 to 1) of a
// period: from 8 bytes up to 4 KiB in the first half and back down in the
// second, evenly in log scale. A sweep up is what fragments the heap: the
// small blocks left behind are too small for the new values.
func sizeDrift(ph float64) float64 {
	return math.Exp2(3 + 9*(1-math.Abs(2*ph-1)))
}

// phase is where monotonic time now falls in a period, from 0 to 1. Every
// process reads the same clock, so the torture's writers and their
// successors after a kill follow one tide.
func phase(now int64, period time.Duration) float64 {
	return float64(now%int64(period)) / float64(period)
}

// driftSize draws a value size around centre c: from c/2.8 to 2.8c, at
// most max.
func driftSize(c float64, max int) int {
	return min(int(c*math.Exp2(3*rand.Float64()-1.5)), max)
}

// tortureTide is the centre of the value sizes (sizeDrift) and the share
// of the heap that each of the torture's writers aims its live entries at,
// at monotonic time now. A period (tortureTidePeriod) has four stretches:
//
//   - sizes sweep up from 8 bytes, the writers together at 50% to 70% of
//     the heap, where blocks merge and split but some free block nearly
//     always fits (with only this, 300 kills saw no compaction at all);
//   - high tide, sizes still rising from about 300 bytes to 4 KiB, the
//     writers together at 92%: inside the guarantee (Reserve and the
//     largest block take under 3% of the heap), so every ErrFull there is
//     a failure unless a writer was still above its share. This is where puts compact: the rise left the heap in
//     pieces too small for the new values, but room is owed;
//   - the flood, sizes coming down from 4 KiB: no limit, the writers fill
//     the heap until puts fail with ErrFull, which the parent judges;
//   - sizes back down to 8 bytes at 50% to 70%.
func tortureTide(now int64, writers int) (centre, share float64) {
	ph := phase(now, tortureTidePeriod)
	share = 0.6 + 0.1*math.Sin(2*math.Pi*ph)
	switch {
	case ph >= 0.3 && ph < 0.5:
		share = 0.92
	case ph >= 0.5 && ph < 0.6:
		share = math.Inf(1)
	}
	return sizeDrift(ph), share / float64(writers)
}

const (
	tortureTidePeriod = 1700 * time.Millisecond
	tortureMaxValue   = 8 << 10
)

// The growth torture (TestTortureGrowth) runs the same writers in a store
// that starts at 1 MiB and may grow to 64 MiB, in rounds, each on a new
// store. A writer started at stage x of a round (0 at its start, 1 at its
// end; the parent passes it) uses only its first growthPlan(x) keys and
// keeps its live block bytes under a budget that also rises with x: from
// 256 keys and 192 KiB each at the start to 8192 keys and 12 MiB at the
// end. Both rise geometrically, as the store and the index double, so
// that the store grows and the index migrates (at 769, 1539, 3078, 6156
// keys...) all through the round, while writers are SIGKILLed. (What the
// writers get written in a round bounds them before the budget does: a
// round ends with some 9,000 keys in 5 to 8 MiB, in a store of 8 or 16
// MiB.) Within the budget the writer follows a tide of its own
// (growthTide): no high tide and no flood, as the store owes room up to
// its maximum and the two writers' 24 MiB stay far below it, so that
// every ErrFull is a failure.
const (
	tortureGrowthKeys        = 8192
	tortureGrowthFirstKeys   = 256
	tortureGrowthFirstBudget = 192 << 10
	tortureGrowthLastBudget  = 12 << 20
)

// growthPlan is a growth torture writer's key space and live budget at
// stage x of a round.
func growthPlan(x float64) (keys int, budget float64) {
	x = min(max(x, 0), 1)
	keys = int(tortureGrowthFirstKeys * math.Pow(tortureGrowthKeys/tortureGrowthFirstKeys, x))
	budget = tortureGrowthFirstBudget * math.Pow(tortureGrowthLastBudget/tortureGrowthFirstBudget, x)
	return keys, budget
}

// growthTide is, for a growth torture writer with the budget given, the
// centre of its value sizes and the live block bytes it aims at, at
// monotonic time now: the sizes sweep as in tortureTide, and the aim from
// half the budget up to all of it and back, so that keys are deleted and
// put again, blocks merge, split and are compacted, and the store is
// filled again past what it held.
func growthTide(now int64, budget float64) (centre, target float64) {
	ph := phase(now, tortureTidePeriod)
	return sizeDrift(ph), budget * (0.75 + 0.25*math.Sin(2*math.Pi*ph))
}

// tortureWriter does random puts, deletes and CASes on its own keys, with
// value sizes that drift and a live total held near its share of the heap
// (tortureTide): a put that would pass it becomes a delete of a present
// key. With a stage (growth, at stage x of a round), it follows
// growthPlan and growthTide instead. It learns its keys from the store
// when it starts (the parent settled its predecessor's last mutation; a
// growth torture writer started ahead starts when it reads its stage,
// which the parent sends after that). Before each mutation it prints "pre OP KEY VID N T0", and after it "ack OP KEY VID N T1", or
// "miss OP KEY" (not found), or on ErrFull
// "full OP KEY VID N BLOCK RESERVE T0 T1 ERROR": BLOCK is the block the
// entry needed, RESERVE the store's Reserve read just after, T0 and T1 the
// CLOCK_MONOTONIC times around the call. From those the parent judges
// whether the store owed the entry room.
func tortureWriter(name, id string, growth bool, x float64) error {
	s, err := store.Open(name, roleOpts)
	if err != nil {
		return err
	}
	defer s.Close()
	heap := float64(s.Stats().HeapSize)
	prefix := "t" + id + ":"
	keys, all, budget := tortureKeys, tortureKeys, 0.0
	if growth {
		all = tortureGrowthKeys
		keys, budget = growthPlan(x)
	}
	var (
		blocks  = make([]int64, all) // 0: absent
		present []int                // keys present, in any order
		where   = make([]int, all)   // index in present
		live    int64
	)
	setBlock := func(k int, b int64) {
		switch old := blocks[k]; {
		case old == 0 && b != 0:
			where[k] = len(present)
			present = append(present, k)
		case old != 0 && b == 0:
			last := present[len(present)-1]
			present[where[k]] = last
			where[last] = where[k]
			present = present[:len(present)-1]
		}
		live += b - blocks[k]
		blocks[k] = b
	}
	err = s.Range(func(k, v []byte) bool {
		if rest, ok := strings.CutPrefix(string(k), prefix); ok {
			setBlock(atoi(rest), blockOf(string(k), v))
		}
		return true
	})
	if err != nil {
		return err
	}
	pid := os.Getpid()
	out := bufioWriter()
	for seq := 0; ; seq++ {
		now := monotonic()
		centre, share := tortureTide(now, 2)
		target := share * heap
		if growth {
			centre, target = growthTide(now, budget)
		}
		k := rand.IntN(keys)
		key := prefix + strconv.Itoa(k)
		vid := fmt.Sprintf("%d-%d", pid, seq)
		n := driftSize(centre, tortureMaxValue)
		v := tortureValue(key, vid, n)
		op := []string{"put", "put", "del", "cas"}[rand.IntN(4)]
		if op != "del" && float64(live-blocks[k]+blockOf(key, v)) > target && len(present) > 0 {
			op = "del"
			k = present[rand.IntN(len(present))]
			key = prefix + strconv.Itoa(k)
		}
		t0 := monotonic()
		fmt.Fprintf(out, "pre %s %s %s %d %d\n", op, key, vid, n, t0)
		out.Flush()
		var err error
		ok := true
		switch op {
		case "put":
			err = s.Put([]byte(key), v)
		case "del":
			err = s.Delete([]byte(key))
		case "cas":
			var old []byte
			old, err = s.Get([]byte(key))
			if errors.Is(err, store.ErrNotFound) {
				old, err = nil, nil
			}
			if err == nil {
				ok, err = s.CompareAndSwap([]byte(key), old, v)
			}
		}
		t1 := monotonic()
		switch {
		case errors.Is(err, store.ErrFull):
			fmt.Fprintf(out, "full %s %s %s %d %d %d %d %d %v\n",
				op, key, vid, n, blockOf(key, v), s.Stats().Reserve, t0, t1, err)
		case errors.Is(err, store.ErrNotFound) || !ok:
			fmt.Fprintf(out, "miss %s %s\n", op, key)
		case err != nil:
			return err
		default:
			fmt.Fprintf(out, "ack %s %s %s %d %d\n", op, key, vid, n, t1)
			if op == "del" {
				setBlock(k, 0)
			} else {
				setBlock(k, blockOf(key, v))
			}
		}
		out.Flush()
	}
}

// staticKey is the i-th of the keys the growth torture puts before its
// writers start and never changes, and staticValue its value.
func staticKey(i int) string   { return "s:" + strconv.Itoa(i) }
func staticValue(i int) []byte { return tortureValue(staticKey(i), "static", 50+i%400) }

// tortureReader reads random keys of the writers' (the first keys of
// each) and validates every value it finds (checkTortureValue); every
// 4096 reads it reads the whole store with Range and validates every
// writer's value in it, then sleeps twice as long as those reads took (on
// a 2-core machine a reader that never slept would take half of it from
// the writers and the parent). With static keys (staticKey(0) up to
// static, there throughout), one read in 8 is of a static key, which must
// be found, and Range must see each of them; and a second goroutine
// crawls: Ranges that sleep a millisecond every 32 keys, slower than a
// migration moves buckets, so that the index changes under them and
// migrations overtake them, and each must see every static key (with its
// value; it leaves the writers' values to the other Ranges).
//
// It prints "ready" when it has opened the store, and every 100 ms or so
// "reads R hits H ranges G crawls C spanning S migrations M growths N": S
// is how many crawls a migration started or ended during, M and N the
// store's IndexMigrations and Growths then, so a report with a higher M
// than an earlier one says the reader was reading while those migrations
// ran.
func tortureReader(name string, writers, keys, static int) error {
	s, err := store.Open(name, &store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer s.Close()
	var crawls, spanning atomic.Int64
	report := func(reads, hits, ranges int) {
		st := s.Stats()
		fmt.Printf("reads %d hits %d ranges %d crawls %d spanning %d migrations %d growths %d\n",
			reads, hits, ranges, crawls.Load(), spanning.Load(), st.IndexMigrations, st.Growths)
	}
	// scan is one Range: it validates every static value, and every
	// writer's unless crawling, and returns an error unless it saw every
	// static key. A crawl sleeps a millisecond every 32 keys.
	scan := func(crawl bool) error {
		n := 0
		seen := make([]bool, static)
		var bad error
		err := s.Range(func(k, v []byte) bool {
			key := string(k)
			if rest, ok := strings.CutPrefix(key, "s:"); ok {
				if i, err := strconv.Atoi(rest); err == nil && i >= 0 && i < static {
					seen[i] = true
				}
				bad = checkTortureValue(key, v)
			} else if strings.HasPrefix(key, "t") && !crawl {
				bad = checkTortureValue(key, v)
			}
			if n++; crawl && n%32 == 0 {
				time.Sleep(time.Millisecond)
			}
			return bad == nil
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return err
		}
		if i := slices.Index(seen, false); i >= 0 {
			return fmt.Errorf("missed %s, present throughout", staticKey(i))
		}
		return nil
	}
	crawlErr := make(chan error, 1)
	if static > 0 {
		go func() {
			// index is where the index's growth stands: a change says a
			// migration started or ended.
			index := func() [2]uint64 {
				st := s.Stats()
				if st.IndexMigrating {
					return [2]uint64{st.IndexMigrations, 1}
				}
				return [2]uint64{st.IndexMigrations, 0}
			}
			for c := 1; ; c++ {
				at := index()
				err := scan(true)
				if err != nil {
					crawlErr <- fmt.Errorf("crawl %d: %w", c, err)
					return
				}
				crawls.Add(1)
				if index() != at {
					spanning.Add(1)
				}
			}
		}()
	}
	fmt.Println("ready")
	report(0, 0, 0)
	last := time.Now()
	buf := make([]byte, 0, 64<<10)
	var hits, ranges int
	batch := time.Now()
	for i := 1; ; i++ {
		if i%4096 == 0 {
			if err := scan(false); err != nil {
				return fmt.Errorf("range: %w", err)
			}
			ranges++
			select {
			case err := <-crawlErr:
				return err
			default:
			}
			time.Sleep(2 * time.Since(batch))
			batch = time.Now()
			if time.Since(last) > 100*time.Millisecond {
				report(i, hits, ranges)
				last = time.Now()
			}
		}
		key := fmt.Sprintf("t%d:%d", rand.IntN(writers), rand.IntN(keys))
		if static > 0 && i%8 == 0 {
			key = staticKey(rand.IntN(static))
		}
		v, err := s.GetAppend(buf[:0], []byte(key))
		if errors.Is(err, store.ErrNotFound) && !strings.HasPrefix(key, "s:") {
			continue
		}
		if err != nil {
			return fmt.Errorf("get %s: %w", key, err)
		}
		if err := checkTortureValue(key, v); err != nil {
			return err
		}
		hits++
	}
}
