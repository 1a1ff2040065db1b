//go:build shmkv_faults

package tests

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/store"
)

// faultSequence runs the helper once with SHMKV_FAULT_LOG and returns the
// fault points it passed, in order, as "name:n" (the n-th time it passed
// name), which is what SHMKV_FAULT takes.
func faultSequence(t *testing.T, args []string, env ...string) []string {
	t.Helper()
	log := filepath.Join(t.TempDir(), "faults")
	c := spawn(t, "mutate", args, append(env, "SHMKV_FAULT_LOG="+log)...)
	if err := c.Wait(t, 10*time.Second); err != nil {
		t.Fatalf("helper %.120v: %v", args, err)
	}
	b, _ := os.ReadFile(log)
	var seq []string
	seen := map[string]int{}
	for _, p := range strings.Fields(string(b)) {
		seen[p]++
		seq = append(seq, fmt.Sprintf("%s:%d", p, seen[p]))
	}
	if len(seq) == 0 {
		t.Fatalf("helper %v passed no fault point", args)
	}
	return seq
}

type crashMutation struct {
	name     string
	args     []string // after NAME
	key      string
	old      string // "" means absent before
	newValue string // "" means deleted
	batch    bool
	crowd    bool // fill the key's home bucket first, so it probes past it
	// eager: SHMKV_EAGER_FREE=1 for the run, so the free merges at once
	// where it would be lazy (an overwrite by a block of the same size).
	eager bool
	// setup names a growable store (growthCrashStore) for the mutations of
	// growth: "grow" (the put must grow the region), "index-start" (the
	// next transaction starts an index migration), "index-step" (one is
	// under way) or "index-finish" (the last step of the second, whose old
	// table is a heap block, comes next). "big" is crashStore's store,
	// made and run with free blocks big from 256 bytes (bigFreeBlock).
	setup string
}

// setEnv sets the environment m runs in, for the test and the processes
// it starts.
func (m crashMutation) setEnv(t *testing.T) {
	if m.eager {
		t.Setenv("SHMKV_EAGER_FREE", "1")
	}
	if m.setup == "big" {
		t.Setenv("SHMKV_BIG_FREE", "256")
	}
}

