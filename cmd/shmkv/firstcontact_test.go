package main

// Tests for issue 10's first part, "CLI safety and habits": what a new
// user or a script meets first. They run the built binary, as a user does.

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/shmkv/shmkv/internal/units"
	"github.com/shmkv/shmkv/layout"
	"github.com/shmkv/shmkv/store"
)

var (
	binOnce sync.Once
	binDir  string // removed by TestMain
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// shmkvBinary builds the shmkv command once for all the package's tests
// and returns its path.
func shmkvBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "shmkv-cli-test-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "shmkv")
		if b, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, b)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// runBin runs the built binary with args and stdin, without $SHMKV_STORE.
func runBin(t testing.TB, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	bin := shmkvBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, envStore+"=") })
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee) && ee.Exited():
		code = ee.ExitCode()
	default:
		t.Fatalf("shmkv %s: %v\nstderr: %s", keysString(args), err, errb.String())
	}
	return out.String(), errb.String(), code
}

// mustRun runs the binary and fails the test unless it exits 0 with
// nothing on stderr.
func mustRun(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	stdout, stderr, code := runBin(t, stdin, args...)
	if code != 0 || stderr != "" {
		t.Fatalf("shmkv %s: exit %d, stderr %q", keysString(args), code, stderr)
	}
	return stdout
}

// oneLine checks stderr is one line that names the store.
func oneLine(t testing.TB, what, name, stderr string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasSuffix(stderr, "\n") ||
		!strings.HasPrefix(stderr, fmt.Sprintf("shmkv: store %q: ", name)) {
		t.Errorf("%s: stderr is not one line naming the store: %q", what, stderr)
	}
}

func exists(name string) bool {
	_, err := os.Stat(filepath.Join(store.ShmDir, name))
	return err == nil
}

// TestOnlyWritesCreateTheStore: `shmkv --store typo get k` used to create
// and reserve a 64 MiB store. Now every command but put, cas --absent and
// create exits 4 on a missing store, with one line, and creates nothing.
func TestOnlyWritesCreateTheStore(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	name := storeName(t)
	for _, args := range [][]string{
		{"get", "k"}, {"get", "k", "--raw"}, {"get", "--json", "k"}, {"del", "k"}, {"keys"}, {"keys", "--json"},
		{"stat"}, {"stat", "--json"}, {"check"}, {"compact"}, {"rm"}, {"rm", "--force"}, {"cas", "k", "a", "b"},
	} {
		stdout, stderr, code := runBin(t, "", append([]string{"--store", name}, args...)...)
		what := "shmkv " + strings.Join(args, " ") + " on a missing store"
		if code != exitNoStore || stdout != "" {
			t.Errorf("%s: exit %d, stdout %q; want exit %d and no output", what, code, stdout, exitNoStore)
		}
		oneLine(t, what, name, stderr)
		if !strings.Contains(stderr, "no such store") {
			t.Errorf("%s: %q does not say there is no such store", what, stderr)
		}
		if exists(name) {
			t.Fatalf("%s created the store", what)
		}
	}

	// The writes create it.
	for _, args := range [][]string{{"put", "k", "v"}, {"cas", "--absent", "k", "v"}, {"create", "--size", "1M"}} {
		name := storeName(t)
		mustRun(t, "", append([]string{"--store", name}, args...)...)
		if !exists(name) {
			t.Errorf("shmkv %s did not create the store", strings.Join(args, " "))
		}
	}
	name = storeName(t)
	mustRun(t, "", "--store", name, "cas", "--absent", "k", "v")
	if got := mustRun(t, "", "--store", name, "get", "k"); got != "v\n" {
		t.Errorf("after cas --absent on a missing store, get k = %q", got)
	}
	// With the store there, a missing key is 1, not 4.
	if _, stderr, code := runBin(t, "", "--store", name, "get", "nope"); code != exitNotFound || !strings.Contains(stderr, `key "nope" not found`) {
		t.Errorf("get of a missing key: exit %d, %q", code, stderr)
	}
	if _, _, code := runBin(t, "", "--store", name, "del", "nope"); code != exitNotFound {
		t.Errorf("del of a missing key: exit %d", code)
	}
}

