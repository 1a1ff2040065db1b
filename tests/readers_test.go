package tests

import (
	"errors"
	"math/rand/v2"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// TestKilledReadersLeaveNothing SIGKILLs reader processes thousands of
// times, at random moments, while a writer process runs. Readers hold no
// lock and write nothing, and each attached reader's process slot is freed
// by the kernel with its OFD lock: afterwards the writer is still going, the
// store passes Check, only live processes count as attached, and every
// slot can be claimed again.
func TestKilledReadersLeaveNothing(t *testing.T) {
	kills := 2000
	if testing.Short() {
		kills = 200
	}
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := spawn(t, "writer", []string{name, "0", "0"})
	w.Expect(t, "ack", 10*time.Second)
	go func() {
		for range w.Lines { // keep the writer's pipe drained
		}
	}()

	const parallel = 4
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	for p := range parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 5))
			for range kills / parallel {
				c := spawn(t, "attached-reader", []string{name})
				if rng.IntN(2) == 0 { // half of them die while still opening
					c.Expect(t, "attached", 10*time.Second)
				}
				time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
				c.Cmd.Process.Signal(syscall.SIGKILL)
				for range c.Lines {
				}
				if err := <-c.Done; err != nil && !killed(err) {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("reader: %v", err)
	}
	before := s.Stats().Commits
	time.Sleep(50 * time.Millisecond)
	if after := s.Stats().Commits; after == before {
		t.Fatal("the writer stopped making progress")
	}
	if st := s.Stats(); st.Attached != 2 {
		t.Fatalf("%d Stores attached, want 2 (this one and the writer)", st.Attached)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	// Every slot but the two in use can be claimed again.
	var open []*store.Store
	defer func() {
		for _, o := range open {
			o.Close()
		}
	}()
	for range store.NumProcesses - 2 {
		o, err := store.Open(name, nil)
		if err != nil {
			t.Fatalf("after %d kills, open number %d: %v", kills, len(open)+1, err)
		}
		open = append(open, o)
	}
	if _, err := store.Open(name, nil); !errors.Is(err, store.ErrBusy) {
		t.Fatalf("opening past the last slot: %v, want ErrBusy", err)
	}
	t.Logf("%d reader processes killed; writer at %d commits", kills, s.Stats().Commits)
}