var crashMutations = []crashMutation{
	{"insert", []string{"put", "ins-key", "fresh"}, "ins-key", "", "fresh", false, false, false, ""},
	// A block of exactly a freed block's size: taken whole from its free
	// list, so the next block's SizePrevFree is cleared.
	{"insert-reuse", []string{"put", "reuse-key", strings.Repeat("r", 45)}, "reuse-key", "", strings.Repeat("r", 45), false, false, false, ""},
	// Larger than any free block: from the never-used space.
	{"insert-bump", []string{"put", "bump-key", strings.Repeat("u", 5000)}, "bump-key", "", strings.Repeat("u", 5000), false, false, false, ""},
	// ow-key and del-key sit between two free blocks: freeing them merges
	// with both.
	// The old and new blocks are of one size: the old one is freed lazily,
	// or, with eager, merges with both neighbours.
	{"overwrite", []string{"put", "ow-key", "replaced"}, "ow-key", "v0", "replaced", false, false, false, ""},
	{"overwrite-merge", []string{"put", "ow-key", "replaced"}, "ow-key", "v0", "replaced", false, false, true, ""},
	// Exactly the size of the lazy block at the bottom of the heap: taken
	// whole, touching no neighbour.
	{"insert-lazy", []string{"put", "lz-new", strings.Repeat("z", lzNewLen)}, "lz-new", "", strings.Repeat("z", lzNewLen), false, false, false, ""},
	{"overwrite-smaller", []string{"put", "big-key", "s"}, "big-key", strings.Repeat("B", 3000), "s", false, false, false, ""},
	{"delete", []string{"del", "del-key"}, "del-key", "v0", "", false, false, false, ""},
	{"delete-before-lazy", []string{"del", "lzpre"}, "lzpre", "p", "", false, false, false, ""},
	// The block just below the heap top: freeing it gives it back to the
	// never-used space.
	{"delete-top", []string{"del", "top-key"}, "top-key", topValue, "", false, false, false, ""},
	// With free blocks big from 256 bytes (SHMKV_BIG_FREE; from 4 GiB in
	// use), whose size is a word of its own: del-key merges with both its
	// neighbours into a big block; compact-put's moves split big gaps and
	// its frees merge into big blocks.
	{name: "delete-big", args: []string{"del", "del-key"}, key: "del-key", old: "v0", setup: "big"},
	{name: "compact-put-big", args: []string{"put", "c-key", strings.Repeat("c", 9000)}, key: "c-key", newValue: strings.Repeat("c", 9000), setup: "big"},
	{"cas", []string{"cas", "cas-key", "swapped", "v0"}, "cas-key", "v0", "swapped", false, false, false, ""},
	{"batch", []string{"batch", "b-key", "batched"}, "b-key", "", "batched", true, false, false, ""},
	// Two overwrites in one batch by values of their own size: the new
	// blocks are the two lazy ones on one stack, popped one after the
	// other, and the old ones are pushed on it one after the other, so the
	// batch changes the stack's head twice in each phase and logs it once
	// (txn.logged).
	{"batch-same-size", []string{"batchlz", "lz", strings.Repeat("w", lzLen)}, "lz", strings.Repeat("x", lzLen), strings.Repeat("w", lzLen), true, false, false, ""},
	{"insert-probing", []string{"put", "probe-key", "p"}, "probe-key", "", "p", false, true, false, ""},
	{"delete-probed", []string{"del", "probe-key"}, "probe-key", "v0", "", false, true, false, ""},
	// No free block holds it and the never-used space is down to its
	// reserve: the put compacts (moves an entry), then inserts.
	{"compact-put", []string{"put", "c-key", strings.Repeat("c", 9000)}, "c-key", "", strings.Repeat("c", 9000), false, false, false, ""},
	// The same from inside a batch, after two small puts that must be
	// planned again once compaction has run.
	{"compact-batch", []string{"batchbig", "cb-key", strings.Repeat("d", 9000)}, "cb-key", "", strings.Repeat("d", 9000), true, false, false, ""},
	// Growth: the put finds no room and the store grows (extend the
	// object, publish the size), then it inserts.
	{name: "grow-put", args: []string{"put", "g-key", strings.Repeat("G", 100000)}, key: "g-key", newValue: strings.Repeat("G", 100000), setup: "grow"},
	// The index: the transaction before the put starts a migration
	// (allocates a table, publishes the descriptor), moves two buckets, or
	// moves the last and drops the old table.
	{name: "index-start", args: []string{"put", "ix-key", "v1"}, key: "ix-key", newValue: "v1", setup: "index-start"},
	{name: "index-step", args: []string{"put", "ix-key", "v1"}, key: "ix-key", old: "v0", newValue: "v1", setup: "index-step"},
	{name: "index-step-delete", args: []string{"del", "ix-key"}, key: "ix-key", old: "v0", setup: "index-step"},
	{name: "index-finish", args: []string{"put", "ix-key", "v1"}, key: "ix-key", newValue: "v1", setup: "index-finish"},
}

const crashSize, crashEntries = 1 << 20, 600

// topValue is top-key's: larger than any free block crashStore leaves
// (the largest, with eager frees, is cgap1's merged with lz's, 6,144
// bytes), so that top-key is placed at the heap top.
var topValue = strings.Repeat("t", 6500)

// Values that make 120-byte blocks for keys "lz" and "lz-new".
const lzLen, lzNewLen = 120 - layout.EntryHeader - 2, 120 - layout.EntryHeader - 6

// crowd puts layout.BucketSlots keys whose home bucket is key's, so that
// key is placed in a later bucket and raises the Overflow counts between.
func crowd(t *testing.T, s *store.Store, key string) {
	g, err := layout.Plan(crashSize, 0, crashEntries)
	if err != nil {
		t.Fatal(err)
	}
	home := layout.Home(xxhash.Sum64String(key), g.NumBuckets)
	n := 0
	for i := 0; n < layout.BucketSlots; i++ {
		k := fmt.Sprintf("crowd%d", i)
		if layout.Home(xxhash.Sum64String(k), g.NumBuckets) == home {
			s.Put([]byte(k), []byte("c"))
			n++
		}
	}
}

