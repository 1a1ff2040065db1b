package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"

	"github.com/shmkv/shmkv/store"
)

// fillForCLI puts binary keys and values, an empty value and the largest
// key into a new store, and returns what it holds.
func fillForCLI(t *testing.T, name string) map[string]string {
	t.Helper()
	s, err := store.Create(name, &store.Options{Size: 4 << 20, Mode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := map[string]string{
		"\x00\xff\n":                          "\x00\x01\x02",
		"empty":                               "",
		strings.Repeat("K", store.MaxKeySize): "largest key",
	}
	for i := range 2000 {
		want[fmt.Sprintf("key-%d", i)] = strings.Repeat("v", i%300)
	}
	for k, v := range want {
		if err := s.Put([]byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	return want
}

func storeContents(t *testing.T, name string) (map[string]string, store.Stats) {
	t.Helper()
	s, err := store.Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for k, v := range s.All() {
		m[string(k)] = string(v)
	}
	return m, s.Stats()
}

func sameMap(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d keys, want %d", what, len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("%s: key %s differs", what, keyString(k))
		}
	}
}

// noTempFiles fails if dir holds anything but want.
func noTempFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	des, _ := os.ReadDir(dir)
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Fatalf("%s holds %v, want %v", dir, names, want)
	}
}

func TestDumpLoadBackupRestoreCommands(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	src := storeName(t)
	want := fillForCLI(t, src)
	dir := t.TempDir()
	dumpFile, backupFile := filepath.Join(dir, "s.dump"), filepath.Join(dir, "s.backup")

	out := mustRun(t, "", "--store", src, "dump", dumpFile)
	if !strings.HasPrefix(out, fmt.Sprintf("dump of %d keys written to %s", len(want), dumpFile)) {
		t.Fatalf("dump printed %q", out)
	}
	out = mustRun(t, "", "--store", src, "backup", backupFile)
	if !strings.HasPrefix(out, fmt.Sprintf("backup of %d keys written to %s", len(want), backupFile)) {
		t.Fatalf("backup printed %q", out)
	}
	noTempFiles(t, dir, "s.backup", "s.dump")

	// load FILE creates the store with the dumped store's options.
	a := storeName(t)
	out = mustRun(t, "", "--store", a, "load", dumpFile)
	if !strings.HasPrefix(out, fmt.Sprintf("loaded %d keys", len(want))) {
		t.Fatalf("load printed %q", out)
	}
	got, st := storeContents(t, a)
	sameMap(t, "loaded", got, want)
	if st.Size != 4<<20 || st.Mode != 0o640 {
		t.Fatalf("loaded store: size %d, mode %v; want the source's", st.Size, st.Mode)
	}
	// Again: the store exists.
	_, stderr, code := runBin(t, "", "--store", a, "load", dumpFile)
	if code != exitError || !strings.Contains(stderr, "--replace") || !strings.Contains(stderr, "--merge") {
		t.Fatalf("load over an existing store: exit %d, %q", code, stderr)
	}
	oneLine(t, "load over a store", a, stderr)
	// dump - | load - (stdin), with --size.
	b := storeName(t)
	d, _, code := runBin(t, "", "--store", src, "dump")
	if code != 0 {
		t.Fatalf("dump to stdout: exit %d", code)
	}
	mustRun(t, d, "--store", b, "load", "--size", "8M")
	got, st = storeContents(t, b)
	sameMap(t, "loaded from stdin", got, want)
	// The source was fixed at 4 MiB (MaxSize 4 MiB): --size above it
	// raises the maximum with it, rather than failing on a maximum the
	// user never set.
	if st.Size != 8<<20 || st.MaxSize != 8<<20 {
		t.Fatalf("--size 8M: the store has %d bytes, at most %d", st.Size, st.MaxSize)
	}
	// --replace over it, --merge into it.
	s, _ := store.Open(b, nil)
	s.Put([]byte("extra"), []byte("x"))
	s.Close()
	mustRun(t, d, "--store", b, "load", "--merge", "-")
	got, _ = storeContents(t, b)
	if len(got) != len(want)+1 || got["extra"] != "x" {
		t.Fatalf("--merge: %d keys, extra %q", len(got), got["extra"])
	}
	out = mustRun(t, d, "--store", b, "load", "--replace", "-")
	if !strings.Contains(out, "swapped in") {
		t.Fatalf("load --replace printed %q", out)
	}
	got, _ = storeContents(t, b)
	sameMap(t, "replaced", got, want)

	// restore.
	r := storeName(t)
	out = mustRun(t, "", "--store", r, "restore", backupFile)
	if !strings.Contains(out, "check passed") {
		t.Fatalf("restore printed %q", out)
	}
	got, st = storeContents(t, r)
	sameMap(t, "restored", got, want)
	if st.Mode != 0o640 {
		t.Fatalf("restored mode %v", st.Mode)
	}
	_, stderr, code = runBin(t, "", "--store", r, "restore", backupFile)
	if code != exitError || !strings.Contains(stderr, "--replace") {
		t.Fatalf("restore over an existing store: exit %d, %q", code, stderr)
	}
	mustRun(t, "", "--store", r, "restore", "--replace", backupFile)
	mustRun(t, "", "--store", src, "check")
}