// TestRmLeavesForeignObjects runs the binary on an object that is not a
// store: rm refuses (exit 3), rm --force removes it.
func TestRmLeavesForeignObjects(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	name := storeName(t)
	path := filepath.Join(store.ShmDir, name)
	if err := os.WriteFile(path, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runBin(t, "", "--store", name, "rm")
	if code != exitError || !strings.Contains(stderr, "not a shmkv store") || !strings.Contains(stderr, "--force") {
		t.Errorf("rm of a foreign object: exit %d, %q", code, stderr)
	}
	oneLine(t, "rm of a foreign object", name, stderr)
	if b, err := os.ReadFile(path); string(b) != "hello" {
		t.Fatalf("rm touched the foreign object: %q, %v", b, err)
	}
	mustRun(t, "", "--store", name, "rm", "--force")
	if exists(name) {
		t.Error("rm --force left the object")
	}
}

// TestFlagsAfterArguments: flags may follow arguments, "--" ends them,
// and a dash without a letter after it is an argument.
func TestFlagsAfterArguments(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	name := storeName(t)
	s := func(args ...string) []string { return append([]string{"--store", name}, args...) }
	mustRun(t, "", s("put", "k", "v")...)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{s("get", "k", "--raw"), "v"},
		{s("get", "--raw", "k"), "v"},
		{s("get", "k", "-raw"), "v"},
		{s("get", "k", "--raw=true"), "v"},
		{s("get", "k", "--raw=false"), "v\n"},
		{[]string{"get", "k", "--store", name}, "v\n"},
		{[]string{"--store", "elsewhere", "get", "k", "--store=" + name, "--raw"}, "v"},
		{s("get", "k", "--json"), `{"key":"k","value":"v"}` + "\n"},
	} {
		if got := mustRun(t, "", tc.args...); got != tc.want {
			t.Errorf("shmkv %q: %q, want %q", tc.args, got, tc.want)
		}
	}

	// "--" ends the flags: keys and values that start with a dash.
	mustRun(t, "", s("put", "--", "-k", "--raw")...)
	mustRun(t, "", s("put", "--", "--", "-")...)
	mustRun(t, "", s("put", "neg", "-5")...) // no letter after the dash: an argument
	mustRun(t, "", s("cas", "neg", "-5", "-6")...)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{s("get", "--", "-k"), "--raw\n"},
		{s("get", "--raw", "--", "-k"), "--raw"},
		{s("get", "--", "--"), "-\n"},
		{s("get", "neg"), "-6\n"},
		{s("keys", "--", "-"), "--\n-k\n"},
		{s("keys", "-", "-0"), "--\x00-k\x00"},
	} {
		if got := mustRun(t, "", tc.args...); got != tc.want {
			t.Errorf("shmkv %q: %q, want %q", tc.args, got, tc.want)
		}
	}
	mustRun(t, "", s("del", "--", "-k")...)
	if _, _, code := runBin(t, "", s("get", "--", "-k")...); code != exitNotFound {
		t.Errorf("after del -- -k, get -- -k: exit %d", code)
	}

	// An unknown flag, before or after the arguments, is a usage error
	// that says how to pass an argument that starts with a dash.
	for _, args := range [][]string{s("get", "-k"), s("get", "k", "--nope"), s("put", "k", "-value"), s("del", "--nope", "k")} {
		stdout, stderr, code := runBin(t, "", args...)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, "flag provided but not defined") || !strings.Contains(stderr, `"--"`) {
			t.Errorf("shmkv %q: exit %d, stdout %q, stderr %q; want a usage error pointing at --", args, code, stdout, stderr)
		}
	}
	// A flag's value may itself start with a dash; -h after arguments
	// shows the help.
	if _, stderr, code := runBin(t, "", s("create", "--size", "-1M")...); code != exitUsage || !strings.Contains(stderr, "negative") {
		t.Errorf("create --size -1M: exit %d, %q", code, stderr)
	}
	if stdout, _, code := runBin(t, "", s("get", "k", "-h")...); code != 0 || !strings.Contains(stdout, "usage: shmkv [--store NAME] get") {
		t.Errorf("get k -h: exit %d, %q", code, stdout)
	}
}

