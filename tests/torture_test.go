package tests

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// liveSpan is one state of a writer's keys: its live block bytes, and the
// CLOCK_MONOTONIC interval in which the store may have been in it, from
// the call of the mutation that made it to the return of the one that
// ended it.
type liveSpan struct{ from, to, live int64 }

// tortureFull is an ErrFull a writer reported, with what the parent knew
// of the writer's own keys when it read the report.
type tortureFull struct {
	writer, kill        int
	op, key, err        string
	own, block, reserve int64 // the writer's live block bytes (the key's old value included), the entry's block, Reserve
	t0, t1              int64
}

// tortureState is the parent's model of one writer's keys, fed by the
// writer's "pre"/"ack"/"full"/"miss" lines.
type tortureState struct {
	mu         sync.Mutex
	id         int
	kill       int               // kills so far, for reports
	model      map[string][]byte // acknowledged value; absent key: deleted or never put
	live       int64             // block bytes of the model's entries
	inflight   []string          // fields of the last "pre" not yet answered
	inflightAt int64             // its T0
	acks       int
	spans      []liveSpan // every state of the model, in order
	fulls      []tortureFull
}

func newTortureState(id int) *tortureState {
	return &tortureState{id: id, model: map[string][]byte{},
		spans: []liveSpan{{from: math.MinInt64, to: math.MaxInt64}}}
}

// set records key's new value (nil: deleted) by a mutation called at from
// and known to have happened by to.
func (ts *tortureState) set(key string, v []byte, from, to int64) {
	if old, ok := ts.model[key]; ok {
		ts.live -= blockOf(key, old)
	}
	if v == nil {
		delete(ts.model, key)
	} else {
		ts.model[key] = v
		ts.live += blockOf(key, v)
	}
	ts.spans[len(ts.spans)-1].to = to
	ts.spans = append(ts.spans, liveSpan{from: from, to: math.MaxInt64, live: ts.live})
}

// maxLive is the most live block bytes the writer's keys can have held at
// any instant of [a, b].
func (ts *tortureState) maxLive(a, b int64) int64 {
	i := sort.Search(len(ts.spans), func(i int) bool { return ts.spans[i].to >= a })
	var m int64
	for ; i < len(ts.spans) && ts.spans[i].from <= b; i++ {
		m = max(m, ts.spans[i].live)
	}
	return m
}

func (ts *tortureState) feed(c *child, begun chan struct{}) {
	for l := range c.Lines {
		if begun != nil {
			close(begun)
			begun = nil
		}
		f := strings.Fields(l)
		ts.mu.Lock()
		switch f[0] {
		case "pre":
			ts.inflight = f
			ts.inflightAt, _ = strconv.ParseInt(f[5], 10, 64)
		case "ack":
			ts.acks++
			ts.inflight = nil
			t1, _ := strconv.ParseInt(f[5], 10, 64)
			if f[1] == "del" {
				ts.set(f[2], nil, ts.inflightAt, t1)
			} else {
				n, _ := strconv.Atoi(f[4])
				ts.set(f[2], tortureValue(f[2], f[3], n), ts.inflightAt, t1)
			}
		case "full":
			ts.inflight = nil
			n := func(i int) int64 { v, _ := strconv.ParseInt(f[i], 10, 64); return v }
			ts.fulls = append(ts.fulls, tortureFull{
				writer: ts.id, kill: ts.kill, op: f[1], key: f[2], err: strings.Join(f[9:], " "),
				own: ts.live, block: n(5), reserve: n(6), t0: n(7), t1: n(8),
			})
		case "miss":
			ts.inflight = nil
		}
		ts.mu.Unlock()
	}
}

func tortureKills(t *testing.T) int {
	if v := os.Getenv("SHMKV_TORTURE_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("SHMKV_TORTURE_KILLS=%q: %v", v, err)
		}
		return n
	}
	if testing.Short() {
		return 60
	}
	return 300
}