func TestDumpAndRestoreErrors(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	src := storeName(t)
	fillForCLI(t, src)
	dir := t.TempDir()
	dumpFile, backupFile := filepath.Join(dir, "s.dump"), filepath.Join(dir, "s.backup")
	mustRun(t, "", "--store", src, "dump", dumpFile)
	mustRun(t, "", "--store", src, "backup", backupFile)
	dump, _ := os.ReadFile(dumpFile)
	backup, _ := os.ReadFile(backupFile)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newer := bytes.Clone(dump)
	binary.LittleEndian.PutUint32(newer[8:], store.DumpVersion+1)
	hl := binary.LittleEndian.Uint32(newer[12:])
	binary.LittleEndian.PutUint64(newer[hl-8:], xxhash.Sum64(newer[:hl-8]))
	flipped := bytes.Clone(backup)
	flipped[len(flipped)/2] ^= 1

	dst := storeName(t)
	cases := []struct {
		args []string
		code int
		has  string
	}{
		{[]string{"load", filepath.Join(dir, "missing")}, exitError, "cannot read " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{[]string{"load", dir}, exitError, "is a directory"},
		{[]string{"load", write("newer", newer)}, exitError, "newer shmkv"},
		{[]string{"load", write("short", dump[:len(dump)-30])}, exitError, "truncated"},
		{[]string{"load", backupFile}, exitError, "restore it"},
		{[]string{"load", "--size", "1T", dumpFile}, exitError, "does not fit in /dev/shm"},
		{[]string{"load", "--size", "8M", "--max-size", "4M", dumpFile}, exitUsage, "--max-size 4.0 MiB is below --size 8.0 MiB"},
		{[]string{"restore", write("flipped", flipped)}, exitError, "checksum"},
		{[]string{"restore", write("cut", backup[:len(backup)/3])}, exitError, "truncated"},
		{[]string{"restore", dumpFile}, exitError, "load it"},
		{[]string{"--store", src, "dump", filepath.Join(dir, "no-such-dir", "x")}, exitError, "cannot write " + filepath.Join(dir, "no-such-dir", "x") + ": no such file or directory"},
		{[]string{"--store", "shmkv-cli-test-no-such-store", "dump", filepath.Join(dir, "s.dump")}, exitNoStore, "no such store"},
		{[]string{"--store", "shmkv-cli-test-no-such-store", "backup"}, exitUsage, "too few arguments"},
	}
	for _, c := range cases {
		_, stderr, code := runBin(t, "", append([]string{"--store", dst}, c.args...)...)
		if code != c.code || !strings.Contains(stderr, c.has) {
			t.Errorf("shmkv %s: exit %d, %q; want exit %d and %q", strings.Join(c.args, " "), code, stderr, c.code, c.has)
		}
		if code == exitError && strings.Count(stderr, "\n") != 1 {
			t.Errorf("shmkv %s: not one line: %q", strings.Join(c.args, " "), stderr)
		}
		if exists(dst) {
			t.Fatalf("shmkv %s left the store %s", strings.Join(c.args, " "), dst)
		}
	}
	// The failed dump left the existing file as it was, and no temporary.
	if b, _ := os.ReadFile(dumpFile); !bytes.Equal(b, dump) {
		t.Fatal("a failed dump changed the existing file")
	}
	// A full disk: stdout is /dev/full.
	full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
	if err != nil {
		t.Skip(err)
	}
	defer full.Close()
	var errb bytes.Buffer
	code := Main([]string{"--store", src, "dump"}, nil, full, &errb)
	if code != exitError || !strings.Contains(errb.String(), "no space left on device") || !strings.Contains(errb.String(), "disk is full") {
		t.Fatalf("dump to a full disk: exit %d, %q", code, errb.String())
	}
	oneLine(t, "dump to a full disk", src, errb.String())
	mustRun(t, "", "--store", src, "check")
}

// TestLoadOptions: load keeps the dumped store's initial and maximum size
// unless --size or --max-size says otherwise, and never makes a store whose
// maximum is below its size.
func TestLoadOptions(t *testing.T) {
	const M = 1 << 20
	for _, tc := range []struct {
		name                  string
		dumpSize, dumpMax     int64 // the dump's options; dumpMax 0: a dump of format 1
		size, maxSize         int64 // --size, --max-size; 0: not given
		wantSize, wantMaxSize int64
	}{
		{"as dumped, fixed", 4 * M, 4 * M, 0, 0, 4 * M, 4 * M},
		{"as dumped, growing", 8 * M, 1 << 30, 0, 0, 8 * M, 1 << 30},
		{"format 1: fixed, as it was", 4 * M, 0, 0, 0, 4 * M, 0},
		{"--size above a fixed maximum raises it", 4 * M, 4 * M, 8 * M, 0, 8 * M, 8 * M},
		{"--size below the maximum keeps it", 4 * M, 64 * M, 8 * M, 0, 8 * M, 64 * M},
		{"--size smaller than dumped keeps the maximum", 8 * M, 8 * M, 1 * M, 0, 1 * M, 8 * M},
		{"--size of a format 1 dump: fixed", 4 * M, 0, 8 * M, 0, 8 * M, 0},
		{"--max-size lets a fixed store grow", 4 * M, 4 * M, 0, 64 * M, 4 * M, 64 * M},
		{"--max-size below the dumped size starts there", 8 * M, 8 * M, 0, 2 * M, 2 * M, 2 * M},
		{"--size and --max-size", 4 * M, 4 * M, 2 * M, 16 * M, 2 * M, 16 * M},
	} {
		got := loadOptions(store.Options{Size: tc.dumpSize, MaxSize: tc.dumpMax, Mode: 0o640}, tc.size, tc.maxSize)
		if got.Size != tc.wantSize || got.MaxSize != tc.wantMaxSize || got.Mode != 0o640 {
			t.Errorf("%s: Size %d, MaxSize %d, Mode %v; want %d, %d, 0640", tc.name, got.Size, got.MaxSize, got.Mode, tc.wantSize, tc.wantMaxSize)
		}
	}
}