// crashStore makes the store every crash run starts from: the same
// contents, so a mutation passes the same fault points each time. At the
// bottom of the heap, a lazy free block of 120 bytes (what insert-lazy
// takes, and compaction settles), then two free blocks of 6000 bytes with
// one small entry between, then a large one (what compaction joins, with
// one move); then free blocks of several sizes
// between live entries (what allocations split or take whole); m.key
// between two free blocks (what its free merges with); a filler that
// leaves the never-used space 8 KiB above its reserve; and top-key, the
// block just below the heap top (its value is larger than any free block).
func crashStore(t *testing.T, m crashMutation) (string, *store.Store) {
	if m.setup != "" && m.setup != "big" {
		return growthCrashStore(t, m)
	}
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: crashSize, MaxEntries: crashEntries, LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	put := func(k, v string) {
		if err := s.Put([]byte(k), []byte(v)); err != nil {
			t.Fatalf("setup: put %s: %v", k, err)
		}
	}
	del := func(k string) {
		if err := s.Delete([]byte(k)); err != nil {
			t.Fatalf("setup: delete %s: %v", k, err)
		}
	}
	put("lz", strings.Repeat("z", lzLen)) // a 120-byte block, made lazy below
	put("cgap1", strings.Repeat("g", 6000))
	put("cpin", "p")
	put("cgap2", strings.Repeat("g", 6000))
	// Too big for what the first move leaves of the gap: compaction stops
	// there, one move made.
	put("cblock", strings.Repeat("b", 7000))
	for i := range 20 {
		put(fmt.Sprintf("other%d", i), "x")
	}
	if m.crowd {
		crowd(t, s, m.key)
	}
	for i := range 5 {
		put(fmt.Sprintf("gap%d", i), strings.Repeat("g", 50+i*200))
		put(fmt.Sprintf("pin%d", i), "p")
	}
	put("lgap", strings.Repeat("l", 200))
	if m.old != "" && m.key != "top-key" {
		put(m.key, m.old)
	}
	put("rgap", strings.Repeat("r", 300))
	put("victim", "x")
	// lzpre, then a lazy block, then a tagged free one: deleting lzpre
	// merges with neither (a lazy block never merges) and tags the lazy
	// block SizePrevFree, which compaction's drain then merges back.
	put("lzpre", "p")
	put("lz2", strings.Repeat("z", lzLen))
	put("lzgap", strings.Repeat("g", 300))
	put("lz", strings.Repeat("y", lzLen)) // same size: the old block is lazy
	put("lz2", strings.Repeat("y", lzLen))
	del("lzgap")
	for _, k := range []string{"cgap1", "cgap2", "gap0", "gap1", "gap2", "gap3", "gap4", "lgap", "rgap"} {
		del(k)
	}
	if m.args[0] == "batchlz" {
		// Two lazy blocks on the 120-byte list for the mutation to take one
		// after the other: lq, a second key of lz's size, takes the one
		// there; then a batch overwriting both frees two.
		put("lq", strings.Repeat("y", lzLen))
		err := s.Update(func(b *store.Batch) error {
			if err := b.Put([]byte("lq"), []byte(m.old)); err != nil {
				return err
			}
			return b.Put([]byte("lz"), []byte(m.old))
		})
		if err != nil {
			t.Fatalf("setup: %v", err)
		}
	}
	st := s.Stats()
	reserve := st.HeapSize / 10
	after := layout.BlockSize(7, uint64(len(topValue))) // top-key's block
	put("filler", strings.Repeat("f", int(st.TailBytes-reserve-8192-64-int64(after))))
	put("top-key", topValue)
	if tail := s.Stats().TailBytes; tail < reserve+8192 || tail > reserve+8192+64 {
		t.Fatalf("setup: never-used space is %d bytes, want %d above the reserve %d", tail, 8192, reserve)
	}
	return name, s
}

