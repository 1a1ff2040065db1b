package tests

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/store"
)

// linInput and linOutput are one operation of the history.
type linInput struct {
	kind, key, arg, old string // old "-": CAS only if absent
}

type linOutput struct {
	result, value string // result: ok, absent, mismatch
}

// linState is one key's value; "" when absent (values are never empty).
type linState string

var kvModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		for _, op := range history {
			k := op.Input.(linInput).key
			byKey[k] = append(byKey[k], op)
		}
		var parts [][]porcupine.Operation
		for _, p := range byKey {
			parts = append(parts, p)
		}
		return parts
	},
	Init: func() any { return linState("") },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(linState), input.(linInput), output.(linOutput)
		switch in.kind {
		case "get":
			if st == "" {
				return out.result == "absent", st
			}
			return out.result == "ok" && out.value == string(st), st
		case "put":
			return out.result == "ok", linState(in.arg)
		case "del":
			return (out.result == "absent") == (st == ""), linState("")
		case "cas":
			match := (in.old == "-" && st == "") || (in.old != "-" && string(st) == in.old)
			if match {
				return out.result == "ok", linState(in.arg)
			}
			return out.result == "mismatch", st
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		switch in.kind {
		case "get":
			return fmt.Sprintf("get(%s) -> %s %s", in.key, out.result, out.value)
		case "cas":
			return fmt.Sprintf("cas(%s, %s, %s) -> %s", in.key, in.old, in.arg, out.result)
		}
		return fmt.Sprintf("%s(%s, %s) -> %s", in.kind, in.key, in.arg, out.result)
	},
	DescribeState: func(state any) string {
		if state.(linState) == "" {
			return "absent"
		}
		return string(state.(linState))
	},
}

// TestLinearizable runs client processes doing concurrent get, put, delete
// and CAS, most on three keys and the rest on 60 more, each recording call
// and return times on CLOCK_MONOTONIC, and checks the merged history with
// porcupine against a key-value model, partitioned by key. Entries move
// under the operations: the store is the smallest there is (256 KiB), its
// heap is left in small pieces before the history (fragment), so that the
// clients' values, from a few bytes to 4 KiB, make puts compact; and the
// test runs Store.Compact every few milliseconds while the clients run.
// It requires that compaction moved entries during the history. A failing
// history is kept, with porcupine's visualisation, in tests/artifacts/.
func TestLinearizable(t *testing.T) {
	const clients = 4
	ops := linOps()
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fragment(t, s)
	before := s.Stats()
	stop, compacted, compactErr := make(chan struct{}), make(chan [2]int64, 1), make(chan error, 1)
	history, raw, err := linHistory(t, s, clients, ops, len(linBallast), func() {
		go compactor(s, stop, compacted, compactErr)
	})
	close(stop)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-compactErr; err != nil {
		t.Fatalf("compacting during the history: %v", err)
	}
	byCompact := <-compacted
	st := s.Stats()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	linCheck(t, name, history, raw)
	moves := st.Compactions - before.Compactions
	t.Logf("%d operations by %d processes on %d keys, %d of them concurrent with another process's: linearizable; "+
		"meanwhile %d compaction transactions moved %d bytes: %d by puts that found no room, %d (%d bytes) by Store.Compact",
		len(history), clients, len(linKeys)+len(linBallast), overlapping(history),
		moves, st.BytesMoved-before.BytesMoved, int64(moves)-byCompact[0], byCompact[0], byCompact[1])
	if moves == 0 {
		t.Errorf("no compaction during the history: the test did not exercise it")
	}
}

// linGrowthBallast is how many ballast keys TestLinearizableGrowth's
// clients write: enough for their puts to take the index past its first
// two tables, and the heap past 3/4 of a 256 KiB store's.
const linGrowthBallast = 800