// TestTorture runs writer processes doing random put/delete/CAS and a
// reader process validating every value it reads, and SIGKILLs a writer at
// a random moment, again and again. Every 1.7 s value sizes sweep from 8
// bytes to 4 KiB and back while the writers hold the live entries of a
// 1 MiB store at 50-70%, then at 92% (high tide), then past the whole heap
// (the flood; see tortureTide): freed blocks merge and split, puts find no
// block big enough and compact, and the kills land in all of it.
//
// After each kill it checks the killed writer's keys against the model
// built from its acknowledgements (the one mutation in flight may have gone
// either way), with Get and then with Range (which must see each of them,
// as they hold still while the other writer goes on), that a new write
// proceeds, and every few kills that the store passes Check. At the end it
// judges every ErrFull: the store owes a
// put room while the live entries' blocks plus the new one fit in
// HeapSize - Reserve, so an ErrFull there is a failure. Block sizes are
// layout.BlockSize of the model's entries; the other writer's live bytes
// at the moment are taken at their most over the call's interval. (With
// SHMKV_TORTURE_STRICT=0, an ErrFull whose message shows the store's own
// count of its live blocks left no room is counted apart instead: the two
// counts differed by slack when an entry kept what was left of a free
// block too small to split; that rest is now a free fragment, so they
// agree.) It also requires that compaction ran. SHMKV_TORTURE_KILLS sets
// the number of kills (default 300).
func TestTorture(t *testing.T) {
	res := runTorture(t, tortureRun{kills: tortureKills(t)})
	if st := res.st; st.Compactions == 0 || st.BytesMoved == 0 {
		t.Errorf("compaction never ran (%d transactions, %d bytes moved): the torture did not exercise it",
			st.Compactions, st.BytesMoved)
	}
}

// tortureGrowthRound is how many kills a round of TestTortureGrowth takes;
// tortureGrowthLeast and tortureMigrationsLeast are the fewest growths and
// index migrations a round must show.
const (
	tortureGrowthRound     = 300
	tortureGrowthLeast     = 2
	tortureMigrationsLeast = 3
)

// TestTortureGrowth is TestTorture in stores that grow: in rounds of 300
// kills (SHMKV_TORTURE_KILLS in all, default 300: one round), each on a
// new store created at 1 MiB that may grow to 64 MiB, the writers' keys
// and live bytes rise through the round (growthPlan), from 512 keys and
// 384 KiB in all to 16,384 keys and 24 MiB, so that the store grows
// (extend, then a journaled publish of its size) and the index migrates
// to tables twice as big (two old buckets moved before each transaction)
// again and again while writers are SIGKILLed, and the reader, validating
// every value it reads with Get and Range, reads throughout. The store
// also holds 512 static keys, put before the writers start: the reader's
// Gets must find them and its Ranges see them all, among them crawls,
// Ranges slower than a migration moves buckets, which migrations start,
// end and overtake (tortureReader). The checks after each kill are
// TestTorture's, the Range one now walking an index that moves under it. The guarantee is the same with the heap the store
// may grow to in place of HeapSize; the writers stay far below it (24 MiB
// of 64), so every ErrFull fails the test.
//
// Unlike TestTorture's, whose writers mostly die starting, every writer
// here dies writing: the store grows only as fast as they write. Each
// successor is started ahead and waits for its stage, and a kill goes to
// a writer that has begun to write (begunWriter). A round of 300 kills
// takes 10 to 20 s on a 2-core machine; its writers make 70,000 to
// 140,000 mutations, the store grows 3 or 4 times (to 8 or 16 MiB) and
// the index migrates 4 times (to 16,416 keys). Each round must have grown
// the store at least twice and migrated the index at least 3 times
// (floors below that, as what the writers get done hangs on the
// machine), the reader must have reported every one of those migrations
// while it read, and a migration must have started or ended during one
// of its crawls at least.
func TestTortureGrowth(t *testing.T) {
	kills := tortureKills(t)
	rounds := max(1, kills/tortureGrowthRound)
	var growths, migrations uint64
	var size int64
	for r := range rounds {
		n := kills / rounds
		if r == rounds-1 {
			n = kills - (rounds-1)*n
		}
		ok := t.Run(fmt.Sprintf("round%d", r+1), func(t *testing.T) {
			res := runTorture(t, tortureRun{kills: n, growth: true})
			st := res.st
			growths, migrations, size = growths+st.Growths, migrations+st.IndexMigrations, max(size, st.Size)
			if st.Growths < tortureGrowthLeast || st.IndexMigrations < tortureMigrationsLeast {
				t.Errorf("the store grew %d times and the index migrated %d times (want %d and %d at least): the round did not exercise growth",
					st.Growths, st.IndexMigrations, tortureGrowthLeast, tortureMigrationsLeast)
			}
			if res.reader.migrations != st.IndexMigrations || res.reader.ranges == 0 || res.reader.hits == 0 {
				t.Errorf("the reader's last report %+v: it did not read through the %d migrations", res.reader, st.IndexMigrations)
			}
			if res.reader.spanning == 0 {
				t.Errorf("the reader's last report %+v: no crawl saw a migration start or end", res.reader)
			}
		})
		if !ok {
			return
		}
	}
	t.Logf("%d rounds, %d kills: the stores grew %d times (to %d bytes at most), the index migrated %d times",
		rounds, kills, growths, size, migrations)
}

