package tests

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// noSnapshotLeftovers fails if /dev/shm holds anything named after the
// store but the store: copy buffers, temporary stores.
func noSnapshotLeftovers(t *testing.T, name string) {
	t.Helper()
	des, _ := os.ReadDir(store.ShmDir)
	for _, de := range des {
		if strings.HasPrefix(de.Name(), name+".") {
			t.Errorf("left in %s: %s", store.ShmDir, de.Name())
		}
	}
}

// readDump reads a whole dump into a map, and its keys in dump order.
func readDump(t *testing.T, b []byte) (map[string]string, []string) {
	t.Helper()
	d, err := store.NewDumpReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	kv := map[string]string{}
	var order []string
	for {
		k, v, err := d.Next()
		if err == io.EOF {
			return kv, order
		}
		if err != nil {
			t.Fatal(err)
		}
		kv[string(k)] = string(v)
		order = append(order, string(k))
	}
}

func storeMap(t *testing.T, s *store.Store) map[string]string {
	t.Helper()
	kv := map[string]string{}
	if err := s.ForEach(func(k, v []byte) error { kv[string(k)] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	return kv
}

// TestDumpIsOneInstant dumps and backs up a store again and again while
// two writer processes change it in transactions that keep invariants
// across keys (pairs of keys equal, accounts with a constant sum), in a
// store small enough that their puts compact. Every dump, and every
// restored backup, must satisfy the invariants: each shows one instant.
func TestDumpIsOneInstant(t *testing.T) {
	const pairs, accounts = 200, 10
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 512 << 10, LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := seedInvariants(s, pairs, accounts); err != nil {
		t.Fatal(err)
	}
	var writers []*child
	for i := range 2 {
		c := spawn(t, "snap-writer", []string{name, fmt.Sprint("xy"[i : i+1]), fmt.Sprint(pairs), fmt.Sprint(accounts)})
		c.Expect(t, "ready", 10*time.Second)
		writers = append(writers, c)
	}
	before := s.Stats()
	deadline := time.Now().Add(3 * time.Second)
	dumps, backups := 0, 0
	for time.Now().Before(deadline) || dumps < 10 {
		var b bytes.Buffer
		if err := s.Dump(&b); err != nil {
			t.Fatalf("dump %d: %v", dumps, err)
		}
		kv, _ := readDump(t, b.Bytes())
		if err := checkInvariants(kv, pairs, accounts); err != nil {
			t.Fatalf("dump %d is not one instant: %v", dumps, err)
		}
		dumps++
		if dumps%3 != 0 {
			continue
		}
		b.Reset()
		if err := s.Backup(&b); err != nil {
			t.Fatalf("backup %d: %v", backups, err)
		}
		rname := storeName(t)
		if _, err := store.Restore(context.Background(), rname, &b, nil); err != nil {
			t.Fatalf("restoring backup %d, taken under writers: %v", backups, err)
		}
		r, err := store.Open(rname, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkInvariants(storeMap(t, r), pairs, accounts); err != nil {
			t.Fatalf("backup %d is not one instant: %v", backups, err)
		}
		r.Close()
		store.Remove(rname)
		backups++
	}
	for _, c := range writers {
		c.Cmd.Process.Kill()
		c.Wait(t, 10*time.Second)
	}
	after := s.Stats()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d dumps and %d backups, each one instant, while writers committed %d transactions (%d of them compaction's)",
		dumps, backups, after.Commits-before.Commits, after.Compactions-before.Compactions)
	if after.Compactions == before.Compactions {
		t.Errorf("no compaction ran: the test does not cover moves during a snapshot")
	}
	if after.Commits-before.Commits < 1000 {
		t.Fatalf("the writers committed only %d transactions: the test proves little", after.Commits-before.Commits)
	}
	noSnapshotLeftovers(t, name)
}

// TestStoppedOrKilledDumperNeverStopsWriters: a dump whose process stops
// (SIGSTOP) while writers change more pages than its copy buffer holds
// costs writers at most one wait of a second, then its snapshot breaks and
// they go on; one whose process dies is noticed by the next writer that
// needs it. Either way the store passes Check, nothing is left in
// /dev/shm, and the next dump works.
func TestStoppedOrKilledDumperNeverStopsWriters(t *testing.T) {
	// More pages than the copy buffer's 4096, all written by the writers.
	const pairs, accounts = 30000, 10
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 64 << 20, LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := seedInvariants(s, pairs, accounts); err != nil {
		t.Fatal(err)
	}
	for i := range pairs { // spread the pairs over the heap's pages
		if err := s.Put(pairKey('a', i), bytes.Repeat([]byte("s"), 300)); err != nil {
			t.Fatal(err)
		}
		s.Put(pairKey('b', i), bytes.Repeat([]byte("s"), 300))
	}
	w := spawn(t, "snap-writer", []string{name, "w", fmt.Sprint(pairs), fmt.Sprint(accounts)})
	w.Expect(t, "ready", 10*time.Second)
	// maxGap is the longest the writer went without an ack in d.
	maxGap := func(d time.Duration) (gap time.Duration, acks int) {
		last := time.Now()
		for end := time.Now().Add(d); time.Now().Before(end); {
			select {
			case l := <-w.Lines:
				if strings.HasPrefix(l, "ack") {
					gap = max(gap, time.Since(last))
					last = time.Now()
					acks++
				}
			case <-time.After(10 * time.Millisecond):
			}
		}
		return max(gap, time.Since(last)), acks
	}
	for _, how := range []string{"stopped", "killed"} {
		d := spawn(t, "dumper-stall", []string{name})
		d.Expect(t, "stalled", 20*time.Second)
		if how == "stopped" {
			d.Cmd.Process.Signal(syscall.SIGSTOP)
		} else {
			d.Cmd.Process.Kill()
		}
		gap, acks := maxGap(3 * time.Second)
		t.Logf("dumper %s: the writer's longest pause %v, %d acks in 3s", how, gap.Round(time.Millisecond), acks)
		if gap > 2500*time.Millisecond || acks < 5 {
			t.Fatalf("dumper %s: the writer paused %v (%d acks in 3s)", how, gap, acks)
		}
		d.Cmd.Process.Kill()
		d.Wait(t, 10*time.Second)
		if err := s.Dump(io.Discard); err != nil {
			t.Fatalf("dump after a dumper was %s: %v", how, err)
		}
	}
	w.Cmd.Process.Kill()
	w.Wait(t, 10*time.Second)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	noSnapshotLeftovers(t, name)
}

// genDump is a dump of n keys g<i> whose values are all gen.
func genDump(t *testing.T, n int, gen string) []byte {
	t.Helper()
	name := storeName(t)
	// 64 MiB: journals of 1024 intents, so that a load's transactions
	// are of 1024 keys.
	s, err := store.Create(name, &store.Options{Size: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Remove(name)
	defer s.Close()
	for i := 0; i < n; i += 500 {
		err := s.Update(func(b *store.Batch) error {
			for j := i; j < min(i+500, n); j++ {
				if err := b.Put(fmt.Appendf(nil, "g%d", j), []byte(gen)); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var b bytes.Buffer
	if err := s.Dump(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestLoadReplaceIsAtomic: reader processes open the store by name again
// and again while a load --replace runs, and while another is killed: each
// store they open is wholly the old one or wholly the new one.
func TestLoadReplaceIsAtomic(t *testing.T) {
	name := storeName(t)
	file := filepath.Join(t.TempDir(), "new.dump")
	if err := os.WriteFile(file, genDump(t, genNew, "new"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := genDump(t, genOld, "old")
	load := func(b []byte) {
		d, err := store.NewDumpReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.Load(context.Background(), name, d, &store.LoadOptions{Replace: true}); err != nil {
			t.Fatal(err)
		}
	}
	load(old)
	var readers []*child
	for range 2 {
		readers = append(readers, spawn(t, "generation-reader", []string{name, "3000"}))
	}
	time.Sleep(500 * time.Millisecond)
	// Killed mid-load: the name stays the old store.
	for range 3 {
		c := spawn(t, "load", []string{name, file, "replace"})
		c.Expect(t, "ready", 10*time.Second)
		time.Sleep(time.Duration(rand.IntN(40)) * time.Millisecond)
		c.Cmd.Process.Kill()
		c.Wait(t, 10*time.Second)
	}
	time.Sleep(200 * time.Millisecond)
	c := spawn(t, "load", []string{name, file, "replace"})
	if err := c.Wait(t, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	for _, r := range readers {
		line := r.Expect(t, "opens", 20*time.Second)
		if err := r.Wait(t, 10*time.Second); err != nil {
			t.Fatalf("reader: %v", err)
		}
		t.Log(line)
		var o, n int
		fmt.Sscanf(line, "opens old %d new %d", &o, &n)
		if o == 0 || n == 0 {
			t.Logf("the reader did not see both generations (%q): timing", line)
		}
	}
	s, err := store.Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if gen, err := storeGeneration(s); err != nil || gen != "new" {
		t.Fatalf("after the load: %q, %v", gen, err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	// The killed loads' temporary stores were removed by the last load.
	noSnapshotLeftovers(t, name)
}

// TestLoadKilledAtRandom SIGKILLs a load at random moments: the store it
// leaves passes Check and holds exactly the dump's first N keys, N a whole
// number of transactions (1024 keys each), each wholly in or out.
func TestLoadKilledAtRandom(t *testing.T) {
	const n = 100000
	dump := genDump(t, n, "v")
	_, order := readDump(t, dump)
	file := filepath.Join(t.TempDir(), "d")
	os.WriteFile(file, dump, 0o600)
	// How long a whole load takes, so the kills fall within one.
	name := storeName(t)
	c := spawn(t, "load", []string{name, file})
	c.Expect(t, "ready", 10*time.Second)
	start := time.Now()
	c.Expect(t, "ok", 30*time.Second)
	whole := time.Since(start)
	c.Wait(t, 10*time.Second)
	if got := loadedPrefix(t, name, order, "v"); got != n {
		t.Fatalf("a whole load: %d keys", got)
	}
	store.Unlink(name)
	seen := map[int]bool{}
	for round := range 8 {
		name := storeName(t)
		c := spawn(t, "load", []string{name, file})
		c.Expect(t, "ready", 10*time.Second)
		time.Sleep(time.Duration(rand.Int64N(int64(whole))))
		c.Cmd.Process.Kill()
		c.Wait(t, 10*time.Second)
		got := loadedPrefix(t, name, order, "v")
		seen[got] = true
		t.Logf("round %d: killed with %d of %d keys in (a whole load takes %v)", round, got, n, whole.Round(time.Millisecond))
		store.Unlink(name)
		noSnapshotLeftovers(t, name)
	}
	if len(seen) < 2 {
		t.Logf("every kill found the same count: timing")
	}
}

// loadedPrefix checks the store a killed load left: it passes Check and
// holds the first N keys of order, all with value v, N a multiple of 1024
// (or all). It returns N. A store the load had not finished creating
// counts as 0.
func loadedPrefix(t *testing.T, name string, order []string, v string) int {
	t.Helper()
	s, err := store.OpenOrCreate(name, &store.Options{Size: 16 << 20})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0
		}
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("the store a killed load left: %v", err)
	}
	got := s.Len()
	if got%1024 != 0 && got != len(order) {
		t.Fatalf("a killed load left %d keys: not whole transactions of 1024", got)
	}
	kv := storeMap(t, s)
	for i, k := range order[:got] {
		if kv[k] != v {
			t.Fatalf("key %d of the dump (%q) is %q, want %q: not a prefix", i, k, kv[k], v)
		}
	}
	return got
}
