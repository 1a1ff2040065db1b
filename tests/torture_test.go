package tests

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// tortureState is the parent's model of one writer's keys, fed by the
// writer's "pre"/"ack"/"full"/"miss" lines.
type tortureState struct {
	mu       sync.Mutex
	model    map[string][]byte // acknowledged value; absent key: deleted or never put
	inflight []string          // fields of the last "pre" not yet answered
	acks     int
}

func (ts *tortureState) feed(c *child) {
	for l := range c.lines {
		f := strings.Fields(l)
		ts.mu.Lock()
		switch f[0] {
		case "pre":
			ts.inflight = f
		case "ack":
			ts.acks++
			ts.inflight = nil
			if f[1] == "del" {
				delete(ts.model, f[2])
			} else {
				n, _ := strconv.Atoi(f[4])
				ts.model[f[2]] = tortureValue(f[2], f[3], n)
			}
		case "full", "miss":
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

// TestTorture runs writer processes doing random put/delete/CAS (value
// sizes that force reuse of freed blocks and reach ErrFull) and a reader
// process validating every value it reads, and SIGKILLs a writer at a
// random moment, again and again. After each kill it checks the killed
// writer's keys against the model built from its acknowledgements (the one
// mutation in flight may have gone either way), that a new write proceeds,
// and every few kills that the store passes Check. SHMKV_TORTURE_KILLS sets
// the number of kills (default 300).
func TestTorture(t *testing.T) {
	kills := tortureKills(t)
	const writers = 2
	const lockTimeout = 20 * time.Millisecond
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 4))
	t.Logf("seed %d, %d kills", seed, kills)

	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20, LockTimeout: lockTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	states := make([]*tortureState, writers)
	procs := make([]*child, writers)
	fed := make([]chan struct{}, writers)
	start := func(i int) {
		procs[i] = spawn(t, "torture-writer", []string{name, strconv.Itoa(i)})
		fed[i] = make(chan struct{})
		go func(c *child, ts *tortureState, done chan struct{}) {
			ts.feed(c)
			close(done)
		}(procs[i], states[i], fed[i])
	}
	for i := range writers {
		states[i] = &tortureState{model: map[string][]byte{}}
		start(i)
	}
	reader := spawn(t, "torture-reader", []string{name, strconv.Itoa(writers)})

	var waits []time.Duration
	recoveredBefore := s.Stats().Recoveries
	inflightKills := 0
	for k := range kills {
		time.Sleep(time.Duration(1+rng.IntN(15)) * time.Millisecond)
		i := rng.IntN(writers)
		procs[i].cmd.Process.Signal(syscall.SIGKILL)
		<-fed[i]
		if err := <-procs[i].done; !killed(err) {
			t.Fatalf("kill %d: writer %d had already ended: %v", k, i, err)
		}
		killedAt := time.Now()
		if err := s.Put([]byte("parent"), []byte(strconv.Itoa(k))); err != nil {
			t.Fatalf("kill %d: parent put: %v", k, err)
		}
		waits = append(waits, time.Since(killedAt))

		ts := states[i]
		if ts.inflight != nil {
			inflightKills++
		}
		for key := 0; key < tortureKeys; key++ {
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
			}
			if !ok {
				t.Fatalf("kill %d (seed %d): %s = %.50q (%v); acknowledged %.50q (present %v); in flight %v",
					k, seed, key, got, err, want, had, ts.inflight)
			}
			if err == nil {
				ts.model[key] = got
			} else {
				delete(ts.model, key)
			}
		}
		ts.inflight = nil
		if k%10 == 0 || k == kills-1 {
			if err := s.Check(); err != nil {
				t.Fatalf("kill %d (seed %d): %v", k, seed, err)
			}
		}
		select {
		case err := <-reader.done:
			t.Fatalf("reader process ended: %v", err)
		default:
		}
		start(i)
	}
	acks := 0
	for i := range writers {
		procs[i].cmd.Process.Signal(syscall.SIGKILL)
		<-fed[i]
		acks += states[i].acks
	}
	reader.cmd.Process.Signal(syscall.SIGKILL)
	if err := <-reader.done; !killed(err) {
		t.Fatalf("reader process: %v", err)
	}
	slices.Sort(waits)
	p50, p99 := waits[len(waits)/2], waits[len(waits)*99/100]
	st := s.Stats()
	t.Logf("torture: %d kills (%d mid-mutation, %d journals repaired), %d acknowledged mutations modelled; "+
		"kill to next write: p50 %v, p99 %v, max %v (LockTimeout %v)",
		kills, inflightKills, st.Recoveries-recoveredBefore, acks, p50, p99, waits[len(waits)-1], lockTimeout)
	fmt.Printf("TORTURE kills=%d midmutation=%d repaired=%d acked=%d p50=%v p99=%v max=%v\n",
		kills, inflightKills, st.Recoveries-recoveredBefore, acks, p50, p99, waits[len(waits)-1])
	// Not a timing test: a generous bound that only a stuck lock exceeds.
	if max := waits[len(waits)-1]; max > lockTimeout+5*time.Second {
		t.Fatalf("a write after a kill waited %v", max)
	}
}