// tortureRun is one run of the torture, on a store of its own: 1 MiB,
// fixed, or with growth, able to grow to 64 MiB, with the writers
// following growthPlan over the run.
type tortureRun struct {
	kills  int
	growth bool
}

// tortureResult is what a run left: the store's Stats at the end, and the
// reader's last report, read after the store's figures were final.
type tortureResult struct {
	st     store.Stats
	reader readerReport
}

// readerReport is a torture reader's report (tortureReader).
type readerReport struct {
	reads, hits, ranges, crawls, spanning int
	migrations, growths                   uint64
}

func parseReaderReport(l string) (readerReport, bool) {
	f := strings.Fields(l)
	if len(f) != 14 || f[0] != "reads" {
		return readerReport{}, false
	}
	n := func(i int) uint64 { v, _ := strconv.ParseUint(f[i], 10, 64); return v }
	return readerReport{reads: int(n(1)), hits: int(n(3)), ranges: int(n(5)), crawls: int(n(7)), spanning: int(n(9)),
		migrations: n(11), growths: n(13)}, true
}

// tortureStatic is how many keys the growth torture puts before its
// writers start and never changes (staticKey): every Range of the
// reader's must see them all.
const tortureStatic = 512

func runTorture(t *testing.T, run tortureRun) tortureResult {
	t.Helper()
	kills := run.kills
	const writers = 2
	const lockTimeout = 20 * time.Millisecond
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 4))
	t.Logf("seed %d, %d kills", seed, kills)

	name := storeName(t)
	opts, keys := &store.Options{Size: 1 << 20, LockTimeout: lockTimeout}, tortureKeys
	if run.growth {
		opts.MaxSize, keys = 64<<20, tortureGrowthKeys
	}
	s, err := store.Create(name, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	static := 0
	if run.growth {
		static = tortureStatic
		for i := range static {
			if err := s.Put([]byte(staticKey(i)), staticValue(i)); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The reader first: its first report is from before any write.
	reader := spawn(t, "torture-reader", []string{name, strconv.Itoa(writers), strconv.Itoa(keys), strconv.Itoa(static)})
	reader.Expect(t, "ready", 10*time.Second)
	follow := followReader(reader)

	states := make([]*tortureState, writers)
	procs := make([]*child, writers)
	fed := make([]chan struct{}, writers)   // closed when writer i's output has all been read
	begun := make([]chan struct{}, writers) // closed at writer i's first line
	touched := make([]int, writers)         // writer i's keys are among its first touched[i]
	// In a growing store, writer i's successor is started ahead
	// (standby[i]) and waits, its process started, for its stage on its
	// stdin (goes[i]) before it opens the store: starting a process takes
	// tens of milliseconds on a busy machine, time the writers would not
	// write in.
	standby, goes := make([]*child, writers), make([]*os.File, writers)
	ahead := func(i int) {
		if standby[i] == nil {
			standby[i], goes[i] = spawnHeld(t, "torture-writer", []string{name, strconv.Itoa(i), "-"})
		}
	}
	// start starts writer i after k kills: in a growing store, at stage
	// k/kills of growthPlan.
	start := func(i, k int) {
		touched[i] = keys
		if !run.growth {
			procs[i] = spawn(t, "torture-writer", []string{name, strconv.Itoa(i)})
		} else {
			x := float64(k) / float64(kills)
			// NB: the stage only rises, so this writer's plan holds
			// every key its predecessors used.
			touched[i], _ = growthPlan(x)
			ahead(i)
			if _, err := fmt.Fprintf(goes[i], "%.4f\n", x); err != nil {
				t.Fatalf("writer %d's successor: %v", i, err)
			}
			procs[i], standby[i] = standby[i], nil
		}
		fed[i], begun[i] = make(chan struct{}), make(chan struct{})
		go func(c *child, ts *tortureState, done, begun chan struct{}) {
			ts.feed(c, begun)
			close(done)
		}(procs[i], states[i], fed[i], begun[i])
	}
	for i := range writers {
		states[i] = newTortureState(i)
		start(i, 0)
	}

	var waits []time.Duration
	recoveredBefore := s.Stats().Recoveries
	inflightKills, scanned := 0, 0
	var parentBlock, parentMax int64 // the parent's entry's block now, and at most
	var parentFulls []tortureFull
	for k := range kills {
		pause := time.Duration(1+rng.IntN(15)) * time.Millisecond
		i := rng.IntN(writers)
		if run.growth {
			// The store grows only if the writers write, and a writer
			// takes 30 to 100 ms on a busy 2-core machine to open the
			// store and learn its keys, several times the pause: most
			// would die before their first write. So the one drawn dies
			// if it has begun writing, else the other if it has, else
			// the first to begin. (TestTorture kills them starting too.)
			// Their successors start during the pause.
			i = begunWriter(t, k, i, begun, fed)
			paused := time.Now()
			for j := range writers {
				ahead(j)
			}
			pause -= time.Since(paused)
		}
		time.Sleep(pause)
		procs[i].Cmd.Process.Signal(syscall.SIGKILL)
		<-fed[i]
		if err := <-procs[i].Done; !killed(err) {
			t.Fatalf("kill %d: writer %d had already ended: %v", k, i, err)
		}
		killedAt := time.Now()
		pv := []byte(strconv.Itoa(k))
		t0 := monotonic()
		err := s.Put([]byte("parent"), pv)
		waits = append(waits, time.Since(killedAt))
		switch {
		case errors.Is(err, store.ErrFull):
			// The writers may have filled the store: judged with theirs.
			parentFulls = append(parentFulls, tortureFull{writer: -1, kill: k, op: "put", key: "parent",
				err: err.Error(), own: parentBlock, block: blockOf("parent", pv), reserve: s.Stats().Reserve,
				t0: t0, t1: monotonic()})
		case err != nil:
			t.Fatalf("kill %d: parent put: %v", k, err)
		default:
			parentBlock = blockOf("parent", pv)
		}
		parentMax = max(parentMax, parentBlock)

		ts := states[i]
		if ts.inflight != nil {
			inflightKills++
		}
		for key := 0; key < touched[i]; key++ {
			key := fmt.Sprintf("t%d:%d", i, key)
			got, err := s.Get([]byte(key))
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("kill %d: get %s: %v", k, key, err)
			}
			want, had := ts.model[key]
			ok := (err == nil) == had && string(got) == string(want)
			if f := ts.inflight; !ok && f != nil && f[2] == key {
				// The mutation in flight when the writer died may have landed.
				n, _ := strconv.Atoi(f[4])
				if f[1] == "del" {
					ok = err != nil
				} else {
					ok = err == nil && string(got) == string(tortureValue(key, f[3], n))
				}
				if ok {
					// It did, at some instant from its call until now.
					if err != nil {
						got = nil
					}
					ts.set(key, got, ts.inflightAt, monotonic())
				}
			}
			if !ok {
				t.Fatalf("kill %d (seed %d): %s = %.50q (%v); acknowledged %.50q (present %v); in flight %v",
					k, seed, key, got, err, want, had, ts.inflight)
			}
		}
		ts.inflight = nil
		// The model is now exact for the killed writer's keys, which hold
		// still until its successor starts: a scan, while the other writer
		// goes on (compacting, growing the store, moving the index under
		// it), must see every one of them.
		if err := scanOwn(s, i, ts.model); err != nil {
			t.Fatalf("kill %d (seed %d): %v", k, seed, err)
		}
		scanned += len(ts.model)
		ts.kill = k + 1
		if k%10 == 0 || k == kills-1 {
			if err := s.Check(); err != nil {
				t.Fatalf("kill %d (seed %d): %v", k, seed, err)
			}
		}
		select {
		case err := <-reader.Done:
			t.Fatalf("reader process ended: %v (last said %q)", err, follow.last.Load())
		default:
		}
		start(i, k+1)
	}
	// A short run may end before a high tide: let the writers go on until
	// one has come (it comes once a period).
	for deadline := time.Now().Add(2 * tortureTidePeriod); !run.growth && s.Stats().Compactions == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	acks := 0
	for i := range writers {
		procs[i].Cmd.Process.Signal(syscall.SIGKILL)
		<-fed[i]
		acks += states[i].acks
	}
	slices.Sort(waits)
	p50, p99 := waits[len(waits)/2], waits[len(waits)*99/100]
	// A put repairs what the last kills left; then the store's block bytes
	// can be set against layout.BlockSize of its entries: the difference is
	// the slack of blocks that were not split.
	if err := s.Put([]byte("parent"), []byte("end")); err != nil && !errors.Is(err, store.ErrFull) {
		t.Fatalf("parent put at the end: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("at the end (seed %d): %v", seed, err)
	}
	var sized int64
	if err := s.Range(func(k, v []byte) bool { sized += blockOf(string(k), v); return true }); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()

	// The store's figures are final: wait for a report of the reader's
	// made since (a hang guard only; it reports every 100 ms or so).
	var rep readerReport
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var ok bool
		rep, ok = parseReaderReport(follow.last.Load().(string))
		if ok && rep.migrations == st.IndexMigrations && rep.growths == st.Growths && rep.ranges > 0 {
			break
		}
		select {
		case err := <-reader.Done:
			t.Fatalf("reader process ended: %v (last said %q)", err, follow.last.Load())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the reader did not report the store's final figures (%d migrations, %d growths) within 30 s; it last said %q",
				st.IndexMigrations, st.Growths, follow.last.Load())
		}
	}
	reader.Cmd.Process.Signal(syscall.SIGKILL)
	if err := <-reader.Done; !killed(err) {
		t.Fatalf("reader process: %v", err)
	}

	// Judge every ErrFull against the guarantee. The heap is the one the
	// store may grow to: HeapSize, in a store that cannot grow.
	heap := st.MaxSize - (st.Size - st.HeapSize)
	strict := os.Getenv("SHMKV_TORTURE_STRICT") != "0"
	var fulls, beyond, slackOnly int
	closest := int64(math.MaxInt64) // bytes past the guarantee, of the ErrFull nearest to it
	var slackMost int64             // the most the store's live bytes exceeded the model's, in a slackOnly ErrFull
	var owed []string
	all := parentFulls
	for _, ts := range states {
		all = append(all, ts.fulls...)
	}
	for _, f := range all {
		fulls++
		others := int64(0)
		if f.writer >= 0 {
			others = parentMax
		}
		for _, o := range states {
			if o.id != f.writer {
				others += o.maxLive(f.t0, f.t1)
			}
		}
		limit := heap - f.reserve
		if f.own+others+f.block > limit && !run.growth {
			beyond++
			closest = min(closest, f.own+others+f.block-limit)
			continue
		}
		if stored := liveInFull(f.err); !strict && stored >= 0 && stored+f.block > limit {
			// Owed by layout.BlockSize, not by the store's own count of
			// its blocks, which holds the slack of blocks it could not
			// split (see the test's doc).
			slackOnly++
			slackMost = max(slackMost, stored-(f.own+others))
			continue
		}
		// NB: in a growing store the writers keep far below the
		// guarantee, so an ErrFull past it is a failure too: of the test.
		owed = append(owed, fmt.Sprintf("writer %d (-1: the parent) after kill %d: %s %s of a %d-byte block: ErrFull with at most %d live (%d its own, %d the others'), %d short of heap %d - Reserve %d: %s",
			f.writer, f.kill, f.op, f.key, f.block, f.own+others, f.own, others,
			limit-(f.own+others+f.block), heap, f.reserve, f.err))
	}
	near := "none"
	if beyond > 0 {
		near = fmt.Sprintf("%d bytes", closest)
	}
	summary := fmt.Sprintf("%d kills (%d mid-mutation, %d journals repaired), %d acknowledged mutations modelled, "+
		"%d keys seen by Range after kills; "+
		"ErrFull %d times, %d of them beyond the guarantee (the nearest %s past it), %d within it by layout.BlockSize "+
		"but not by the store's own block bytes (up to %d bytes of slack); "+
		"compaction: %d transactions moved %d bytes in %d passes; at the end %d live block bytes, %d of them slack; "+
		"kill to next write: p50 %v, p99 %v, max %v (LockTimeout %v)",
		kills, inflightKills, st.Recoveries-recoveredBefore, acks, scanned, fulls, beyond, near, slackOnly, slackMost,
		st.Compactions, st.BytesMoved, st.CompactPasses, st.BlockBytes, st.BlockBytes-sized,
		p50, p99, waits[len(waits)-1], lockTimeout)
	if run.growth {
		summary += fmt.Sprintf("; growth: %d growths, from %d to %d bytes (object %d), %d entries at the end, "+
			"%d index migrations (capacity %d keys); the reader: %d reads, %d values validated, %d ranges, %d crawls "+
			"(%d of them while a migration started or ended), through %d migrations",
			st.Growths, st.InitialSize, st.Size, st.ObjectBytes, st.Entries, st.IndexMigrations, st.IndexCapacity,
			rep.reads, rep.hits, rep.ranges, rep.crawls, rep.spanning, rep.migrations)
	}
	t.Logf("torture: %s", summary)
	if run.growth {
		fmt.Printf("TORTURE-GROWTH kills=%d midmutation=%d repaired=%d acked=%d full=%d growths=%d size=%d migrations=%d entries=%d compactions=%d reads=%d ranges=%d crawls=%d spanning=%d p99=%v max=%v\n",
			kills, inflightKills, st.Recoveries-recoveredBefore, acks, fulls, st.Growths, st.Size, st.IndexMigrations, st.Entries,
			st.Compactions, rep.reads, rep.ranges, rep.crawls, rep.spanning, p99, waits[len(waits)-1])
	} else {
		fmt.Printf("TORTURE kills=%d midmutation=%d repaired=%d acked=%d full=%d beyond=%d nearest=%s slackonly=%d compactions=%d moved=%d slack=%d p50=%v p99=%v max=%v\n",
			kills, inflightKills, st.Recoveries-recoveredBefore, acks, fulls, beyond, strings.ReplaceAll(near, " bytes", ""),
			slackOnly, st.Compactions, st.BytesMoved, st.BlockBytes-sized, p50, p99, waits[len(waits)-1])
	}
	if len(owed) > 0 {
		what := "within the guarantee (live + block <= heap - Reserve)"
		if run.growth {
			what = "in a store that could grow (any is a failure here)"
		}
		t.Errorf("seed %d: %d ErrFull %s; the first ones:\n%s",
			seed, len(owed), what, strings.Join(owed[:min(len(owed), 10)], "\n"))
	}
	// Not a timing test: a generous bound that only a stuck lock exceeds.
	if max := waits[len(waits)-1]; max > lockTimeout+5*time.Second {
		t.Fatalf("a write after a kill waited %v", max)
	}
	return tortureResult{st: st, reader: rep}
}

