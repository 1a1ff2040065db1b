//go:build shmkv_faults

package tests

import (
	"fmt"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// TestCrashAtEveryFaultPoint kills a helper process at each fault point of
// each mutation kind, while it holds the writer lock mid-transaction, and
// checks that the parent's next write proceeds within LockTimeout (plus a
// margin), that the mutation is wholly absent (killed before the commit) or
// wholly applied (after), that earlier writes are intact, and that the
// store passes Check.
func TestCrashAtEveryFaultPoint(t *testing.T) {
	const lockTimeout = 50 * time.Millisecond
	type mutation struct {
		op       string
		args     []string // after NAME OP KEY
		newValue string   // "" means deleted
	}
	muts := []mutation{
		{"put", []string{"fresh"}, "fresh"},       // insert of a new key
		{"put", []string{"replaced"}, "replaced"}, // overwrite
		{"del", nil, ""},
		{"cas", []string{"swapped", "v0"}, "swapped"},
		{"batch", []string{"batched"}, "batched"},
	}
	before := map[string]bool{"alloc": true, "filled": true, "intent": true}
	after := []string{"commit", "publish", "apply", "counts"}
	points := append([]string{"alloc", "filled", "intent"}, after...)
	for _, m := range muts {
		for _, p := range points {
			if m.op == "del" && (p == "alloc" || p == "filled") {
				continue // a delete allocates nothing
			}
			t.Run(m.op+"/"+p, func(t *testing.T) {
				name := storeName(t)
				s, err := store.Create(name, &store.Options{Size: 1 << 20, LockTimeout: lockTimeout})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				for i := range 20 {
					s.Put([]byte(fmt.Sprintf("other%d", i)), []byte("x"))
				}
				key := m.op + "-key"
				if m.op != "put" || m.newValue == "replaced" {
					s.Put([]byte(key), []byte("v0"))
				}
				s.Put([]byte("victim"), []byte("x"))
				old, oldErr := s.Get([]byte(key))
				c := spawn(t, "mutate", append([]string{name, m.op, key}, m.args...), "SHMKV_FAULT="+p+":1")
				err = c.wait(t, 10*time.Second)
				if !killed(err) {
					t.Fatalf("helper was not killed at %s: %v", p, err)
				}
				if h := s.Stats().Writer; !h.Held || h.Alive {
					t.Fatalf("after the kill the lock is %+v, want held by a dead process", h)
				}
				start := time.Now()
				if err := s.Put([]byte("next"), []byte("write")); err != nil {
					t.Fatal(err)
				}
				if d := time.Since(start); d > lockTimeout+500*time.Millisecond {
					t.Fatalf("next writer waited %v, LockTimeout is %v", d, lockTimeout)
				}
				v, err := s.Get([]byte(key))
				switch {
				case before[p]: // rolled back
					if string(v) != string(old) || (err == nil) != (oldErr == nil) {
						t.Fatalf("killed before commit: %s = %q, %v; want the old %q, %v", key, v, err, old, oldErr)
					}
				case m.newValue == "": // delete rolled forward
					if err == nil {
						t.Fatalf("killed after commit of a delete: %s still = %q", key, v)
					}
				default:
					if err != nil || string(v) != m.newValue {
						t.Fatalf("killed after commit: %s = %q, %v; want %q", key, v, err, m.newValue)
					}
				}
				if m.op == "batch" { // all five puts and the delete, or none
					_, verr := s.Get([]byte("victim"))
					for i := range 5 {
						v, err := s.Get([]byte(fmt.Sprintf("%s#%d", key, i)))
						if before[p] != (err != nil) || (err == nil && string(v) != m.newValue) || before[p] != (verr == nil) {
							t.Fatalf("batch killed at %s: %s#%d = %q, %v; victim: %v", p, key, i, v, err, verr)
						}
					}
				}
				for i := range 20 {
					if v, err := s.Get([]byte(fmt.Sprintf("other%d", i))); err != nil || string(v) != "x" {
						t.Fatalf("earlier write other%d lost: %q, %v", i, v, err)
					}
				}
				if st := s.Stats(); st.Recoveries != 1 {
					t.Fatalf("%d recoveries, want 1", st.Recoveries)
				}
				if err := s.Check(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestCrashDuringRecovery kills one writer after its commit, then kills the
// process recovering from that in the middle of its repair, and checks a
// third recovers the store to the committed state.
func TestCrashDuringRecovery(t *testing.T) {
	for _, p := range []string{"recover-undone", "publish", "apply", "counts"} {
		t.Run(p, func(t *testing.T) {
			name := storeName(t)
			s, err := store.Create(name, &store.Options{Size: 1 << 20, LockTimeout: 50 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.Put([]byte("k"), []byte("old"))
			// First helper dies after publishing, before freeing the old block.
			c := spawn(t, "mutate", []string{name, "put", "k", "new"}, "SHMKV_FAULT=apply:1")
			if err := c.wait(t, 10*time.Second); !killed(err) {
				t.Fatalf("first helper: %v", err)
			}
			// Second helper takes over, and dies during its repair: its first
			// pass through any of these points is inside recovery, which runs
			// before its own put.
			c2 := spawn(t, "mutate", []string{name, "put", "other", "x"}, "SHMKV_FAULT="+p+":1")
			err = c2.wait(t, 10*time.Second)
			if !killed(err) {
				t.Fatalf("second helper was not killed in recovery at %s: %v", p, err)
			}
			if v, err := s.Get([]byte("k")); err != nil || string(v) != "new" {
				t.Fatalf("k = %q, %v; want the committed \"new\"", v, err)
			}
			if err := s.Put([]byte("third"), []byte("x")); err != nil {
				t.Fatal(err)
			}
			if v, err := s.Get([]byte("k")); err != nil || string(v) != "new" {
				t.Fatalf("after repair k = %q, %v", v, err)
			}
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			if st := s.Stats(); st.Recoveries < 1 {
				t.Fatalf("recoveries %d", st.Recoveries)
			}
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
	if err := c.wait(t, 10*time.Second); !killed(err) {
		t.Fatalf("batch helper: %v", err)
	}
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "v2" {
		t.Fatalf("after the batch's publication k = %q, %v", v, err)
	}
	c2 := spawn(t, "mutate", []string{name, "put", "other", "x"}, "SHMKV_FAULT=publish:1")
	if err := c2.wait(t, 10*time.Second); !killed(err) {
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

// TestCrashDuringCreate kills a process while it creates a store (object
// sized, header not yet published) and checks that OpenOrCreate in another
// process initialises the store afresh rather than failing or waiting.
func TestCrashDuringCreate(t *testing.T) {
	name := storeName(t)
	c := spawn(t, "openorcreate", []string{name, "0"}, "SHMKV_FAULT=create:1")
	if err := c.wait(t, 10*time.Second); !killed(err) {
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
