package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/shmkv/shmkv/store"
)

// TestIncr: shmkv incr adds to a counter and prints its value; text that
// is not a counter is an error (exit 3); a missing store is exit 4.
func TestIncr(t *testing.T) {
	name := storeName(t)
	mustRun(t, "", "--store", name, "create", "--size", "1M")
	for _, c := range []struct {
		args []string
		want string
	}{{[]string{"incr", "hits"}, "1\n"}, {[]string{"incr", "hits", "41"}, "42\n"}, {[]string{"incr", "hits", "--", "-2"}, "40\n"}} {
		out, errs, code := runBin(t, "", append([]string{"--store", name}, c.args...)...)
		if code != 0 || out != c.want || errs != "" {
			t.Fatalf("%v: %q, %q, exit %d; want %q", c.args, out, errs, code, c.want)
		}
	}
	if out, _, _ := runBin(t, "", "--store", name, "get", "hits"); out != "40\n" {
		t.Fatalf("get of the counter: %q", out)
	}
	runBin(t, "", "--store", name, "put", "text", "abc")
	if _, errs, code := runBin(t, "", "--store", name, "incr", "text"); code != 3 || !strings.Contains(errs, "not a counter") {
		t.Fatalf("incr of text: exit %d, %q", code, errs)
	}
	missing := storeName(t)
	if _, _, code := runBin(t, "", "--store", missing, "incr", "x"); code != 4 {
		t.Fatalf("incr on a missing store: exit %d, want 4", code)
	}
}

// TestTimeoutFlag: a write behind a live holder of the writer lock gives
// up at --timeout with a one-line error naming the holder's pid (exit 3);
// without it, it waits and succeeds once the holder lets go.
func TestTimeoutFlag(t *testing.T) {
	name := storeName(t)
	s, err := store.Create(name, &store.Options{Size: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	held, release := make(chan struct{}), make(chan struct{})
	go s.Update(func(*store.Batch) error { close(held); <-release; return nil })
	<-held
	start := time.Now()
	_, errs, code := runBin(t, "", "--store", name, "--timeout", "200ms", "put", "k", "v")
	if code != 3 || !strings.Contains(errs, fmt.Sprintf("pid %d", os.Getpid())) || strings.Count(errs, "\n") != 1 {
		t.Fatalf("put behind a live holder with --timeout: exit %d, %q", code, errs)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Fatalf("--timeout 200ms took %v", d)
	}
	go func() { time.Sleep(300 * time.Millisecond); close(release) }()
	if _, errs, code := runBin(t, "", "--store", name, "put", "k", "v"); code != 0 {
		t.Fatalf("put without --timeout after the holder lets go: exit %d, %q", code, errs)
	}
}

// TestStatShowsOwner: stat names the object's owner and its real mode,
// which a chmod after creation changes.
func TestStatShowsOwner(t *testing.T) {
	name := storeName(t)
	mustRun(t, "", "--store", name, "create", "--size", "1M", "--mode", "0640")
	out, _, code := runBin(t, "", "--store", name, "stat")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("(uid %d), mode 0640", os.Geteuid())) {
		t.Fatalf("stat: exit %d\n%s", code, out)
	}
	if err := os.Chmod(store.ShmDir+"/"+name, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, _, _ := runBin(t, "", "--store", name, "stat"); !strings.Contains(out, "mode 0600 (the object's, now)") {
		t.Fatalf("stat after chmod 0600:\n%s", out)
	}
}