// growthCrashStore makes the store a growth mutation starts from: a store
// of 1 MiB that may grow to 8 MiB, with the keys verifyCrash looks for,
// then brought to the state m.setup names.
func growthCrashStore(t *testing.T, m crashMutation) (string, *store.Store) {
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20, MaxSize: 8 << 20, LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	put := func(k, v string) {
		if err := s.Put([]byte(k), []byte(v)); err != nil {
			t.Fatalf("setup: put %s: %v", k, err)
		}
	}
	for i := range 20 {
		put(fmt.Sprintf("other%d", i), "x")
	}
	if m.old != "" {
		put(m.key, m.old)
	}
	if m.setup == "grow" {
		// Too little never-used space left for the put below, and live data
		// past 3/4 of the heap with it: a store that may grow grows then,
		// rather than compacts.
		st := s.Stats()
		put("filler", strings.Repeat("f", int(st.TailBytes-st.HeapSize/10-50000)))
		if st := s.Stats(); st.Growths != 0 {
			t.Fatalf("setup: the store grew already (%+v)", st)
		}
		return name, s
	}
	for i := 0; ; i++ {
		st := s.Stats()
		left := st.IndexOldBuckets - st.IndexMoved
		switch {
		case m.setup == "index-start" && st.Entries >= st.IndexCapacity*3/4,
			m.setup == "index-step" && st.IndexMigrating && st.IndexMoved > 0 && left > 4,
			m.setup == "index-finish" && st.IndexMigrating && left <= 2 && st.IndexMigrations > 0:
			return name, s
		case i > 100000:
			t.Fatalf("setup: never reached %s (%+v)", m.setup, st)
		}
		put(fmt.Sprintf("fill%05d", i), "f")
	}
}

// contents is every key of s with its value, exact while no writer runs.
func contents(t *testing.T, s *store.Store) map[string]string {
	t.Helper()
	kv := map[string]string{}
	if err := s.Range(func(k, v []byte) bool { kv[string(k)] = string(v); return true }); err != nil {
		t.Fatal(err)
	}
	return kv
}

// verifyUntouched checks, after a helper died during m and before any
// process repairs the store, that a reader (which takes no lock and never
// repairs) finds every key of before, the store's contents before m, that
// m does not change, with its value: a dead writer's half-done
// transaction, a migration's moves included, never hides a key from
// readers.
func verifyUntouched(t *testing.T, s *store.Store, before map[string]string, m crashMutation, at string) {
	t.Helper()
	for k, want := range before {
		if k == m.key || (m.batch && (k == "victim" || strings.HasPrefix(k, m.key+"#"))) || (m.args[0] == "batchlz" && k == "lq") {
			continue
		}
		if v, err := s.Get([]byte(k)); err != nil || string(v) != want {
			t.Fatalf("killed at %s, before the repair: %s = %.20q, %v; want %.20q (the mutation does not touch it)", at, k, v, err, want)
		}
	}
}