// TestLinearizableGrowth is TestLinearizable in a store that grows: it
// starts empty at 256 KiB (a heap of 168 KiB, an index table for 258
// keys) and may grow to 4 MiB, and the clients' ballast is 800 keys, so
// that their puts grow the store (the live entries pass 3/4 of the heap;
// it grows once, to 2 MiB) and migrate the index twice (the keys pass 193
// and 387, 3/4 of the tables) while the history is recorded: reads,
// overwrites, deletes and CASes meet keys still in the old table, being
// moved, and in the new one, and values in blocks past the size the
// store had when a client last looked. There is no compactor: Compact
// would finish each migration at once. It requires that the store grew
// and the index migrated during the history.
func TestLinearizableGrowth(t *testing.T) {
	const clients = 4
	ops := linOps()
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 256 << 10, MaxSize: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := s.Stats()
	history, raw, err := linHistory(t, s, clients, ops, linGrowthBallast, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	linCheck(t, name, history, raw)
	growths, migrations := st.Growths-before.Growths, st.IndexMigrations-before.IndexMigrations
	t.Logf("%d operations by %d processes on %d keys, %d of them concurrent with another process's: linearizable; "+
		"meanwhile the store grew %d times, from %d to %d bytes, and the index migrated %d times (to %d keys; one under way at the end: %v), "+
		"%d entries at the end",
		len(history), clients, len(linKeys)+linGrowthBallast, overlapping(history),
		growths, before.Size, st.Size, migrations, st.IndexCapacity, st.IndexMigrating, st.Entries)
	if growths == 0 || migrations == 0 {
		t.Errorf("the store grew %d times and the index migrated %d times during the history: the test did not exercise growth",
			growths, migrations)
	}
}

// linOps is how many operations each client runs: SHMKV_LIN_OPS, default
// 2000.
func linOps() int {
	if v := os.Getenv("SHMKV_LIN_OPS"); v != "" {
		n, _ := strconv.Atoi(v)
		return n
	}
	return 2000
}

// linHistory starts clients lin-client processes on s, each to run ops
// operations with ballast ballast keys, sets them going once they are
// ready (the key "go"), calls during (if not nil), and returns the merged
// history and its lines as the clients printed them; an error if a client
// failed or the history is short.
func linHistory(t *testing.T, s *store.Store, clients, ops, ballast int, during func()) ([]porcupine.Operation, []string, error) {
	t.Helper()
	var cs []*child
	for i := range clients {
		c := spawn(t, "lin-client", []string{s.Name(), strconv.Itoa(i), strconv.Itoa(ops), strconv.Itoa(ballast)})
		c.Expect(t, "ready", 10*time.Second)
		cs = append(cs, c)
	}
	if err := s.Put([]byte("go"), []byte("1")); err != nil {
		return nil, nil, err
	}
	if during != nil {
		during()
	}
	var history []porcupine.Operation
	var raw []string
	for id, c := range cs {
		for l := range c.Lines {
			f := strings.Fields(l)
			if len(f) != 9 || f[0] != "op" {
				continue
			}
			raw = append(raw, fmt.Sprintf("%d %s", id, l))
			call, _ := strconv.ParseInt(f[5], 10, 64)
			ret, _ := strconv.ParseInt(f[6], 10, 64)
			value := f[8]
			if value == "-" {
				value = ""
			}
			history = append(history, porcupine.Operation{
				ClientId: id,
				Input:    linInput{kind: f[1], key: f[2], arg: f[3], old: f[4]},
				Call:     call,
				Output:   linOutput{result: f[7], value: value},
				Return:   ret,
			})
		}
		if err := <-c.Done; err != nil {
			return nil, nil, fmt.Errorf("client %d: %w", id, err)
		}
	}
	if len(history) != clients*ops {
		return nil, nil, fmt.Errorf("history has %d operations, want %d", len(history), clients*ops)
	}
	return history, raw, nil
}

// linCheck checks history with porcupine, and if it is not linearizable
// keeps it, with porcupine's visualisation, in tests/artifacts/NAME and
// fails the test.
func linCheck(t *testing.T, name string, history []porcupine.Operation, raw []string) {
	t.Helper()
	res, info := porcupine.CheckOperationsVerbose(kvModel, history, time.Minute)
	if res != porcupine.Ok {
		dir := filepath.Join("artifacts", name)
		os.MkdirAll(dir, 0o755)
		os.WriteFile(filepath.Join(dir, "history.txt"), []byte(strings.Join(raw, "\n")+"\n"), 0o644)
		porcupine.VisualizePath(kvModel, info, filepath.Join(dir, "history.html"))
		t.Fatalf("history of %d operations is %v; kept in %s (history.txt, history.html)", len(history), res, dir)
	}
}

// TestLinearizabilityModelRejects checks the checker can fail: histories a
// correct store could not produce are rejected.
func TestLinearizabilityModelRejects(t *testing.T) {
	op := func(kind, key, arg, old string, call, ret int64, result, value string) porcupine.Operation {
		return porcupine.Operation{Input: linInput{kind, key, arg, old}, Call: call, Return: ret,
			Output: linOutput{result, value}}
	}
	bad := map[string][]porcupine.Operation{
		"stale read": {
			op("put", "a", "x", "-", 0, 10, "ok", ""),
			op("get", "a", "-", "-", 20, 30, "absent", ""),
		},
		"read of a value never written": {
			op("put", "a", "x", "-", 0, 10, "ok", ""),
			op("get", "a", "-", "-", 20, 30, "ok", "y"),
		},
		"two CAS from absent both win": {
			op("cas", "a", "x", "-", 0, 10, "ok", ""),
			op("cas", "a", "y", "-", 5, 15, "ok", ""),
		},
		"value goes back": {
			op("put", "a", "x", "-", 0, 10, "ok", ""),
			op("put", "a", "y", "-", 20, 30, "ok", ""),
			op("get", "a", "-", "-", 40, 50, "ok", "x"),
		},
	}
	for what, h := range bad {
		if porcupine.CheckOperations(kvModel, h) {
			t.Errorf("%s: accepted", what)
		}
	}
	good := []porcupine.Operation{
		op("put", "a", "x", "-", 0, 10, "ok", ""),
		op("get", "a", "-", "-", 5, 30, "absent", ""), // concurrent with the put
		op("cas", "a", "y", "x", 40, 50, "ok", ""),
		op("del", "a", "-", "-", 60, 70, "ok", ""),
		op("del", "a", "-", "-", 80, 90, "absent", ""),
	}
	if !porcupine.CheckOperations(kvModel, good) {
		t.Error("a linearizable history was rejected")
	}
}

// overlapping counts the operations whose interval overlaps that of an
// operation of another client: the ones the check says something about.
func overlapping(h []porcupine.Operation) int {
	ops := slices.Clone(h)
	slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	hit := make([]bool, len(ops))
	for i := range ops {
		for j := i + 1; j < len(ops) && ops[j].Call <= ops[i].Return; j++ {
			if ops[j].ClientId != ops[i].ClientId {
				hit[i], hit[j] = true, true
			}
		}
	}
	n := 0
	for _, b := range hit {
		if b {
			n++
		}
	}
	return n
}

// fragment leaves s's heap in pieces before a linearizability history:
// filler entries (keys f<i>, which the clients never touch) of 160 bytes
// up to near the end of the heap, two of every three deleted again. The
// clients' values of up to a few KiB fit none of the holes, so their puts
// compact. It fails the test unless the room guarantee still covers the
// clients at their largest (every key at its biggest value, every block
// with the most slack, and a new one) besides the fillers, so that an
// ErrFull in the history is the store's failure.
func fragment(t *testing.T, s *store.Store) {
	t.Helper()
	const size = 160
	key := func(i int) []byte { return []byte(fmt.Sprintf("f%03d", i)) }
	st := s.Stats()
	block := blockOf(string(key(0)), make([]byte, size))
	n := int((st.HeapSize - 16<<10) / block)
	for i := range n {
		if err := s.Put(key(i), []byte(fmt.Sprintf("%0*d", size, i))); err != nil {
			t.Fatalf("filler %d of %d: %v", i, n, err)
		}
	}
	for i := range n {
		if i%3 != 0 {
			if err := s.Delete(key(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	st = s.Stats()
	worst := func(key string, most int) int64 {
		return blockOf(key, linValue(key, fmt.Sprintf("c9-99999.%d", most)))
	}
	live, largest := st.BlockBytes+blockOf("go", []byte("1")), int64(0)
	for _, k := range linKeys {
		live += worst(k, linMostHot)
		largest = max(largest, worst(k, linMostHot))
	}
	for _, k := range linBallast {
		live += worst(k, linMostBallast)
		largest = max(largest, worst(k, linMostBallast))
	}
	// A block can be up to 24 bytes bigger than its entry needs: the rest
	// of a free block too small to be a block of its own.
	entries := int64(n-n*2/3+len(linKeys)+len(linBallast)) + 1
	live += entries * (layout.EntrySize - layout.EntryAlign)
	reserve := min(2*largest, st.HeapSize/10)
	if live+largest > st.HeapSize-reserve {
		t.Fatalf("the history could fill the store past its guarantee: %d bytes live at most, a new block of %d, heap %d, Reserve %d",
			live, largest, st.HeapSize, reserve)
	}
	t.Logf("heap fragmented: %d fillers in %d bytes, the free space in %d-byte holes; at most %d bytes live in the history, %d short of HeapSize - Reserve",
		n-n*2/3, st.BlockBytes, 2*block, live, st.HeapSize-reserve-live-largest)
}

// compactor runs Store.Compact over and over, 2 ms apart, until stop is
// closed, and reports the transactions that moved entries and the first
// error: entries move under the clients' operations. It starts 20 ms in,
// leaving the fragmented heap to the clients' puts first.
func compactor(s *store.Store, stop chan struct{}, result chan [2]int64, errc chan error) {
	var moves, moved int64
	defer func() { result <- [2]int64{moves, moved} }()
	for wait := 20 * time.Millisecond; ; wait = 2 * time.Millisecond {
		select {
		case <-stop:
			errc <- nil
			return
		case <-time.After(wait):
		}
		var last int64
		_, err := s.CompactWithProgress(context.Background(), func(p store.CompactProgress) {
			if p.Moved > last {
				moves++
				moved += p.Moved - last
				last = p.Moved
			}
		})
		if err != nil {
			errc <- err
			return
		}
	}
}
