//go:build shmkv_faults

package tests

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// TestCrashDuringLoad kills a load at the steps of each of its
// transactions (begin, the last undo record before the commit, the
// commit, its first and a middle publication, the counts, the journal
// cleared, and after each) and of its store's creation. The store it
// leaves passes Check and holds exactly the dump's first N keys: the
// transactions committed before the kill, each of 1024 keys wholly in, and
// none of the one killed before its commit.
func TestCrashDuringLoad(t *testing.T) {
	const n = 5000 // 1024-key transactions: four whole, and 904
	dump := genDump(t, n, "v")
	_, order := readDump(t, dump)
	file := filepath.Join(t.TempDir(), "d")
	if err := os.WriteFile(file, dump, 0o600); err != nil {
		t.Fatal(err)
	}
	type point struct {
		at   string
		keys int // what the store must hold after a kill there
	}
	points := []point{{"create:1", 0}}
	batches := (n + 1023) / 1024
	for b := 1; b <= batches; b++ {
		before, after := (b-1)*1024, min(b*1024, n)
		first := (b-1)*1024 + 1
		points = append(points,
			point{fmt.Sprintf("begin:%d", b), before},
			point{fmt.Sprintf("prepared:%d", b), before},
			point{fmt.Sprintf("commit:%d", b), after},
			point{fmt.Sprintf("publish:%d", first), after},
			point{fmt.Sprintf("publish:%d", first+(after-before)/2), after},
			point{fmt.Sprintf("counts:%d", b), after},
			point{fmt.Sprintf("idle:%d", b), after},
			point{fmt.Sprintf("load-batch:%d", b), after},
		)
	}
	for _, p := range points {
		name := storeName(t)
		c := spawn(t, "load", []string{name, file}, "SHMKV_FAULT="+p.at)
		if err := c.Wait(t, 30*time.Second); !killed(err) {
			t.Fatalf("load was not killed at %s: %v", p.at, err)
		}
		if got := loadedPrefix(t, name, order, "v"); got != p.keys {
			t.Fatalf("load killed at %s left %d keys, want %d", p.at, got, p.keys)
		}
		store.Unlink(name)
	}
	t.Logf("a load killed at each of %d points left whole transactions and a store that passes Check", len(points))

	// load --replace killed: the name keeps the store it had, and the next
	// load removes the dead one's temporary store.
	name := storeName(t)
	old := genDump(t, genOld, "old")
	d, _ := store.NewDumpReader(bytes.NewReader(old))
	if _, err := store.Load(context.Background(), name, d, nil); err != nil {
		t.Fatal(err)
	}
	for _, at := range []string{"begin:1", "commit:3", "load-batch:5"} {
		c := spawn(t, "load", []string{name, file, "replace"}, "SHMKV_FAULT="+at)
		if err := c.Wait(t, 30*time.Second); !killed(err) {
			t.Fatalf("load --replace was not killed at %s: %v", at, err)
		}
		s, err := store.Open(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if gen, err := storeGeneration(s); err != nil || gen != "old" {
			t.Fatalf("load --replace killed at %s: the store is %q, %v", at, gen, err)
		}
		s.Close()
	}
	d, _ = store.NewDumpReader(bytes.NewReader(old))
	if _, err := store.Load(context.Background(), name, d, &store.LoadOptions{Replace: true}); err != nil {
		t.Fatal(err)
	}
	noSnapshotLeftovers(t, name)
}

// heldSnapshot is a dump in progress, blocked on its output, so that its
// snapshot stays taken until release.
type heldSnapshot struct {
	pr   *io.PipeReader
	done chan error
	out  bytes.Buffer
}

func holdSnapshot(t *testing.T, s *store.Store) *heldSnapshot {
	t.Helper()
	pr, pw := io.Pipe()
	h := &heldSnapshot{pr: pr, done: make(chan error, 1)}
	go func() {
		err := s.Dump(pw)
		pw.CloseWithError(err)
		h.done <- err
	}()
	// The dump's first write (its header) comes after the snapshot's
	// instant.
	var hdr [16]byte
	if _, err := io.ReadFull(pr, hdr[:]); err != nil {
		t.Fatal(err)
	}
	h.out.Write(hdr[:])
	return h
}

// release lets the dump finish and returns it.
func (h *heldSnapshot) release(t *testing.T) []byte {
	t.Helper()
	if _, err := io.Copy(&h.out, h.pr); err != nil {
		t.Fatal(err)
	}
	if err := <-h.done; err != nil {
		t.Fatal(err)
	}
	return h.out.Bytes()
}

// TestCrashDuringSnapshot kills a writer at each fault point of a
// mutation, including each page it copies for a snapshot, while a dump
// holds one: the store passes the crash checks, and the dump, let go
// afterwards, is exactly the store before the mutation.
func TestCrashDuringSnapshot(t *testing.T) {
	total := 0
	for _, m := range crashMutations {
		if m.name != "overwrite" && m.name != "delete-top" && m.name != "compact-put" {
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			name, s := crashStore(t, m)
			h := holdSnapshot(t, s)
			seq := faultSequence(t, append([]string{name}, m.args...))
			h.release(t)
			s.Close()
			copies := 0
			lastCommit := -1
			for i, at := range seq {
				if strings.HasPrefix(at, "commit:") {
					lastCommit = i
				}
				if strings.HasPrefix(at, "snapshot-copy:") {
					copies++
				}
			}
			if copies == 0 {
				t.Fatalf("the mutation copied no page for the snapshot: %v", seq)
			}
			for i, at := range seq {
				name, s := crashStore(t, m)
				want := map[string]string{}
				for k, v := range s.All() {
					want[string(k)] = string(v)
				}
				h := holdSnapshot(t, s)
				c := spawn(t, "mutate", append([]string{name}, m.args...), "SHMKV_FAULT="+at)
				if err := c.Wait(t, 10*time.Second); !killed(err) {
					t.Fatalf("helper was not killed at %s: %v", at, err)
				}
				verifyCrash(t, s, m, i >= lastCommit, at)
				got, _ := readDump(t, h.release(t))
				if len(got) != len(want) {
					t.Fatalf("killed at %s: the dump holds %d keys, the store held %d at its instant", at, len(got), len(want))
				}
				for k, v := range want {
					if got[k] != v {
						t.Fatalf("killed at %s: the dump's %q is %.20q, was %.20q at its instant", at, k, got[k], v)
					}
				}
				s.Close()
				store.Remove(name)
				noSnapshotLeftovers(t, name)
			}
			total += len(seq)
			t.Logf("%s: killed at each of %d fault points (%d page copies) during a dump", m.name, len(seq), copies)
		})
	}
	t.Logf("%d crash points during snapshots", total)
}
