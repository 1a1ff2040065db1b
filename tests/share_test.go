package tests

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmkv/shmkv/internal/shmtest"
	"github.com/shmkv/shmkv/store"
)

func TestTwoProcessesShareAStore(t *testing.T) {
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := spawn(t, "put", []string{name, "from-child", "hello", "shared", "1"})
	c.Expect(t, "ok", 10*time.Second)
	if err := c.Wait(t, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Get([]byte("from-child")); err != nil || string(v) != "hello" {
		t.Fatalf("parent reads the child's put: %q, %v", v, err)
	}
	if err := s.Put([]byte("from-parent"), []byte("hi")); err != nil {
		t.Fatal(err)
	}
	g := spawn(t, "get", []string{name, "from-parent"})
	if l := g.Expect(t, "value", 10*time.Second); l != "value hi" {
		t.Fatalf("child reads %q, want \"value hi\"", l)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReadersSeeOnlyWrittenValues runs writer and reader processes side by
// side: readers check every value they get is one a writer wrote for that
// key, whole; at the end every key holds its writer's last acknowledged
// value.
func TestReadersSeeOnlyWrittenValues(t *testing.T) {
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const writers, puts = 2, 20000
	var ws []*child
	for i := range writers {
		ws = append(ws, spawn(t, "writer", []string{name, strconv.Itoa(i), strconv.Itoa(puts)}))
	}
	var rs []*child
	for range 2 {
		rs = append(rs, spawn(t, "reader", []string{name, strconv.Itoa(writers), "1500"}))
	}
	for _, w := range ws {
		if err := w.Wait(t, time.Minute); err != nil {
			t.Fatalf("writer: %v", err)
		}
	}
	for _, r := range rs {
		l := r.Expect(t, "reads", time.Minute)
		t.Log("reader:", l)
		if err := r.Wait(t, time.Minute); err != nil {
			t.Fatalf("reader: %v", err)
		}
	}
	for w := range writers {
		for k := range 50 {
			i := puts - 50 + k
			key := fmt.Sprintf("w%d:%d", w, i%50)
			want := fmt.Sprintf("%s=%d%s", key, i, strings.Repeat("x", i%200))
			if v, err := s.Get([]byte(key)); err != nil || string(v) != want {
				t.Fatalf("%s = %.40q, %v; want the last acknowledged %.40q", key, v, err, want)
			}
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestOpenOrCreateRace(t *testing.T) {
	for round := range 5 {
		name := storeName(t)
		const n = 8
		var cs []*child
		for i := range n {
			cs = append(cs, spawn(t, "openorcreate", []string{name, strconv.Itoa(i)}))
		}
		for _, c := range cs {
			c.Expect(t, "ok", 20*time.Second)
			if err := c.Wait(t, 20*time.Second); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
		}
		s, err := store.Open(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if s.Len() != n {
			t.Fatalf("round %d: %d keys, want %d: the racers did not all land on one store", round, s.Len(), n)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
}

// TestKillWritersAtRandom SIGKILLs writer processes at random moments and
// checks, after each kill, that every acknowledged put is there, that the
// store passes Check and that a new writer proceeds.
func TestKillWritersAtRandom(t *testing.T) {
	kills := 20
	if testing.Short() {
		kills = 5
	}
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20, LockTimeout: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for k := range kills {
		id := strconv.Itoa(k % 3)
		w := spawn(t, "writer", []string{name, id, "0"})
		last := -1
		deadline := time.After(time.Duration(20+k*7%50) * time.Millisecond)
	read:
		for {
			select {
			case l := <-w.Lines:
				if n, ok := strings.CutPrefix(l, "ack "); ok {
					last, _ = strconv.Atoi(n)
				}
			case <-deadline:
				break read
			}
		}
		w.Cmd.Process.Signal(syscall.SIGKILL)
		for l := range w.Lines { // acknowledged before it died
			if n, ok := strings.CutPrefix(l, "ack "); ok {
				last, _ = strconv.Atoi(n)
			}
		}
		if err := <-w.Done; !killed(err) {
			t.Fatalf("writer ended with %v before the kill", err)
		}
		start := time.Now()
		if err := s.Put([]byte("after-kill"), []byte(strconv.Itoa(k))); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("a put after the kill took %v", d)
		}
		// Every acknowledged put is visible: the last 50 keys hold values at
		// least as new as acknowledged (the in-flight one may have landed).
		for i := max(0, last-49); i <= last; i++ {
			key := fmt.Sprintf("w%s:%d", id, i%50)
			v, err := s.Get([]byte(key))
			if err != nil {
				t.Fatalf("kill %d: acknowledged key %s: %v", k, key, err)
			}
			_, got, _ := strings.Cut(string(v), "=")
			if n, _ := strconv.Atoi(strings.TrimRight(got, "x")); n < i {
				t.Fatalf("kill %d: %s holds put %d, but put %d was acknowledged", k, key, n, i)
			}
		}
		if err := s.Check(); err != nil {
			t.Fatalf("kill %d: %v", k, err)
		}
	}
	t.Logf("%d kills, recoveries %d", kills, s.Stats().Recoveries)
}

func TestPermissionDenied(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20, Mode: 0o600})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The helper runs as nobody, so its binary must be reachable by nobody.
	cmd := shmtest.SelfAt(shmtest.CopySelf(t), "TestHelperProcess", "--", name)
	cmd.Env = append(os.Environ(), "SHMKV_ROLE=open")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "permission:") {
		t.Fatalf("another user opening a 0600 store: %q, want a permission error", out)
	}
	t.Logf("%s", out)
}