// verifyCrash checks a store after a helper died during m: the mutation is
// wholly there (committed) or wholly absent, earlier writes are intact, the
// next write proceeds within LockTimeout plus a margin, and Check passes.
func verifyCrash(t *testing.T, s *store.Store, m crashMutation, committed bool, at string) {
	t.Helper()
	start := time.Now()
	if err := s.Put([]byte("next"), []byte("write")); err != nil {
		t.Fatalf("killed at %s: next put: %v", at, err)
	}
	if d := time.Since(start); d > 50*time.Millisecond+time.Second {
		t.Fatalf("killed at %s: next writer waited %v", at, d)
	}
	want := m.old
	if committed {
		want = m.newValue
	}
	v, err := s.Get([]byte(m.key))
	if (want == "") != (err != nil) || (err == nil && string(v) != want) {
		t.Fatalf("killed at %s (committed %v): %s = %.20q, %v; want %.20q", at, committed, m.key, v, err, want)
	}
	if m.batch && m.args[0] == "batchlz" { // lq with lz
		want2 := m.old
		if committed {
			want2 = m.newValue
		}
		if v, err := s.Get([]byte("lq")); err != nil || string(v) != want2 {
			t.Fatalf("batch killed at %s (committed %v): lq = %.20q, %v; want %.20q", at, committed, v, err, want2)
		}
	} else if m.batch && m.args[0] == "batchbig" { // both small puts, or neither
		for i := range 2 {
			v, err := s.Get([]byte(fmt.Sprintf("%s#%d", m.key, i)))
			if committed != (err == nil) || (err == nil && string(v) != "small") {
				t.Fatalf("batch killed at %s: %s#%d = %q, %v", at, m.key, i, v, err)
			}
		}
	} else if m.batch { // all five puts and the delete, or none
		_, verr := s.Get([]byte("victim"))
		for i := range 5 {
			v, err := s.Get([]byte(fmt.Sprintf("%s#%d", m.key, i)))
			if committed != (err == nil) || (err == nil && string(v) != m.newValue) || committed != (verr != nil) {
				t.Fatalf("batch killed at %s: %s#%d = %q, %v; victim: %v", at, m.key, i, v, err, verr)
			}
		}
	}
	for i := range 20 {
		if v, err := s.Get([]byte(fmt.Sprintf("other%d", i))); err != nil || string(v) != "x" {
			t.Fatalf("killed at %s: earlier write other%d lost: %q, %v", at, i, v, err)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatalf("killed at %s: %v", at, err)
	}
}

// TestCrashAtEveryFaultPoint runs each kind of mutation once to list the
// fault points it passes (allocation, journal records, probe counts, the
// commit, each publication, frees, counts, the journal cleared), then, for
// each, runs it again in a helper process that SIGKILLs itself there, while
// it holds the writer lock, and verifies the store from another process.
func TestCrashAtEveryFaultPoint(t *testing.T) {
	total := 0
	for _, m := range crashMutations {
		t.Run(m.name, func(t *testing.T) {
			m.setEnv(t)
			name, s := crashStore(t, m)
			seq := faultSequence(t, append([]string{name}, m.args...))
			s.Close()
			// A put that compacts first commits the compaction's
			// transactions: only the last commit is the mutation's.
			lastCommit := -1
			for i, at := range seq {
				if strings.HasPrefix(at, "commit:") {
					lastCommit = i
				}
			}
			for i, at := range seq {
				committed := i >= lastCommit
				name, s := crashStore(t, m)
				before := contents(t, s)
				c := spawn(t, "mutate", append([]string{name}, m.args...), "SHMKV_FAULT="+at)
				if err := c.Wait(t, 10*time.Second); !killed(err) {
					t.Fatalf("helper was not killed at %s: %v", at, err)
				}
				if h := s.Stats().Writer; !h.Held || h.Alive {
					t.Fatalf("killed at %s: lock %+v, want held by a dead process", at, h)
				}
				verifyUntouched(t, s, before, m, at)
				verifyCrash(t, s, m, committed, at)
				// A kill after the journal was cleared leaves only the lock.
				wantRecoveries := uint64(1)
				if strings.HasPrefix(at, "idle:") || strings.HasPrefix(at, "compacted:") || strings.HasPrefix(at, "grow-extend:") {
					wantRecoveries = 0
				}
				if st := s.Stats(); st.Recoveries != wantRecoveries || st.TakeOvers != 1 {
					t.Fatalf("killed at %s: %d recoveries, %d take-overs; want %d and 1", at, st.Recoveries, st.TakeOvers, wantRecoveries)
				}
				s.Close()
				store.Remove(name)
			}
			total += len(seq)
			t.Logf("%s: killed at each of %d fault points: %s", m.name, len(seq), strings.Join(seq, " "))
		})
	}
	t.Logf("%d crash points in all", total)
}

// TestCrashDuringRecovery kills a writer mid-mutation, then kills the
// process that repairs the store at each fault point of its repair, and
// checks that a third repairs it to the same result. It does this for a
// writer killed before its commit (repair rolls back) and after (repair
// rolls forward).
func TestCrashDuringRecovery(t *testing.T) {
	mutation := func(name string) crashMutation {
		for _, c := range crashMutations {
			if c.name == name {
				return c
			}
		}
		t.Fatalf("no crash mutation %q", name)
		return crashMutation{}
	}
	cases := []struct {
		m         crashMutation
		first     string
		committed bool
	}{
		{mutation("overwrite"), "filled:1", false},
		{mutation("overwrite"), "publish:1", true},
		{mutation("overwrite"), "free-lazy:1", true},
		{mutation("overwrite-merge"), "freed:1", true},
		// A batch whose second pop and second push each change the stack's
		// head, which the phase logged already (one record for both).
		{mutation("batch-same-size"), "take-lazy:2", false},
		{mutation("batch-same-size"), "free-lazy:2", true},
		// A compaction's drain of the lazy blocks and its move, killed
		// before their commits and while the move's frees merge; then the
		// put's own transaction after compacting.
		{mutation("compact-put"), "move:1", false},
		{mutation("compact-put"), "merge-prev:1", false},
		{mutation("compact-put"), "drain:1", false},
		{mutation("compact-put"), "last publish", true},
		// Growth, killed between extending the object and publishing the
		// size, and in the publication's transaction; an index migration
		// killed while it publishes its descriptor, after it has moved
		// keys, and while it frees the old table.
		{mutation("grow-put"), "grow-publish:1", false},
		{mutation("index-start"), "index-gen:1", false},
		{mutation("index-step"), "migrate-move:1", false},
		{mutation("index-finish"), "index-free:1", false},
	}
	for _, tc := range cases {
		m, first, committed := tc.m, tc.first, tc.committed
		if first == "last publish" { // the put's own, after compaction's
			name, s := crashStore(t, m)
			for _, at := range faultSequence(t, append([]string{name}, m.args...)) {
				if strings.HasPrefix(at, "publish:") {
					first = at
				}
			}
			s.Close()
			store.Remove(name)
		}
		t.Run(m.name+"/"+first, func(t *testing.T) {
			m.setEnv(t)
			kill := func(name string) {
				c := spawn(t, "mutate", append([]string{name}, m.args...), "SHMKV_FAULT="+first)
				if err := c.Wait(t, 10*time.Second); !killed(err) {
					t.Fatalf("first helper: %v", err)
				}
			}
			name, s := crashStore(t, m)
			kill(name)
			// The repairing helper's own put comes after the repair: only the
			// points before its "begin" belong to the repair.
			seq := faultSequence(t, []string{name, "put", "other", "y"})
			s.Close()
			var repair []string
			for _, at := range seq {
				if strings.HasPrefix(at, "begin:") {
					break
				}
				repair = append(repair, at)
			}
			if len(repair) == 0 {
				t.Fatalf("no fault point in the repair (sequence %v)", seq)
			}
			for _, at := range repair {
				name, s := crashStore(t, m)
				before := contents(t, s)
				kill(name)
				c := spawn(t, "mutate", []string{name, "put", "other", "y"}, "SHMKV_FAULT="+at)
				if err := c.Wait(t, 10*time.Second); !killed(err) {
					t.Fatalf("repairing helper was not killed at %s: %v", at, err)
				}
				verifyUntouched(t, s, before, m, first+" then repair at "+at)
				verifyCrash(t, s, m, committed, first+" then repair at "+at)
				s.Close()
				store.Remove(name)
			}
			t.Logf("repair after a kill at %s: killed at each of its %d fault points", first, len(repair))
		})
	}
}

// TestCrashReplayNeverGoesBack: a batch that puts one key twice is killed
// after publishing, and the process replaying it is killed right after its
// first publication. A reader must still see the batch's last value: the
// replay must not publish the superseded one first.
func TestCrashReplayNeverGoesBack(t *testing.T) {
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20, LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := spawn(t, "mutate", []string{name, "batch2", "k", "v2"}, "SHMKV_FAULT=apply:1")
	if err := c.Wait(t, 10*time.Second); !killed(err) {
		t.Fatalf("batch helper: %v", err)
	}
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v2" {
		t.Fatalf("after the batch's publication k = %q, %v", v, err)
	}
	c2 := spawn(t, "mutate", []string{name, "put", "other", "x"}, "SHMKV_FAULT=publish:1")
	if err := c2.Wait(t, 10*time.Second); !killed(err) {
		t.Fatalf("replaying helper: %v", err)
	}
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v2" {
		t.Fatalf("mid-replay k = %q, %v: a reader that saw v2 now sees an older state", v, err)
	}
	if _, err := s.Get([]byte("transient")); err == nil {
		t.Fatal("mid-replay a key the batch put and deleted is visible")
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestBatchNeverPublishesSuperseded: a batch that puts one key twice (and
// puts then deletes another) is killed after each of its own publications.
// A reader must see the key absent, as before the batch, or with its last
// value, never the first: the writer applies from its own copy of the
// intents (writeIntent), which must carry the superseded marks the
// journal's do.
func TestBatchNeverPublishesSuperseded(t *testing.T) {
	for _, at := range []string{"publish:1", "publish:2"} {
		t.Run(at, func(t *testing.T) {
			name := storeName(t)
			s, err := store.Create(name, &store.Options{Size: 1 << 20, LockTimeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			c := spawn(t, "mutate", []string{name, "batch2", "k", "v2"}, "SHMKV_FAULT="+at)
			if err := c.Wait(t, 10*time.Second); !killed(err) {
				t.Fatalf("batch helper was not killed at %s: %v", at, err)
			}
			if v, err := s.Get([]byte("k")); err == nil && string(v) != "v2" {
				t.Fatalf("killed at %s, before the repair: k = %q, a value the batch superseded", at, v)
			}
			if _, err := s.Get([]byte("transient")); err == nil {
				t.Fatalf("killed at %s: a key the batch put and deleted is visible", at)
			}
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			if v, err := s.Get([]byte("k")); err != nil || string(v) != "v2" {
				t.Fatalf("after the repair k = %q, %v; want v2", v, err)
			}
		})
	}
}

// TestCrashDuringCreate kills a process while it creates a store (object
// sized, header not yet published) and checks that OpenOrCreate in another
// process initialises the store afresh rather than failing or waiting.
func TestCrashDuringCreate(t *testing.T) {
	name := storeName(t)
	c := spawn(t, "openorcreate", []string{name, "0"}, "SHMKV_FAULT=create:1")
	if err := c.Wait(t, 10*time.Second); !killed(err) {
		t.Fatalf("creating helper was not killed: %v", err)
	}
	if _, err := store.Open(name, nil); err == nil {
		t.Fatal("Open succeeded on a store whose creator died before publishing it")
	}
	s, err := store.OpenOrCreate(name, &store.Options{Size: 1 << 20})
	if err != nil {
		t.Fatalf("OpenOrCreate after the creator died: %v", err)
	}
	defer s.Close()
	if err := s.Put([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestLiveHolderIsNotTakenOver freezes a writer (SIGSTOP) in the middle of
// a transaction, holding the writer lock. Another writer must wait, well
// past LockTimeout, and not take the lock from a live process; once the
// holder runs again, both writes complete and the store passes Check.
func TestLiveHolderIsNotTakenOver(t *testing.T) {
	const lockTimeout = 50 * time.Millisecond
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20, LockTimeout: lockTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := spawn(t, "mutate", []string{name, "put", "k", "from-child"}, "SHMKV_FAULT=filled:1", "SHMKV_FAULT_ACTION=stop")
	c.Expect(t, "ready", 10*time.Second)
	// Wait until the child is stopped holding the lock.
	deadline := time.Now().Add(10 * time.Second)
	for !s.Writer().Held || !s.Writer().Alive {
		if time.Now().After(deadline) {
			t.Fatal("the child never held the writer lock")
		}
		time.Sleep(time.Millisecond)
	}
	done := make(chan error, 1)
	go func() { done <- s.Put([]byte("k2"), []byte("from-parent")) }()
	select {
	case err := <-done:
		t.Fatalf("the parent's put finished (%v) while a live process held the lock", err)
	case <-time.After(10 * lockTimeout):
	}
	if st := s.Stats(); st.TakeOvers != 0 {
		t.Fatalf("%d take-overs from a live holder", st.TakeOvers)
	}
	c.Cmd.Process.Signal(syscall.SIGCONT)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	c.Expect(t, "ok", 10*time.Second)
	if err := c.Wait(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"k": "from-child", "k2": "from-parent"} {
		if v, err := s.Get([]byte(k)); err != nil || string(v) != want {
			t.Fatalf("%s = %q, %v; want %q", k, v, err, want)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
