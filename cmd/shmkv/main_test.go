package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shmkv/shmkv/internal/shmtest"
	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/store"
)

// storeName is a store name unique to this test; the store is removed when
// the test ends, failed or not.
func storeName(t testing.TB) string {
	t.Helper()
	return shmtest.Name(t, "shmkv-cli-test", store.Unlink)
}

// removeAtEnd removes the store name when the test ends.
func removeAtEnd(t testing.TB, name string) { shmtest.RemoveAtEnd(t, name, store.Unlink) }

// run calls Main in-process.
func run(stdin string, args ...string) (stdout, stderr string, code int) {
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// step is one invocation in a scenario, run with --store NAME first.
type step struct {
	args      []string
	stdin     string
	code      int
	stdout    *string  // exact stdout, if set
	stdoutHas []string // substrings of stdout
	stderrHas []string // substrings of stderr
}

func out(s string) *string { return &s }

func TestCommands(t *testing.T) {
	tests := []struct {
		name  string
		steps []step
	}{
		{"put and get", []step{
			{args: []string{"put", "k", "v"}, stdout: out("")},
			{args: []string{"get", "k"}, stdout: out("v\n")},
			{args: []string{"put", "k", "-5"}},
			{args: []string{"get", "k"}, stdout: out("-5\n")},
			{args: []string{"put", "empty", ""}},
			{args: []string{"get", "empty"}, stdout: out("\n")},
			{args: []string{"get", "--raw", "empty"}, stdout: out("")},
		}},
		{"put from stdin keeps exact bytes", []step{
			{args: []string{"put", "bin"}, stdin: "a\x00b\n\xff"},
			{args: []string{"get", "--raw", "bin"}, stdout: out("a\x00b\n\xff")},
			{args: []string{"get", "bin"}, stdout: out("a\x00b\n\xff\n")},
		}},
		{"get on a missing store exits 4 and creates nothing, missing key exits 1", []step{
			{args: []string{"get", "nope"}, code: 4, stdout: out(""), stderrHas: []string{"no such store", "shmkv create"}},
			{args: []string{"check"}, code: 4, stderrHas: []string{"no such store"}},
			{args: []string{"put", "k", "v"}},
			{args: []string{"get", "nope"}, code: 1, stdout: out(""), stderrHas: []string{`key "nope" not found`}},
			{args: []string{"check"}, stdout: out("ok: 1 entries\n")},
		}},
		{"del", []step{
			{args: []string{"put", "k", "v"}},
			{args: []string{"del", "k"}, stdout: out("")},
			{args: []string{"get", "k"}, code: 1},
			{args: []string{"del", "k"}, code: 1, stderrHas: []string{`key "k" not found`}},
		}},
		{"cas", []step{
			{args: []string{"put", "k", "a"}},
			{args: []string{"cas", "k", "a", "b"}, stdout: out("")},
			{args: []string{"get", "k"}, stdout: out("b\n")},
			{args: []string{"cas", "k", "a", "c"}, code: 1, stderrHas: []string{`cas "k": not swapped`}},
			{args: []string{"get", "k"}, stdout: out("b\n")},
			{args: []string{"cas", "missing", "a", "c"}, code: 1},
		}},
		{"cas --absent", []step{
			{args: []string{"put", "other", "x"}},
			{args: []string{"cas", "--absent", "k", "v"}},
			{args: []string{"get", "k"}, stdout: out("v\n")},
			{args: []string{"cas", "--absent", "k", "w"}, code: 1, stderrHas: []string{"it exists"}},
			{args: []string{"get", "k"}, stdout: out("v\n")},
			{args: []string{"cas", "--absent", "k", "a", "b"}, code: 2},
			{args: []string{"cas", "k", "v"}, code: 2},
		}},
		{"keys sorted, with prefix", []step{
			{args: []string{"put", "b/2", "x"}},
			{args: []string{"put", "a", "x"}},
			{args: []string{"put", "b/1", "x"}},
			{args: []string{"put", "c", "x"}},
			{args: []string{"keys", "b/"}, stdout: out("b/1\nb/2\n")},
			{args: []string{"keys"}, stdout: out("a\nb/1\nb/2\nc\n")},
			{args: []string{"keys", "zzz"}, stdout: out("")},
		}},
		{"stat and check", []step{
			{args: []string{"put", "a", "1"}},
			{args: []string{"put", "b", "2"}},
			{args: []string{"stat"}, stdoutHas: []string{"entries:", "2 (no limit but the size)", "writer lock:", "free", "commits:", "mode=0600", "backing:",
				"largest free:", "% of free space is outside the largest free piece", "reserve:", "kept free for compaction",
				"compaction:", "0 B moved in 0 transactions, 0 passes over the heap"}},
			{args: []string{"check"}, stdout: out("ok: 2 entries\n")},
		}},
		{"create with options, stat shows them", []step{
			{args: []string{"create", "--size", "1M", "--entries", "1000", "--noreserve", "--populate", "--mode", "0640"}, stdout: out("")},
			{args: []string{"stat"}, stdoutHas: []string{
				"1.0 MiB, 1048576 bytes", "0 / 1000", "hugepages=off", "noreserve=yes", "populate=yes", "lock=no", "mode=0640", "sparse (NoReserve)",
			}},
			{args: []string{"check"}, stdout: out("ok: 0 entries\n")},
		}},
		{"create existing exits 3", []step{
			{args: []string{"create", "--size", "1M"}},
			{args: []string{"create", "--size", "1M"}, code: 3, stderrHas: []string{"file exists"}},
		}},
		{"rm, then check finds no store", []step{
			{args: []string{"create", "--size", "1M"}},
			{args: []string{"rm"}, stdout: out("")},
			{args: []string{"check"}, code: 4, stderrHas: []string{"no such store"}},
			{args: []string{"stat"}, code: 4, stderrHas: []string{"no such store"}},
			{args: []string{"del", "k"}, code: 4, stderrHas: []string{"no such store"}},
			{args: []string{"rm"}, code: 4, stderrHas: []string{"no such store"}},
		}},
		{"compact on a missing store fails and creates nothing", []step{
			{args: []string{"compact"}, code: 4, stdout: out(""), stderrHas: []string{"no such store", "shmkv create"}},
			{args: []string{"stat"}, code: 4, stderrHas: []string{"no such store"}},
		}},
		{"compact an empty store", []step{
			{args: []string{"create", "--size", "1M"}},
			{args: []string{"compact"}, stdoutHas: []string{"moved 0 B in 0 entries; fragmentation 0.0% -> 0.0%"}},
			{args: []string{"stat"}, stdoutHas: []string{"compaction:", "0 B moved in 0 transactions, 1 pass over the heap"}},
			{args: []string{"check"}, stdout: out("ok: 0 entries\n")},
		}},
		{"usage errors exit 2", []step{
			{args: []string{}, code: 2, stderrHas: []string{"no command"}},
			{args: []string{"bogus"}, code: 2, stderrHas: []string{`unknown command "bogus"`}},
			{args: []string{"put"}, code: 2, stderrHas: []string{"usage: shmkv [--store NAME] put KEY [VALUE]"}},
			{args: []string{"put", "a", "b", "c"}, code: 2},
			{args: []string{"get"}, code: 2},
			{args: []string{"get", "a", "b"}, code: 2},
			{args: []string{"get", "--nope", "k"}, code: 2, stderrHas: []string{"flag provided but not defined"}},
			{args: []string{"del"}, code: 2},
			{args: []string{"cas", "k"}, code: 2},
			{args: []string{"keys", "a", "b"}, code: 2},
			{args: []string{"stat", "x"}, code: 2},
			{args: []string{"check", "x"}, code: 2},
			{args: []string{"rm", "x"}, code: 2},
			{args: []string{"compact", "x"}, code: 2},
			{args: []string{"compact", "--progress"}, code: 2},
			{args: []string{"ls", "x"}, code: 2},
			{args: []string{"create", "--size", "12Q"}, code: 2, stderrHas: []string{"bad size"}},
			{args: []string{"create", "--size", "1K"}, code: 2, stderrHas: []string{"below the minimum"}},
			{args: []string{"create", "--hugepages", "huge"}, code: 2},
			{args: []string{"create", "--mode", "999"}, code: 2},
			{args: []string{"create", "--entries", "-1"}, code: 2},
			{args: []string{"create", "extra"}, code: 2},
			{args: []string{"demo", "--duration", "1ms"}, code: 2},
			{args: []string{"help", "bogus"}, code: 2},
		}},
		{"errors about the store exit 3", []step{
			{args: []string{"create", "--size", "256K"}},
			{args: []string{"put", "k"}, stdin: strings.Repeat("x", 300<<10), code: 3, stderrHas: []string{"too large"}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := storeName(t)
			for i, st := range tc.steps {
				args := append([]string{"--store", name}, st.args...)
				stdout, stderr, code := run(st.stdin, args...)
				where := fmt.Sprintf("step %d: shmkv %q", i, args)
				if code != st.code {
					t.Fatalf("%s: exit %d, want %d\nstdout: %q\nstderr: %q", where, code, st.code, stdout, stderr)
				}
				if st.stdout != nil && stdout != *st.stdout {
					t.Errorf("%s: stdout %q, want %q", where, stdout, *st.stdout)
				}
				for _, s := range st.stdoutHas {
					if !strings.Contains(stdout, s) {
						t.Errorf("%s: stdout lacks %q:\n%s", where, s, stdout)
					}
				}
				for _, s := range st.stderrHas {
					if !strings.Contains(stderr, s) {
						t.Errorf("%s: stderr lacks %q: %q", where, s, stderr)
					}
				}
				if code == 0 && stderr != "" {
					t.Errorf("%s: exit 0 with stderr %q", where, stderr)
				}
				if code == 1 || code == 3 || code == 4 {
					// One line that names the store.
					if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, fmt.Sprintf("shmkv: store %q: ", name)) {
						t.Errorf("%s: stderr is not one line naming the store: %q", where, stderr)
					}
				}
			}
		})
	}
}

func TestStatJSON(t *testing.T) {
	name := storeName(t)
	run("", "--store", name, "create", "--size", "1M", "--entries", "100")
	run("", "--store", name, "put", "a", "1")
	stdout, stderr, code := run("", "--store", name, "stat", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	// store.Stats, but with Mode in octal.
	var st struct {
		store.Stats
		Mode string
	}
	if err := json.Unmarshal([]byte(stdout), &st); err != nil {
		t.Fatalf("stat --json: %v\n%s", err, stdout)
	}
	if st.Name != name || st.Entries != 1 || st.MaxEntries != 100 || st.Size != 1<<20 || st.Commits != 1 || st.Mode != "0600" {
		t.Errorf("stat --json: %+v", st)
	}
}

func TestCheckReportsDamage(t *testing.T) {
	name := storeName(t)
	if _, stderr, code := run("", "--store", name, "create", "--size", "1M"); code != 0 {
		t.Fatal(stderr)
	}
	run("", "--store", name, "put", "a", "1")
	// Scribble over the entry count, which Check compares with the index.
	f, err := os.OpenFile(filepath.Join(store.ShmDir, name), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], 999)
	_, err = f.WriteAt(b[:], layout.CountOff)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run("", "--store", name, "check")
	if code != 1 || stdout != "" {
		t.Fatalf("check of a damaged store: exit %d, stdout %q, stderr %q; want exit 1", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	// At least one violation line, and the summary.
	if len(lines) < 2 || !strings.Contains(stderr, "999") {
		t.Errorf("check: want each violation on its own line, got %q", stderr)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, fmt.Sprintf("shmkv: store %q: ", name)) {
			t.Errorf("check: line %q does not name the store", l)
		}
	}
}

func TestInvalidStoreName(t *testing.T) {
	for _, cmd := range [][]string{{"get", "k"}, {"put", "k", "v"}, {"check"}, {"create"}, {"rm"}, {"stat"}, {"compact"}} {
		stdout, stderr, code := run("", append([]string{"--store", "a/b"}, cmd...)...)
		if code != 3 || stdout != "" {
			t.Errorf("%v: exit %d stdout %q, want 3", cmd, code, stdout)
		}
		if !strings.HasPrefix(stderr, `shmkv: store "a/b": `) || !strings.Contains(stderr, "invalid shared-memory object name") ||
			strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: stderr %q", cmd, stderr)
		}
	}
}

func TestStoreFromEnvironment(t *testing.T) {
	name := storeName(t)
	t.Setenv(envStore, name)
	if _, stderr, code := run("", "put", "k", "from-env"); code != 0 {
		t.Fatal(stderr)
	}
	s, err := store.Open(name, &store.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("put did not use $%s: %v", envStore, err)
	}
	defer s.Close()
	if v, err := s.Get([]byte("k")); err != nil || string(v) != "from-env" {
		t.Errorf("Get = %q, %v", v, err)
	}
	// --store wins over the environment.
	other := storeName(t)
	run("", "--store", other, "put", "k", "flag")
	if stdout, _, _ := run("", "get", "k"); stdout != "from-env\n" {
		t.Errorf("get with $%s: %q", envStore, stdout)
	}
	if stdout, _, _ := run("", "--store", other, "get", "k"); stdout != "flag\n" {
		t.Errorf("get with --store: %q", stdout)
	}
}

func TestLs(t *testing.T) {
	name := storeName(t)
	if _, stderr, code := run("", "--store", name, "create", "--size", "1M"); code != 0 {
		t.Fatal(stderr)
	}
	run("", "--store", name, "put", "a", "1")
	run("", "--store", name, "put", "b", "2")
	// A file that is not a store is not listed.
	junk := fmt.Sprintf("shmkv-cli-test-%d-junk", os.Getpid())
	if err := os.WriteFile(filepath.Join(store.ShmDir, junk), []byte("not a store at all"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(filepath.Join(store.ShmDir, junk)) })

	stdout, stderr, code := run("", "ls")
	if code != 0 {
		t.Fatalf("ls: exit %d: %s", code, stderr)
	}
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+1\.0 MiB\s+2\s+` + regexp.QuoteMeta(filepath.Join(store.ShmDir, name)) + `$`)
	if !re.MatchString(stdout) {
		t.Errorf("ls does not list %s with its size and 2 entries:\n%s", name, stdout)
	}
	if strings.Contains(stdout, junk) {
		t.Errorf("ls lists a file that is not a store:\n%s", stdout)
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		stdout, stderr, code := run("", args...)
		if code != 0 || stderr != "" {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
		for _, cmd := range commands {
			if !cmd.hidden && !strings.Contains(stdout, "\n  "+cmd.name) {
				t.Errorf("%v: usage lacks %s:\n%s", args, cmd.name, stdout)
			}
		}
		if strings.Contains(stdout, "demo-worker") {
			t.Errorf("%v: usage shows the hidden command", args)
		}
	}
	for _, args := range [][]string{{"help", "cas"}, {"cas", "-h"}} {
		stdout, _, code := run("", args...)
		if code != 0 || !strings.Contains(stdout, "usage: shmkv [--store NAME] cas KEY OLD NEW | cas --absent KEY NEW") ||
			!strings.Contains(stdout, "-absent") {
			t.Errorf("%v: exit %d:\n%s", args, code, stdout)
		}
	}
}

// TestDemo builds the real binary and runs the demo: real processes, one
// SIGKILLed.
func TestDemo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs several processes for 2s")
	}
	bin := shmkvBinary(t)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "demo")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The demo removes its store itself; this is for when it fails.
	removeAtEnd(t, fmt.Sprintf("shmkv-demo-%d", cmd.Process.Pid))
	err := shmtest.WaitWithin(cmd, 2*time.Minute)
	t.Logf("demo output:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("demo: %v\nstderr: %s", err, stderr.String())
	}
	if stderr.Len() > 0 {
		t.Errorf("demo wrote to stderr: %s", stderr.String())
	}
	o := stdout.String()
	for _, want := range []string{"SIGKILL w2", "store passes Check", "killed writer w2:", "all present with Get", "demo passed"} {
		if !strings.Contains(o, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	if n := strings.Count(o, "\n"); n < 10 || n > 25 {
		t.Errorf("demo printed %d lines, want 10 to 25", n)
	}
	if s, err := store.Open(fmt.Sprintf("shmkv-demo-%d", cmd.Process.Pid), nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("demo left its store behind: %v", err)
		if err == nil {
			s.Close()
		}
	}
}

// TestDemoVerification shows the demo's check of acknowledged puts catches
// a lost or stale one, so a passing demo means something.
func TestDemoVerification(t *testing.T) {
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(k, seq int64) {
		key := fmt.Sprintf("w1:%d", k)
		if err := s.Put([]byte(key), fmt.Appendf(nil, "%s|seq=%d|pid=1", key, seq)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range int64(5) {
		put(i, i)
	}
	if n, bad := verifyWriter(s, 1, 5, true); n != 5 || bad != nil {
		t.Fatalf("intact: verified %d, problems %q", n, bad)
	}
	// A killed writer's put in flight may have landed: fine unless exact.
	put(0, demoKeys)
	if n, bad := verifyWriter(s, 1, 5, false); n != 5 || bad != nil {
		t.Errorf("newer value, not exact: verified %d, problems %q", n, bad)
	}
	if _, bad := verifyWriter(s, 1, 5, true); len(bad) != 1 {
		t.Errorf("newer value, exact: problems %q, want 1", bad)
	}
	put(0, 0)
	s.Delete([]byte("w1:3"))
	if _, bad := verifyWriter(s, 1, 5, false); len(bad) != 1 || !strings.Contains(bad[0], "w1:3") {
		t.Errorf("lost put: problems %q", bad)
	}
	put(3, 3)
	s.Put([]byte("w1:4"), []byte("w1:2|seq=2|pid=1"))
	if _, bad := verifyWriter(s, 1, 5, false); len(bad) != 1 || !strings.Contains(bad[0], "not a value of its own") {
		t.Errorf("foreign value: problems %q", bad)
	}
	for _, tc := range []struct {
		v   string
		seq int64
		ok  bool
	}{
		{"w1:4|seq=17|pid=9", 17, true},
		{"w1:4|seq=17", 0, false},
		{"w1:40|seq=17|pid=9", 0, false},
		{"w1:4|seq=-1|pid=9", 0, false},
		{"w1:4|seq=x|pid=9", 0, false},
	} {
		if seq, ok := parseDemoValue([]byte("w1:4"), []byte(tc.v)); ok != tc.ok || (ok && seq != tc.seq) {
			t.Errorf("parseDemoValue(%q) = %d, %v", tc.v, seq, ok)
		}
	}
}

// scatteredStore creates the store name (4 MiB) with n entries of varied
// sizes and deletes every other one, the first included, so its free space
// lies in n/2 pieces between live entries. It returns the live entries.
func scatteredStore(t testing.TB, name string, n int) map[string]string {
	t.Helper()
	s, err := store.Create(name, &store.Options{Size: 4 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	live := map[string]string{}
	for i := range n {
		k, v := fmt.Sprintf("k%05d", i), strings.Repeat(string(rune('a'+i%26)), 100+i%300)
		if err := s.Put([]byte(k), []byte(v)); err != nil {
			t.Fatal(err)
		}
		live[k] = v
	}
	for i := 0; i < n; i += 2 {
		k := fmt.Sprintf("k%05d", i)
		if err := s.Delete([]byte(k)); err != nil {
			t.Fatal(err)
		}
		delete(live, k)
	}
	if st := s.Stats(); st.Fragmentation == 0 || st.FreeListBytes == 0 {
		t.Fatalf("the store is not fragmented: %+v", st)
	}
	return live
}

// storeStats opens name, checks it and that it holds exactly live, and
// returns its Stats.
func storeStats(t testing.TB, name string, live map[string]string) store.Stats {
	t.Helper()
	s, err := store.Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}
	if s.Len() != len(live) {
		t.Errorf("%d entries, want %d", s.Len(), len(live))
	}
	for k, v := range live {
		if got, err := s.Get([]byte(k)); err != nil || string(got) != v {
			t.Fatalf("Get(%q) = %.20q..., %v; want %.20q...", k, got, err, v)
		}
	}
	return s.Stats()
}

var compactLine = regexp.MustCompile(`^moved (\d+(?:\.\d)? [KM]?i?B) in (\d+) entries; fragmentation (\d+\.\d)% -> (\d+\.\d)%; largest free piece (\S+ \S+) -> (\S+ \S+); took \S+\n$`)

func TestCompact(t *testing.T) {
	name := storeName(t)
	live := scatteredStore(t, name, 2000)
	before := storeStats(t, name, live)

	stdout, stderr, code := run("", "--store", name, "compact")
	if code != 0 || stderr != "" {
		t.Fatalf("compact: exit %d, stderr %q", code, stderr)
	}
	m := compactLine.FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("compact printed %q, want one line matching %s", stdout, compactLine)
	}
	after := storeStats(t, name, live)
	if after.Fragmentation != 0 || after.FreeListBytes != 0 {
		t.Errorf("after compact: fragmentation %v, %d bytes in freed blocks; want 0, 0", after.Fragmentation, after.FreeListBytes)
	}
	if after.LargestFree <= before.LargestFree {
		t.Errorf("largest free piece %d before, %d after: want it larger", before.LargestFree, after.LargestFree)
	}
	// Every live entry was above the first free piece, so every one moved
	// (one may move twice: out of the way of a gap too small for it, then
	// down).
	if n, _ := strconv.Atoi(m[2]); after.BytesMoved == 0 || m[1] != units.FormatBytes(after.BytesMoved) || n < len(live) {
		t.Errorf("compact reports moving %s in %s entries; the store counts %d bytes, and %d entries are live", m[1], m[2], after.BytesMoved, len(live))
	}
	if m[3] != fmt.Sprintf("%.1f", 100*before.Fragmentation) || m[4] != "0.0" ||
		m[5] != units.FormatBytes(before.LargestFree) || m[6] != units.FormatBytes(after.LargestFree) {
		t.Errorf("compact: %q; before %+v", stdout, before)
	}
	if after.CompactPasses != 1 || after.Compactions == 0 {
		t.Errorf("after compact: %d passes, %d transactions; want 1, > 0", after.CompactPasses, after.Compactions)
	}

	// stat and stat --json show what compaction did.
	stdout, _, _ = run("", "--store", name, "stat")
	for _, want := range []string{
		"largest free:       " + units.FormatBytes(after.LargestFree) + " in one piece",
		"fragmentation:      0.0% of free space is outside the largest free piece",
		"reserve:            " + units.FormatBytes(after.Reserve) + " of the never-used space kept free for compaction",
		fmt.Sprintf("compaction:         %s moved in %d transactions, 1 pass over the heap", units.FormatBytes(after.BytesMoved), after.Compactions),
	} {
		if !strings.Contains(stdout, want+"\n") && !strings.Contains(stdout, want+" ") {
			t.Errorf("stat lacks %q:\n%s", want, stdout)
		}
	}
	stdout, _, _ = run("", "--store", name, "stat", "--json")
	var js map[string]any
	if err := json.Unmarshal([]byte(stdout), &js); err != nil {
		t.Fatalf("stat --json: %v\n%s", err, stdout)
	}
	for k, want := range map[string]float64{
		"LargestFree": float64(after.LargestFree), "Fragmentation": 0, "Reserve": float64(after.Reserve),
		"BytesMoved": float64(after.BytesMoved), "Compactions": float64(after.Compactions), "CompactPasses": 1,
	} {
		if got, ok := js[k]; !ok || got != want {
			t.Errorf("stat --json: %s = %v (present: %v), want %v", k, got, ok, want)
		}
	}
	if after.Reserve <= 0 {
		t.Errorf("Reserve %d, want > 0 in a store that has entries", after.Reserve)
	}

	// Compacting a compacted store moves nothing.
	stdout, stderr, code = run("", "--store", name, "compact")
	if code != 0 || !strings.HasPrefix(stdout, "moved 0 B in 0 entries; fragmentation 0.0% -> 0.0%;") {
		t.Errorf("second compact: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestCompactNotATerminal runs compact with stderr a file, as when it is
// redirected: no progress bar, nothing on stderr, one line on stdout.
func TestCompactNotATerminal(t *testing.T) {
	name := storeName(t)
	live := scatteredStore(t, name, 2000)
	errf, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	var stdout bytes.Buffer
	if code := Main([]string{"--store", name, "compact"}, nil, &stdout, errf); code != 0 {
		t.Errorf("compact: exit %d", code)
	}
	if b, _ := os.ReadFile(errf.Name()); len(b) != 0 {
		t.Errorf("compact with stderr not a terminal wrote to it: %q", b)
	}
	if !compactLine.MatchString(stdout.String()) {
		t.Errorf("compact printed %q, want one summary line", stdout.String())
	}
	if st := storeStats(t, name, live); st.Fragmentation != 0 {
		t.Errorf("fragmentation %v after compact", st.Fragmentation)
	}
}

// TestCompactInterrupted sends SIGINT to this process after compact's first
// transaction: it stops before the next, exits 130 with one line, and the
// store is intact; a second compact finishes the job.
func TestCompactInterrupted(t *testing.T) {
	name := storeName(t)
	live := scatteredStore(t, name, 2000)
	steps := 0
	compactStepHook = func(ctx context.Context, p store.CompactProgress) {
		if steps++; steps > 1 {
			return
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
			t.Error(err)
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Second):
			t.Error("SIGINT did not cancel compact's context")
		}
	}
	defer func() { compactStepHook = nil }()
	stdout, stderr, code := run("", "--store", name, "compact")
	if code != exitInterrupted || stdout != "" {
		t.Fatalf("interrupted compact: exit %d, stdout %q, stderr %q; want exit %d", code, stdout, stderr, exitInterrupted)
	}
	if steps != 1 {
		t.Errorf("compact went on for %d transactions after SIGINT", steps-1)
	}
	st := storeStats(t, name, live)
	want := fmt.Sprintf("shmkv: store %q: compact interrupted (interrupt signal received) after ", name)
	if !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 ||
		!strings.Contains(stderr, "having moved "+units.FormatBytes(st.BytesMoved)+" in ") || !strings.Contains(stderr, "run compact again") {
		t.Errorf("stderr %q, want one line starting %q", stderr, want)
	}
	if st.BytesMoved == 0 || st.Fragmentation == 0 || st.CompactPasses != 0 {
		t.Errorf("after one transaction: %d bytes moved, fragmentation %v, %d passes; want > 0, > 0, 0", st.BytesMoved, st.Fragmentation, st.CompactPasses)
	}
	if _, stderr, code := run("", "--store", name, "compact"); code != 0 {
		t.Fatalf("compact again: exit %d, %s", code, stderr)
	}
	if st := storeStats(t, name, live); st.Fragmentation != 0 {
		t.Errorf("fragmentation %v after the second compact", st.Fragmentation)
	}
}

// TestCompactProgressBar runs the built binary on a pseudo-terminal, under
// script(1): the bar is drawn on stderr and erased before the summary.
// With stderr a pipe, the same binary draws nothing.
func TestCompactProgressBar(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script(1), which runs a command on a pseudo-terminal, is not installed")
	}
	bin := shmkvBinary(t)

	name := storeName(t)
	scatteredStore(t, name, 2000)
	// -e: script exits with the command's code. Its output is all the
	// terminal got, stdout and stderr alike.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(ctx, script, "-qec", bin+" --store "+name+" compact", "/dev/null").CombinedOutput()
	if err != nil {
		t.Fatalf("script: %v\n%q", err, b)
	}
	tty := strings.ReplaceAll(string(b), "\r\n", "\n")
	for _, want := range []string{"compacting: moved ", "%", "|", "B/s", "\x1b[2K\r"} {
		if !strings.Contains(tty, want) {
			t.Errorf("the terminal got no %q:\n%q", want, tty)
		}
	}
	// The summary starts on a cleared line.
	if i := strings.LastIndex(tty, "\x1b[2K\r"); i < 0 || !compactLine.MatchString(tty[i+len("\x1b[2K\r"):]) {
		t.Errorf("the terminal does not end with the bar erased and the summary:\n%q", tty)
	}

	name = storeName(t)
	scatteredStore(t, name, 2000)
	cmd := exec.Command(bin, "--store", name, "compact")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() != 0 || !compactLine.MatchString(stdout.String()) {
		t.Errorf("compact with stderr a pipe: %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
}
