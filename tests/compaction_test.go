package tests

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// compactionKills is SHMKV_COMPACTION_KILLS, or 40.
func compactionKills(t *testing.T) int {
	if v := os.Getenv("SHMKV_COMPACTION_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("SHMKV_COMPACTION_KILLS=%q: %v", v, err)
		}
		return n
	}
	return 40
}

// readerStats follows a reader process (compact-reader, torture-reader): when it last reported, and
// its last report.
type readerStats struct {
	seen atomic.Int64 // UnixNano of its last line
	last atomic.Value // string: its last line
	done chan struct{}
}

func followReader(c *child) *readerStats {
	r := &readerStats{done: make(chan struct{})}
	r.seen.Store(time.Now().UnixNano())
	r.last.Store("")
	go func() {
		for l := range c.Lines {
			r.seen.Store(time.Now().UnixNano())
			r.last.Store(l)
		}
		close(r.done)
	}()
	return r
}

// TestReadersDuringCompaction runs a writer process that overwrites 512 keys
// of a 1 MiB store with values whose sizes sweep from 8 bytes to 4 KiB and
// back, holding up to 92% of the heap live (inside the room guarantee),
// so that blocks merge and split and puts compact all the time; it also
// runs Store.Compact now and then.
// Two reader processes read random keys, and now and then the whole store
// with Range, and validate every value: each must be one written, whole,
// for its key. The writer is SIGKILLed at random moments and started again,
// SHMKV_COMPACTION_KILLS times (default 40). The readers must never see a
// torn or foreign value, never fail, and never stall (each reports every
// 100 ms; 10 s of silence fails the test); compaction must have run while
// they read, and the store must pass Check.
func TestReadersDuringCompaction(t *testing.T) {
	kills := compactionKills(t)
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 6))
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20, LockTimeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const stall = 10 * time.Second

	var readers []*child
	var follow []*readerStats
	for range 2 {
		c := spawn(t, "compact-reader", []string{name})
		readers = append(readers, c)
		follow = append(follow, followReader(c))
	}
	checkReaders := func(when string) {
		t.Helper()
		for i, c := range readers {
			select {
			case err := <-c.Done:
				t.Fatalf("%s: reader %d ended: %v (last said %q)", when, i, err, follow[i].last.Load())
			default:
			}
			if quiet := time.Since(time.Unix(0, follow[i].seen.Load())); quiet > stall {
				t.Fatalf("%s: reader %d silent for %v (last said %q)", when, i, quiet, follow[i].last.Load())
			}
		}
	}

	// The writer, and what it said: whether its last line was "compacting"
	// (it died inside Store.Compact), and what its compactions moved.
	var w *child
	var drained chan string
	var compacts, compactMoved int64
	startWriter := func() {
		w = spawn(t, "compact-writer", []string{name})
		w.Expect(t, "ready", 10*time.Second)
		drained = make(chan string, 1)
		go func(c *child, out chan string) {
			last := ""
			for l := range c.Lines {
				if f := strings.Fields(l); f[0] == "compacted" {
					moved, _ := strconv.ParseInt(f[1], 10, 64)
					atomic.AddInt64(&compacts, 1)
					atomic.AddInt64(&compactMoved, moved)
				}
				last = l
			}
			out <- last
		}(w, drained)
	}
	before := s.Stats()
	startWriter()
	inCompact := 0
	for k := range kills {
		time.Sleep(time.Duration(2+rng.IntN(80)) * time.Millisecond)
		w.Cmd.Process.Signal(syscall.SIGKILL)
		last := <-drained
		if err := <-w.Done; !killed(err) {
			t.Fatalf("kill %d (seed %d): the writer had already ended: %v", k, seed, err)
		}
		if last == "compacting" {
			inCompact++
		}
		if err := s.Put([]byte("parent"), []byte(strconv.Itoa(k))); err != nil {
			t.Fatalf("kill %d (seed %d): parent put: %v", k, seed, err)
		}
		if k%5 == 0 {
			if err := s.Check(); err != nil {
				t.Fatalf("kill %d (seed %d): %v", k, seed, err)
			}
		}
		checkReaders(fmt.Sprintf("kill %d", k))
		startWriter()
	}
	time.Sleep(20 * time.Millisecond)
	w.Cmd.Process.Signal(syscall.SIGKILL)
	<-drained
	if err := <-w.Done; !killed(err) {
		t.Fatalf("the writer had already ended: %v", err)
	}
	if err := s.Put([]byte("parent"), []byte("end")); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	checkReaders("the end")

	if err := s.Put([]byte("stop"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	var reads, hits, ranges []int
	for i, c := range readers {
		select {
		case <-follow[i].done:
		case <-time.After(stall):
			t.Fatalf("reader %d did not stop within %v of being told (last said %q)", i, stall, follow[i].last.Load())
		}
		if err := <-c.Done; err != nil {
			t.Fatalf("reader %d: %v", i, err)
		}
		f := strings.Fields(follow[i].last.Load().(string))
		if len(f) != 7 || f[0] != "done" {
			t.Fatalf("reader %d ended with %q", i, follow[i].last.Load())
		}
		reads, hits, ranges = append(reads, atoi(f[2])), append(hits, atoi(f[4])), append(ranges, atoi(f[6]))
	}
	if err := s.Check(); err != nil {
		t.Fatalf("at the end (seed %d): %v", seed, err)
	}
	var bad error
	if err := s.Range(func(k, v []byte) bool {
		if strings.HasPrefix(string(k), "c:") {
			bad = checkTortureValue(string(k), v)
		}
		return bad == nil
	}); err != nil || bad != nil {
		t.Fatalf("at the end: %v %v", err, bad)
	}

	t.Logf("%d kills (%d inside Store.Compact); compaction: %d transactions moved %d bytes in %d passes, "+
		"of which %d Store.Compact calls that finished moved %d (the rest: puts that found no room, and calls cut by a kill); "+
		"readers: %v reads, %v values validated, %v ranges",
		kills, inCompact, st.Compactions-before.Compactions, st.BytesMoved-before.BytesMoved,
		st.CompactPasses-before.CompactPasses, compacts, compactMoved, reads, hits, ranges)
	if st.Compactions == before.Compactions || st.BytesMoved == before.BytesMoved {
		t.Errorf("no compaction while the readers read (%d transactions, %d bytes moved)",
			st.Compactions-before.Compactions, st.BytesMoved-before.BytesMoved)
	}
	for i := range readers {
		if hits[i] < 10000 || ranges[i] < 3 {
			t.Errorf("reader %d validated only %d values in %d reads and %d ranges", i, hits[i], reads[i], ranges[i])
		}
	}
}
