package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/store"
)

// runStatJSON runs stat --json on the store name.
func runStatJSON(t *testing.T, name string) store.Stats {
	t.Helper()
	js := mustRun(t, "", "--store", name, "stat", "--json")
	var st struct {
		store.Stats
		Mode string // octal text in the CLI's JSON
	}
	if err := json.Unmarshal([]byte(js), &st); err != nil {
		t.Fatalf("stat --json: %v\n%s", err, js)
	}
	return st.Stats
}

// TestCreateSizes: create without --size made a fixed store of
// store.DefaultSize once that became the initial size of a growing store;
// --size alone is fixed, --max-size grows, and a maximum below the size is
// a usage error that creates nothing.
func TestCreateSizes(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	const M = 1 << 20
	for _, tc := range []struct {
		args          []string
		size, maxSize int64 // maxSize -1: above size (the size of /dev/shm)
	}{
		{nil, store.DefaultSize, -1},
		{[]string{"--size", "1M"}, 1 * M, 1 * M},
		{[]string{"--size", "1M", "--max-size", "64M"}, 1 * M, 64 * M},
		{[]string{"--max-size", "64M"}, store.DefaultSize, 64 * M},
		{[]string{"--max-size", "2M"}, 2 * M, 2 * M},
		{[]string{"--size", "2M", "--max-size", "2M"}, 2 * M, 2 * M},
	} {
		name := storeName(t)
		mustRun(t, "", append([]string{"--store", name, "create"}, tc.args...)...)
		st := runStatJSON(t, name)
		ok := st.Size == tc.size && st.InitialSize == tc.size && st.Growths == 0
		if tc.maxSize < 0 {
			ok = ok && st.MaxSize > st.Size
		} else {
			ok = ok && st.MaxSize == tc.maxSize
		}
		if !ok {
			t.Errorf("create %s: Size %d, InitialSize %d, MaxSize %d, Growths %d; want size %d, maximum %d (-1: above it)",
				strings.Join(tc.args, " "), st.Size, st.InitialSize, st.MaxSize, st.Growths, tc.size, tc.maxSize)
		}
	}

	// put makes the same default store as create.
	name := storeName(t)
	mustRun(t, "", "--store", name, "put", "k", "v")
	if st := runStatJSON(t, name); st.Size != store.DefaultSize || st.MaxSize <= st.Size {
		t.Errorf("put's store: Size %d, MaxSize %d; want %d, growing", st.Size, st.MaxSize, store.DefaultSize)
	}

	name = storeName(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--size", "8M", "--max-size", "4M"}, "--max-size 4.0 MiB is below --size 8.0 MiB"},
		{[]string{"--max-size", "0"}, "a store needs at least 256 KiB (--max-size 256K)"},
		{[]string{"--max-size", "2T"}, "above the maximum 1 TiB"},
		{[]string{"--max-size", "12Q"}, `bad size "12Q"`},
	} {
		stdout, stderr, code := runBin(t, "", append([]string{"--store", name, "create"}, tc.args...)...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("create %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
		if exists(name) {
			t.Fatalf("create %s created the store", strings.Join(tc.args, " "))
		}
	}
}

// TestGrow: grow makes the store bigger now, up to its maximum, and says
// clearly why it cannot go further.
func TestGrow(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	name := storeName(t)
	mustRun(t, "", "--store", name, "create", "--size", "1M", "--max-size", "64M")
	mustRun(t, "", "--store", name, "put", "k", "v")
	out := mustRun(t, "", "--store", name, "grow", "--size", "32M")
	if !strings.HasPrefix(out, "grew from 1.0 MiB to 32.0 MiB (33554432 bytes) in ") || !strings.HasSuffix(out, "; maximum size 64.0 MiB\n") {
		t.Errorf("grow --size 32M printed %q", out)
	}
	st := runStatJSON(t, name)
	if st.Size < 32<<20 || st.Growths == 0 || st.InitialSize != 1<<20 || st.MaxSize != 64<<20 {
		t.Errorf("after grow --size 32M: Size %d, Growths %d, InitialSize %d, MaxSize %d", st.Size, st.Growths, st.InitialSize, st.MaxSize)
	}
	if got := mustRun(t, "", "--store", name, "get", "k"); got != "v\n" {
		t.Errorf("after grow: get k = %q", got)
	}
	mustRun(t, "", "--store", name, "check")

	// Not smaller: nothing to do, exit 0.
	out = mustRun(t, "", "--store", name, "grow", "--size", "16M")
	if !strings.Contains(out, "nothing to grow") {
		t.Errorf("grow --size 16M of a 32 MiB store printed %q", out)
	}

	// Past the maximum: exit 3, one line, the store unchanged.
	stdout, stderr, code := runBin(t, "", "--store", name, "grow", "--size", "128M")
	if code != exitError || stdout != "" || !strings.Contains(stderr, "grow: 128.0 MiB is past the store's maximum size, 64.0 MiB") ||
		!strings.Contains(stderr, "create --max-size") {
		t.Errorf("grow past the maximum: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	oneLine(t, "grow past the maximum", name, stderr)
	if after := runStatJSON(t, name); after.Size != st.Size || after.Growths != st.Growths {
		t.Errorf("a refused grow changed the store: Size %d -> %d, Growths %d -> %d", st.Size, after.Size, st.Growths, after.Growths)
	}
	// Up to the maximum exactly.
	if out := mustRun(t, "", "--store", name, "grow", "--size", "64M"); !strings.Contains(out, "to 64.0 MiB") {
		t.Errorf("grow --size 64M printed %q", out)
	}

	// A store of a fixed size says so.
	fixed := storeName(t)
	mustRun(t, "", "--store", fixed, "create", "--size", "1M")
	_, stderr, code = runBin(t, "", "--store", fixed, "grow", "--size", "2M")
	if code != exitError || !strings.Contains(stderr, "past the store's maximum size, 1.0 MiB: it was created with a fixed size") {
		t.Errorf("grow of a fixed store: exit %d, %q", code, stderr)
	}
	oneLine(t, "grow of a fixed store", fixed, stderr)

	// Usage, and a missing store (created by nothing).
	missing := storeName(t)
	for _, tc := range []struct {
		args []string
		code int
		has  string
	}{
		{[]string{"grow"}, exitUsage, "want --size SIZE"},
		{[]string{"grow", "32M"}, exitUsage, "too many arguments"},
		{[]string{"grow", "--size", "0"}, exitUsage, "size 0"},
		{[]string{"grow", "--size", "2T"}, exitUsage, "above the maximum 1 TiB"},
		{[]string{"grow", "--size", "2M"}, exitNoStore, "no such store"},
	} {
		_, stderr, code := runBin(t, "", append([]string{"--store", missing}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.has) {
			t.Errorf("shmkv %s: exit %d, %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr, tc.code, tc.has)
		}
	}
	if exists(missing) {
		t.Error("grow created the store")
	}
}

// TestGrowNeedsWriteAccess: a user who may only read the store gets one
// line saying that growing needs write access, and whose the store is.
func TestGrowNeedsWriteAccess(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	name := storeName(t)
	mustRun(t, "", "--store", name, "create", "--size", "1M", "--max-size", "8M", "--mode", "0644")
	cmd := exec.Command(shmkvBinary(t), "--store", name, "grow", "--size", "4M")
	if os.Geteuid() == 0 {
		// root may write anything: run as nobody, from a copy of the
		// binary nobody may execute.
		dir, err := os.MkdirTemp("", "shmkv-cli-test-nobody-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		bin := filepath.Join(dir, "shmkv")
		// A hard link, not a copy: a copy just written may still be open
		// in a child another test forked meanwhile, and exec then fails
		// with ETXTBSY.
		err = os.Link(shmkvBinary(t), bin)
		if err != nil {
			var b []byte
			if b, err = os.ReadFile(shmkvBinary(t)); err == nil {
				err = os.WriteFile(bin, b, 0o755)
			}
		}
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			t.Fatal(err)
		}
		cmd.Path, cmd.Args[0] = bin, bin
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	} else if err := os.Chmod(filepath.Join(store.ShmDir, name), 0o444); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitError || stdout.Len() != 0 ||
		!strings.Contains(stderr.String(), "permission denied: growing needs write access to the store (owned by ") {
		t.Fatalf("grow without write access: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
	oneLine(t, "grow without write access", name, stderr.String())
	if st := runStatJSON(t, name); st.Size != 1<<20 || st.Growths != 0 {
		t.Errorf("a refused grow changed the store: Size %d, Growths %d", st.Size, st.Growths)
	}
}

// TestStatShowsGrowth: a store that writes made grow shows its size now,
// its initial and maximum size, its growths and its index in stat, in the
// same columns as the other lines; an object longer than the size (a
// writer that died while growing) gets a line saying so.
func TestStatShowsGrowth(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	name := storeName(t)
	mustRun(t, "", "--store", name, "create", "--size", "1M", "--max-size", "64M")
	value := strings.Repeat("v", 512<<10)
	for i := range 12 { // 6 MiB of values: several growths
		mustRun(t, value, "--store", name, "put", fmt.Sprintf("key%d", i))
	}
	st := runStatJSON(t, name)
	if st.Size <= 1<<20 || st.Growths == 0 || st.InitialSize != 1<<20 || st.MaxSize != 64<<20 || st.IndexBytes <= 0 {
		t.Fatalf("after 6 MiB of puts: Size %d, Growths %d, InitialSize %d, MaxSize %d, IndexBytes %d",
			st.Size, st.Growths, st.InitialSize, st.MaxSize, st.IndexBytes)
	}
	stat := mustRun(t, "", "--store", name, "stat")
	lines := statLines(t, stat)
	for key, want := range map[string]string{
		"size":         fmt.Sprintf("%s, %d bytes (heap ", units.FormatBytes(st.Size), st.Size),
		"initial size": "1.0 MiB, 1048576 bytes",
		"max size":     "64.0 MiB, 67108864 bytes (it grows as writes need room, up to this; shmkv grow grows it now)",
		"growths":      fmt.Sprint(st.Growths),
		"index":        fmt.Sprintf("%s for %d entries; grew 0 times", units.FormatBytes(st.IndexBytes), st.IndexCapacity),
		"entries":      "12 (no limit but the size)",
	} {
		if !strings.HasPrefix(lines[key], want) {
			t.Errorf("stat %s: %q, want %q", key, lines[key], want)
		}
	}
	if _, ok := lines["object"]; ok {
		t.Errorf("stat shows an object line for an object of the store's size:\n%s", stat)
	}

	// A writer killed between extending the object and publishing the
	// size leaves the object longer: stat says so, and the next growth
	// uses it.
	longer := st.Size + 4<<20
	if err := os.Truncate(filepath.Join(store.ShmDir, name), longer); err != nil {
		t.Fatal(err)
	}
	lines = statLines(t, mustRun(t, "", "--store", name, "stat"))
	if want := fmt.Sprintf("%s, %d bytes, longer than the size: a writer is growing the store now, or died while growing it; the next growth reuses the extra bytes",
		units.FormatBytes(longer), longer); lines["object"] != want {
		t.Errorf("stat object: %q, want %q", lines["object"], want)
	}
	mustRun(t, "", "--store", name, "check")
	mustRun(t, "", "--store", name, "grow", "--size", "64M")
	lines = statLines(t, mustRun(t, "", "--store", name, "stat"))
	if lines["max size"] != "64.0 MiB, 67108864 bytes (reached: it grows no more)" {
		t.Errorf("stat max size at the maximum: %q", lines["max size"])
	}
	if _, ok := lines["object"]; ok {
		t.Errorf("stat shows an object line after growth caught up with the object: %q", lines["object"])
	}

	// A fixed store.
	fixed := storeName(t)
	mustRun(t, "", "--store", fixed, "create", "--size", "1M")
	lines = statLines(t, mustRun(t, "", "--store", fixed, "stat"))
	if lines["max size"] != "1.0 MiB, 1048576 bytes (a fixed size: it never grows)" || lines["growths"] != "0" {
		t.Errorf("stat of a fixed store: max size %q, growths %q", lines["max size"], lines["growths"])
	}
}

// statLines reads stat's "key: value" lines, checking every value starts
// in the same column.
func statLines(t *testing.T, stat string) map[string]string {
	t.Helper()
	m := map[string]string{}
	col := -1
	for _, l := range strings.Split(strings.TrimSuffix(stat, "\n"), "\n") {
		key, rest, ok := strings.Cut(l, ": ")
		value := strings.TrimLeft(rest, " ")
		if !ok || value == "" {
			t.Fatalf("stat line %q is not \"key: value\"", l)
		}
		if c := len(l) - len(value); col < 0 {
			col = c
		} else if c != col {
			t.Errorf("stat line %q: its value starts at column %d, the others' at %d", l, c, col)
		}
		m[key] = value
	}
	return m
}
