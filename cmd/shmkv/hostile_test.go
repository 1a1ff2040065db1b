package main

// Regression tests for issue 9 at the command line: rm leaves alone what
// is not a store, and put does not read an endless stdin to its end.

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shmkv/shmkv/store"
)

// TestRmOnlyRemovesStores: /dev/shm holds other programs' objects;
// `shmkv rm` must not unlink one that is not a store (it used to unlink
// whatever had the name). --force does.
func TestRmOnlyRemovesStores(t *testing.T) {
	name := storeName(t)
	path := filepath.Join(store.ShmDir, name)
	if err := os.WriteFile(path, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run("", "--store", name, "rm")
	if code == 0 {
		t.Errorf("rm of a foreign object: exit 0, want an error")
	}
	if stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") {
		t.Errorf("rm of a foreign object: stdout %q, stderr %q; want one line on stderr", stdout, stderr)
	}
	if !strings.Contains(stderr, "not a shmkv store") {
		t.Errorf("rm of a foreign object: %q does not say it is not a store", stderr)
	}
	t.Logf("exit %d: %s", code, strings.TrimSpace(stderr))
	if b, err := os.ReadFile(path); err != nil || string(b) != "hello" {
		t.Fatalf("after rm the foreign object holds %q, %v; want it left alone", b, err)
	}

	if _, stderr, code := run("", "--store", name, "rm", "--force"); code != 0 {
		t.Fatalf("rm --force: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after rm --force: %v, want it gone", err)
	}

	// A store is removed as before.
	if _, stderr, code := run("", "--store", name, "create", "--size", "1M"); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := run("", "--store", name, "rm"); code != 0 {
		t.Fatalf("rm of a store: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("after rm of a store: %v, want it gone", err)
	}
}

// endless is stdin that never ends: it counts what was read from it. So
// that a put that reads it all cannot eat the machine, it gives up with an
// error after giveUp bytes.
type endless struct {
	n, giveUp int64
}

var errGaveUp = errors.New("endless stdin: read far past any value the store can hold")

func (r *endless) Read(p []byte) (int, error) {
	if r.n >= r.giveUp {
		return 0, errGaveUp
	}
	for i := range p {
		p[i] = 'x'
	}
	r.n += int64(len(p))
	return len(p), nil
}

// TestPutFromStdinIsBounded: `head -c 2G /dev/zero | shmkv put k` on a
// 1 MiB store read all 2 GiB (4.4 GiB RSS) before it said the value was too
// large. put must read at most one byte more than the store could hold.
func TestPutFromStdinIsBounded(t *testing.T) {
	name := storeName(t)
	if _, stderr, code := run("", "--store", name, "create", "--size", "1M"); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := run("", "--store", name, "put", "other", "v"); code != 0 {
		t.Fatal(stderr)
	}
	s, err := store.Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	limit := int64(s.ValueLimit(len("k")))
	before := s.Stats()
	s.Close()

	in := &endless{giveUp: 64 << 20}
	var stdout, stderr bytes.Buffer
	code := Main([]string{"--store", name, "put", "k"}, in, &stdout, &stderr)
	t.Logf("exit %d after reading %d bytes (the store holds at most %d for this key): %s", code, in.n, limit, strings.TrimSpace(stderr.String()))
	if code != exitError {
		t.Errorf("exit %d, want %d", code, exitError)
	}
	if msg := stderr.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, "too large") {
		t.Errorf("stderr %q: want one line saying the value is too large", msg)
	}
	if most := limit + 1 + 64<<10; in.n > most {
		t.Errorf("put read %d bytes of stdin; at most %d (the store's limit %d, one more byte, and a buffer) make sense", in.n, most, limit)
	}

	s, err = store.Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ok, err := s.Has([]byte("k")); ok || err != nil {
		t.Errorf("after the failed put, Has(k) = %v, %v", ok, err)
	}
	if v, err := s.Get([]byte("other")); err != nil || string(v) != "v" {
		t.Errorf("after the failed put, other = %q, %v", v, err)
	}
	after := s.Stats()
	if after.Commits != before.Commits || after.Entries != before.Entries {
		t.Errorf("the failed put changed the store: commits %d -> %d, entries %d -> %d", before.Commits, after.Commits, before.Entries, after.Entries)
	}
	if err := s.Check(); err != nil {
		t.Error(err)
	}
}