func TestSplitArgs(t *testing.T) {
	fl := (&cli{name: "x"}).flags("t")
	fl.Bool("raw", false, "")
	fl.Bool("0", false, "")
	fl.String("size", "", "")
	for _, tc := range []struct {
		in, flags, pos []string
	}{
		{[]string{"k", "--raw"}, []string{"--raw"}, []string{"k"}},
		{[]string{"k", "--size", "1M", "v"}, []string{"--size", "1M"}, []string{"k", "v"}},
		{[]string{"--size=1M", "k"}, []string{"--size=1M"}, []string{"k"}},
		{[]string{"--size", "-1"}, []string{"--size", "-1"}, nil},
		{[]string{"k", "--", "--raw", "-0"}, nil, []string{"k", "--raw", "-0"}},
		{[]string{"-0", "-5", "-", "-.5"}, []string{"-0"}, []string{"-5", "-", "-.5"}},
		{[]string{"-x", "k", "--nope=1", "-h"}, []string{"-x", "--nope=1", "-h"}, []string{"k"}},
		{[]string{"---x", "--=x", "k"}, nil, []string{"---x", "--=x", "k"}},
		{[]string{"--size"}, []string{"--size"}, nil},
		{[]string{"--raw", "k", "--store", "s"}, []string{"--raw", "--store", "s"}, []string{"k"}},
	} {
		flags, pos := splitArgs(fl, tc.in)
		if !slices.Equal(flags, tc.flags) || !slices.Equal(pos, tc.pos) {
			t.Errorf("splitArgs(%q) = %q, %q; want %q, %q", tc.in, flags, pos, tc.flags, tc.pos)
		}
	}
}

// TestVersion: --version and the version command print the module version
// the binary records, its commit when it records one, and the format
// version.
func TestVersion(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	bin := shmkvBinary(t)
	bi, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	want := wantVersion(bi)
	for _, args := range [][]string{{"--version"}, {"version"}, {"--store", "x", "--version"}} {
		stdout := mustRun(t, "", args...)
		if stdout != want {
			t.Errorf("shmkv %s: %q, want %q", strings.Join(args, " "), stdout, want)
		}
	}
	if !strings.HasSuffix(want, fmt.Sprintf("\nstore format version %d\n", layout.Version)) {
		t.Errorf("version text %q lacks the format version", want)
	}
	if _, _, code := runBin(t, "", "version", "x"); code != exitUsage {
		t.Errorf("version x: exit %d", code)
	}

	// Built from a git checkout with VCS stamping (this environment may
	// turn it off in GOFLAGS), the commit is shown.
	if testing.Short() {
		return
	}
	if err := exec.Command("git", "rev-parse", "HEAD").Run(); err != nil {
		t.Skipf("not a usable git checkout (%v): the commit is not recorded", err)
	}
	vbin := filepath.Join(t.TempDir(), "shmkv")
	if b, err := exec.Command("go", "build", "-buildvcs=true", "-o", vbin, ".").CombinedOutput(); err != nil {
		t.Skipf("go build -buildvcs=true: %v\n%s", err, b)
	}
	bi, err = buildinfo.ReadFile(vbin)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(vbin, "--version")
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	rev, _ := exec.Command("git", "rev-parse", "HEAD").Output()
	if got := out.String(); got != wantVersion(bi) || !strings.Contains(got, "(revision "+strings.TrimSpace(string(rev))) {
		t.Errorf("--version of a VCS-stamped build: %q, want %q with the revision %s", got, wantVersion(bi), rev)
	}
}

// wantVersion is the version text for a binary of build info bi, written
// out independently of versionText.
func wantVersion(bi *buildinfo.BuildInfo) string {
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if settings["vcs.modified"] == "true" {
			v += " (revision " + rev + ", modified)"
		} else {
			v += " (revision " + rev + ")"
		}
	}
	return fmt.Sprintf("shmkv %s, %s\nstore format version %d\n", v, bi.GoVersion, layout.Version)
}