// begunWriter returns writer i if it has begun (written its first line)
// or ended, else another that has, else, once one has, the first. It fails
// the test if none begins in 30 s (a hang guard only).
func begunWriter(t *testing.T, k, i int, begun, ended []chan struct{}) int {
	t.Helper()
	cases := []reflect.SelectCase{{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(time.After(30 * time.Second))}}
	for j := range begun {
		w := (i + j) % len(begun)
		select {
		case <-begun[w]:
			return w
		case <-ended[w]:
			return w // the check after the kill says how it ended
		default:
		}
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(begun[w])},
			reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(ended[w])})
	}
	c, _, _ := reflect.Select(cases)
	if c == 0 {
		t.Fatalf("kill %d: no writer wrote anything in 30 s", k)
	}
	return (i + (c-1)/2) % len(begun)
}

// scanOwn checks with Range that writer i's keys in s are model's, each
// with its value: every one seen (a key may be seen twice, when a
// migration moves it past the scan, but each time with its value), and no
// other key of the writer's.
func scanOwn(s *store.Store, i int, model map[string][]byte) error {
	prefix := fmt.Sprintf("t%d:", i)
	seen := map[string]bool{}
	var bad error
	err := s.Range(func(k, v []byte) bool {
		key := string(k)
		if !strings.HasPrefix(key, prefix) {
			return true
		}
		if want, ok := model[key]; !ok || string(v) != string(want) {
			bad = fmt.Errorf("Range saw %s = %.50q; acknowledged %.50q (present %v)", key, v, want, ok)
			return false
		}
		seen[key] = true
		return true
	})
	if err != nil {
		return fmt.Errorf("Range: %w", err)
	}
	if bad != nil {
		return bad
	}
	if len(seen) != len(model) {
		var missed []string
		for k := range model {
			if !seen[k] {
				missed = append(missed, k)
			}
		}
		sort.Strings(missed)
		return fmt.Errorf("Range missed %d of writer %d's %d keys, all present throughout it: %v",
			len(missed), i, len(model), missed[:min(len(missed), 10)])
	}
	return nil
}