// TestKeysInMessages: a 70,000-byte key used to be echoed whole on stderr.
// Every message shows a key quoted, escaped and cut.
func TestKeysInMessages(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	name := storeName(t)
	mustRun(t, "", "--store", name, "create", "--size", "1M")
	long := strings.Repeat("a", 70000)
	short := `"` + strings.Repeat("a", maxKeyShown) + `"... (70000 bytes)`
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"get", long}, exitNotFound, short},
		{[]string{"del", long}, exitNotFound, short},
		{[]string{"put", long, "v"}, exitError, short},
		{[]string{"cas", long, "a", "b"}, exitError, short},
		{[]string{"get", "a\x01b\n\xffc"}, exitNotFound, `key "a\x01b\n\xffc" not found`},
		{[]string{"del", "\x1b[31mred"}, exitNotFound, `key "\x1b[31mred" not found`},
		{[]string{"cas", "k\n", "a", "b"}, exitNotFound, `cas "k\n": not swapped`},
	} {
		_, stderr, code := runBin(t, "", append([]string{"--store", name}, tc.args...)...)
		what := fmt.Sprintf("shmkv %s", keysString(tc.args))
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want exit %d and %q", what, code, stderr, tc.code, tc.want)
		}
		oneLine(t, what, name, stderr)
		if len(stderr) > 300 {
			t.Errorf("%s: %d bytes on stderr", what, len(stderr))
		}
	}
	// Usage errors that show arguments cut them too.
	_, stderr, code := runBin(t, "", "--store", name, "get", "k", long)
	if code != exitUsage || !strings.Contains(stderr, short) || len(stderr) > 300 {
		t.Errorf("get k LONG: exit %d, stderr %q", code, stderr)
	}

	for _, tc := range []struct{ in, want string }{
		{"k", `"k"`},
		{"", `""`},
		{"a\x00\xff", `"a\x00\xff"`},
		{strings.Repeat("x", maxKeyShown), strconv.Quote(strings.Repeat("x", maxKeyShown))},
		{strings.Repeat("x", maxKeyShown+1), `"` + strings.Repeat("x", maxKeyShown) + `"... (65 bytes)`},
		// Not cut inside a character: é is 2 bytes, at 63 and 64.
		{strings.Repeat("x", 63) + "é" + "yy", `"` + strings.Repeat("x", 63) + `"... (67 bytes)`},
		// Binary bytes are cut where they fall, up to 3 bytes early.
		{strings.Repeat("\x80", 100), `"` + strings.Repeat(`\x80`, 61) + `"... (100 bytes)`},
	} {
		if got := keyString(tc.in); got != tc.want {
			t.Errorf("keyString(%.80q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

// TestSizeFlags: `create --size 0` quietly meant 64 MiB; impossible sizes
// are usage errors that say what is wrong, and create nothing.
func TestSizeFlags(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	name := storeName(t)
	for _, tc := range []struct{ size, want string }{
		{"0", "size 0: a store needs at least 256 KiB"},
		{"0M", "size 0: a store needs at least 256 KiB"},
		{"-1", "size -1 is negative"},
		{"-64M", "size -64M is negative"},
		{"12Q", `bad size "12Q": want a whole number of bytes, or of K, M, G or T`},
		{"1.5G", `bad size "1.5G"`},
		{"", `bad size ""`},
		{"M", `bad size "M"`},
		{"1K", "size 1K (1024 bytes) is below the minimum 256 KiB"},
		{"262143", "size 262143 (262143 bytes) is below the minimum 256 KiB"},
		{"2T", "size 2T (2.0 TiB) is above the maximum 1 TiB"},
		{"1099511627777", "is above the maximum 1 TiB"},
		{"99999999999999999999", "size 99999999999999999999 is above the maximum 1 TiB"},
		{"9999999999T", "size 9999999999T is above the maximum 1 TiB"},
	} {
		stdout, stderr, code := runBin(t, "", "--store", name, "create", "--size", tc.size)
		if code != exitUsage || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("create --size %q: exit %d, stderr %q; want exit 2 and %q", tc.size, code, stderr, tc.want)
		}
		if exists(name) {
			t.Fatalf("create --size %q created the store", tc.size)
		}
	}
	for _, size := range []string{"256K", "262144", "1m", "1MiB"} {
		mustRun(t, "", "--store", name, "create", "--noreserve", "--size", size)
		mustRun(t, "", "--store", name, "rm")
	}
	// The limits in the messages are layout's.
	if n, err := parseStoreSize("256K"); err != nil || n != layout.MinSize {
		t.Errorf("parseStoreSize(256K) = %d, %v", n, err)
	}
	if n, err := parseStoreSize("1T"); err != nil || n != layout.MaxSize {
		t.Errorf("parseStoreSize(1T) = %d, %v", n, err)
	}
}

// TestCreateShmFull: create on a /dev/shm too small used to fail with a
// raw "pwrite ...: no space left on device". It asks for more than
// /dev/shm's whole size, which tmpfs refuses at once without allocating.
func TestCreateShmFull(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	var st unix.Statfs_t
	if err := unix.Statfs(store.ShmDir, &st); err != nil {
		t.Fatal(err)
	}
	total := int64(st.Blocks) * st.Bsize
	ask := (total + 1<<30) &^ (1<<30 - 1) // whole GiB, more than all of it
	if st.Blocks == 0 || ask > layout.MaxSize {
		t.Skipf("%s has no size limit, or one above the largest store: %d bytes", store.ShmDir, total)
	}
	name := storeName(t)
	size := fmt.Sprintf("%dG", ask>>30)
	stdout, stderr, code := runBin(t, "", "--store", name, "create", "--size", size)
	t.Logf("create --size %s: exit %d: %s", size, code, stderr)
	if code != exitError || stdout != "" {
		t.Fatalf("create --size %s on a %s %s: exit %d, stdout %q", size, units.FormatBytes(total), store.ShmDir, code, stdout)
	}
	oneLine(t, "create on a full /dev/shm", name, stderr)
	for _, want := range []string{
		"asked for " + units.FormatBytes(ask) + ", which does not fit in /dev/shm: it is " + units.FormatBytes(total) + " with ", " free;",
		"mount -o remount,size=", " /dev/shm", "--shm-size=", "--size",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if strings.Contains(stderr, "pwrite") || strings.Contains(stderr, "fallocate") {
		t.Errorf("stderr shows the raw system call: %q", stderr)
	}
	if exists(name) {
		t.Error("the failed create left its object")
	}

	// The figures and the suggested size, on made-up numbers.
	for _, tc := range []struct {
		asked, total, free int64
		want               []string
	}{
		{64 << 20, 64 << 20, 10 << 20, []string{"asked for 64.0 MiB, which does not fit in /dev/shm: it is 64.0 MiB with 10.0 MiB free;", "size=128M /dev/shm", "--shm-size=128m"}},
		{4 << 30, 8 << 30, 1 << 30, []string{"asked for 4.0 GiB,", "it is 8.0 GiB with 1.0 GiB free", "size=11G /dev/shm", "--shm-size=11g"}},
	} {
		got := shmFullText(tc.asked, tc.total, tc.free)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("shmFullText(%d, %d, %d) = %q, lacks %q", tc.asked, tc.total, tc.free, got, w)
			}
		}
	}
}

// TestTHPWarning: --hugepages thp on a kernel that gives shared memory no
// huge pages warns on stderr, and still creates the store.
func TestTHPWarning(t *testing.T) {
	// The binary, on this machine's setting.
	setting := "unavailable"
	if b, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/shmem_enabled"); err == nil {
		if m := regexp.MustCompile(`\[(\w+)\]`).FindSubmatch(b); m != nil {
			setting = string(m[1])
		}
	}
	name := storeName(t)
	stdout, stderr, code := runBin(t, "", "--store", name, "create", "--size", "1M", "--noreserve", "--hugepages", "thp")
	t.Logf("shmem_enabled %s: exit %d, stderr %q", setting, code, stderr)
	if code != 0 || stdout != "" || !exists(name) {
		t.Fatalf("create --hugepages thp: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if never := setting == "never" || setting == "deny"; never != (stderr != "") {
		t.Errorf("shmem_enabled is %s, and create --hugepages thp wrote %q to stderr", setting, stderr)
	}
	if stderr != "" && (!strings.Contains(stderr, "warning") || !strings.Contains(stderr, strconv.Quote(setting)) || strings.Count(stderr, "\n") != 1) {
		t.Errorf("warning %q: want one line naming the setting", stderr)
	}

	// Both kinds of kernel, in-process.
	defer func(f func(*store.Stats) string) { thpShmemSetting = f }(thpShmemSetting)
	for _, tc := range []struct {
		setting string
		warn    bool
	}{{"never", true}, {"deny", true}, {"advise", false}, {"always", false}, {"within_size", false}, {"force", false}} {
		thpShmemSetting = func(*store.Stats) string { return tc.setting }
		for _, huge := range []string{"thp", "off"} {
			name := storeName(t)
			_, stderr, code := run("", "--store", name, "create", "--size", "1M", "--noreserve", "--hugepages", huge)
			if code != 0 {
				t.Fatalf("create: exit %d, %s", code, stderr)
			}
			want := tc.warn && huge == "thp"
			if got := strings.Contains(stderr, "shmem_enabled is \""+tc.setting+"\""); got != want || (!want && stderr != "") {
				t.Errorf("shmem_enabled %s, --hugepages %s: stderr %q, want a warning: %v", tc.setting, huge, stderr, want)
			}
			if want && !strings.Contains(stderr, "echo advise > /sys/kernel/mm/transparent_hugepage/shmem_enabled") {
				t.Errorf("the warning does not say how to allow huge pages: %q", stderr)
			}
		}
	}
}

// TestKeysJSONAndNUL: keys that contain newlines, or are not UTF-8, come
// out whole with keys -0 and keys --json.
func TestKeysJSONAndNUL(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	name := storeName(t)
	mustRun(t, "", "--store", name, "create", "--size", "1M")
	if got := mustRun(t, "", "--store", name, "keys", "--json"); got != "[]\n" {
		t.Errorf("keys --json of an empty store: %q", got)
	}
	if got := mustRun(t, "", "--store", name, "keys", "-0"); got != "" {
		t.Errorf("keys -0 of an empty store: %q", got)
	}
	keys := []string{"a", "b\nc", "<&>", "d\x00e", "\xff\xfe", "é"}
	// A NUL cannot be in an argument: a Go program writes that key.
	s, err := store.Open(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if err := s.Put([]byte(k), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	sorted := slices.Clone(keys)
	slices.Sort(sorted) // bytewise, as keys sorts

	if got, want := mustRun(t, "", "--store", name, "keys", "-0"), strings.Join(sorted, "\x00")+"\x00"; got != want {
		t.Errorf("keys -0: %q, want %q", got, want)
	}
	if got := mustRun(t, "", "--store", name, "keys", "-0", "b"); got != "b\nc\x00" {
		t.Errorf("keys -0 b: %q", got)
	}

	got := mustRun(t, "", "--store", name, "keys", "--json")
	var arr []any
	if err := json.Unmarshal([]byte(got), &arr); err != nil {
		t.Fatalf("keys --json: %v\n%s", err, got)
	}
	var back []string
	for _, e := range arr {
		switch e := e.(type) {
		case string:
			back = append(back, e)
		case map[string]any:
			b, err := base64.StdEncoding.DecodeString(e["base64"].(string))
			if err != nil || len(e) != 1 {
				t.Errorf("keys --json: element %v", e)
			}
			back = append(back, string(b))
		default:
			t.Errorf("keys --json: element %v of type %T", e, e)
		}
	}
	if !slices.Equal(back, sorted) {
		t.Errorf("keys --json gives back %q, want %q", back, sorted)
	}
	if !strings.Contains(got, `"<&>"`) || !strings.Contains(got, `{"base64": "//4="}`) || !strings.Contains(got, `"b\nc"`) {
		t.Errorf("keys --json: %s", got)
	}
	if got := mustRun(t, "", "--store", name, "keys", "--json", "<"); got != "[\n  \"<&>\"\n]\n" {
		t.Errorf("keys --json <: %q", got)
	}
	if _, stderr, code := runBin(t, "", "--store", name, "keys", "--json", "-0"); code != exitUsage || !strings.Contains(stderr, "exclude each other") {
		t.Errorf("keys --json -0: exit %d, %q", code, stderr)
	}
}

// TestGetJSON: {"key":..,"value":..}, with base64 for bytes that are not
// UTF-8.
func TestGetJSON(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	name := storeName(t)
	for _, tc := range []struct{ key, value, want string }{
		{"k", "v", `{"key":"k","value":"v"}`},
		{"k", "", `{"key":"k","value":""}`},
		{"k", "<a href=\"x\">&</a>\n", `{"key":"k","value":"<a href=\"x\">&</a>\n"}`},
		{"é", "日本", `{"key":"é","value":"日本"}`},
		{"k", "a\x00\xff", `{"key":"k","value_base64":"YQD/"}`},
		{"\xff", "v", `{"key_base64":"/w==","value":"v"}`},
		{"-k", "\xfe", `{"key":"-k","value_base64":"/g=="}`},
	} {
		mustRun(t, tc.value, "--store", name, "put", "--", tc.key)
		got := mustRun(t, "", "--store", name, "get", "--json", "--", tc.key)
		if got != tc.want+"\n" {
			t.Errorf("get --json %q (value %q): %q, want %q", tc.key, tc.value, got, tc.want)
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(got), &m); err != nil {
			t.Errorf("get --json: %v: %q", err, got)
			continue
		}
		decode := func(field string) string {
			if s, ok := m[field]; ok {
				return s
			}
			b, _ := base64.StdEncoding.DecodeString(m[field+"_base64"])
			return string(b)
		}
		if decode("key") != tc.key || decode("value") != tc.value {
			t.Errorf("get --json %q: gives back %q = %q", tc.key, decode("key"), decode("value"))
		}
	}
	if _, stderr, code := runBin(t, "", "--store", name, "get", "--json", "--raw", "k"); code != exitUsage || !strings.Contains(stderr, "exclude each other") {
		t.Errorf("get --json --raw: exit %d, %q", code, stderr)
	}
	if stdout, _, code := runBin(t, "", "--store", name, "get", "--json", "nope"); code != exitNotFound || stdout != "" {
		t.Errorf("get --json of a missing key: exit %d, stdout %q", code, stdout)
	}
}

// TestStatOverheadAndMode: stat showed "overhead: 559259 B per entry" for a
// store of 10 entries (the index, sized for MaxEntries, shared among 10),
// and stat --json "Mode": 384.
func TestStatOverheadAndMode(t *testing.T) {
	t.Parallel() // separate stores, the binary: nothing shared
	overhead := func(stat string) string {
		m := regexp.MustCompile(`(?m)^overhead:\s+(.*)$`).FindStringSubmatch(stat)
		if m == nil {
			t.Fatalf("stat has no overhead line:\n%s", stat)
		}
		return m[1]
	}
	perEntry := func(line string) int {
		n, err := strconv.Atoi(strings.Fields(line)[0])
		if err != nil {
			t.Fatalf("overhead %q does not start with a byte count", line)
		}
		return n
	}

	// A store of 64 MiB (an index for 524,288 entries) of 10 entries. Sized
	// by hand: the default store, 8 MiB and growing, has a smaller index.
	name := storeName(t)
	mustRun(t, "", "--store", name, "create", "--size", "64M")
	for i := range 10 {
		mustRun(t, "", "--store", name, "put", fmt.Sprintf("key%d", i), "value")
	}
	line := overhead(mustRun(t, "", "--store", name, "stat"))
	// A 64 MiB store sized by hand has the index it had before growth:
	// 87382 buckets of 6 entries.
	t.Logf("10 entries of 524292: overhead: %s", line)
	if n := perEntry(line); n > 100 || strings.Contains(line, "index share") ||
		!strings.Contains(line, "in blocks") || !strings.Contains(line, "the index takes") || !strings.Contains(line, "for 524292 entries") {
		t.Errorf("overhead of 10 entries in a store for 524288: %q", line)
	}

	// A well-filled index: its share counts.
	name = storeName(t)
	mustRun(t, "", "--store", name, "create", "--size", "1M", "--entries", "100", "--mode", "0640")
	if line := overhead(mustRun(t, "", "--store", name, "stat")); !strings.HasPrefix(line, "- (no entries; the index takes ") {
		t.Errorf("overhead with no entries: %q", line)
	}
	for i := range 20 {
		mustRun(t, "", "--store", name, "put", fmt.Sprintf("key%d", i), "value")
	}
	stat := mustRun(t, "", "--store", name, "stat")
	line = overhead(stat)
	t.Logf("20 entries of 100: overhead: %s", line)
	if n := perEntry(line); !strings.HasSuffix(line, "B per entry (block header, padding, index share)") || n < 20 || n > 200 {
		t.Errorf("overhead of 20 entries in a store for 100: %q", line)
	}
	if !strings.Contains(stat, "mode=0640") {
		t.Errorf("stat does not show mode=0640:\n%s", stat)
	}

	js := mustRun(t, "", "--store", name, "stat", "--json")
	var m map[string]any
	if err := json.Unmarshal([]byte(js), &m); err != nil {
		t.Fatal(err)
	}
	if m["Mode"] != "0640" || m["Entries"] != float64(20) || m["Name"] != name {
		t.Errorf("stat --json: Mode %#v, Entries %v, Name %v; want \"0640\", 20, %s", m["Mode"], m["Entries"], m["Name"], name)
	}
	if strings.Count(js, `"Mode"`) != 1 {
		t.Errorf("stat --json has Mode more than once:\n%s", js)
	}
	for m, want := range map[fs.FileMode]string{0o600: "0600", 0o7: "0007", 0o777: "0777", fs.ModeDir | 0o755: "0755"} {
		if got := modeString(m); got != want {
			t.Errorf("modeString(%v) = %q, want %q", m, got, want)
		}
	}
}

// TestExitCodesInREADME: the README's exit-code table lists every code
// the command uses, and the usage text does too.
func TestExitCodesInREADME(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i := strings.Index(readme, "| Exit | When |")
	if i < 0 {
		t.Fatal("the README has no exit-code table")
	}
	rows := map[int]string{}
	for _, l := range strings.Split(readme[i:], "\n")[2:] {
		if !strings.HasPrefix(l, "| ") {
			break
		}
		f := strings.SplitN(l, " | ", 2)
		n, err := strconv.Atoi(strings.TrimPrefix(f[0], "| "))
		if err != nil {
			t.Fatalf("exit-code row %q", l)
		}
		rows[n] = f[1]
	}
	var usage bytes.Buffer
	(&cli{}).usage(&usage)
	for code, words := range map[int][]string{
		exitOK:          {"success"},
		exitNotFound:    {"`get`, `del`: the key is not in the store", "`cas`: not swapped", "`check`"},
		exitUsage:       {"usage", "a size of 0"},
		exitError:       {"any other error", "/dev/shm", "not a shmkv store"},
		exitNoStore:     {"no such store", "`get`, `del`, `keys`, `stat`, `check`, `compact`, `rm`", "`cas KEY OLD NEW`"},
		exitInterrupted: {"`compact`", "Ctrl-C"},
	} {
		row, ok := rows[code]
		if !ok {
			t.Errorf("the README's exit-code table has no row for %d", code)
		}
		for _, w := range words {
			if !strings.Contains(row, w) {
				t.Errorf("the README's row for exit %d lacks %q: %s", code, w, row)
			}
		}
		if !strings.Contains(usage.String(), fmt.Sprintf("%d ", code)) {
			t.Errorf("shmkv help does not list exit %d", code)
		}
		delete(rows, code)
	}
	for code := range rows {
		t.Errorf("the README lists exit %d, which shmkv does not use", code)
	}
}