// TestTortureValuesCatchTearing checks the value check the torture and
// compaction readers rely on: a whole value of its key passes; another
// key's value, a value cut short, and the head of one version with the
// tail of another of the same length do not.
func TestTortureValuesCatchTearing(t *testing.T) {
	a, b := tortureValue("k:1", "100-1", 300), tortureValue("k:1", "100-2", 300)
	if err := checkTortureValue("k:1", a); err != nil {
		t.Fatalf("a whole value: %v", err)
	}
	torn := append(slices.Clone(a[:150]), b[150:]...)
	for what, v := range map[string][]byte{
		"another key's":         tortureValue("k:2", "100-1", 300),
		"cut short":             a[:len(a)-1],
		"two versions, spliced": torn,
		"empty":                 {},
	} {
		if checkTortureValue("k:1", v) == nil {
			t.Errorf("%s value %.40q passed", what, v)
		}
	}
}

// liveBytesRE finds the live block bytes an ErrFull for want of bytes
// reports (README: ErrFull says which limit, with the live, free and
// reserved figures).
var liveBytesRE = regexp.MustCompile(`(\d+) bytes in live entries`)

// liveInFull is the store's live block bytes that an ErrFull message
// reports, or -1 if it reports none (an ErrFull for want of index room).
func liveInFull(msg string) int64 {
	m := liveBytesRE.FindStringSubmatch(msg)
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}
